"""Task paths: formatting, reading either spelling of a loop iteration, paths from parent links; and one notation
across the run result, `show` (text and JSON) and `expect` for a real run of nested loops."""

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kfp_lineage import cli, task_paths
from kfp_lineage.engine import run as run_module
from kfp_lineage.expect import record as expectations_record
from kfp_lineage.lineage import describe
from tests import conftest
from tests.conformance import pipelines

Node = task_paths.TaskNode


def test_formatting():
    assert task_paths.join_path("", "train") == "train"
    assert task_paths.join_path("condition-1", "deploy") == "condition-1/deploy"
    assert task_paths.iteration_path("for-loop-2", 0) == "for-loop-2/iteration-0"
    assert task_paths.iteration_path("", 3) == "iteration-3"
    assert task_paths.last_segment("for-loop-2/iteration-0/train") == "train"
    assert [task_paths.iteration_index(s) for s in ("iteration-12", "iteration-", "iteration-1a", "train")] == [
        12, None, None, None]


@pytest.mark.parametrize("written, normalized", [
    ("train", "train"),
    ("for-loop-2/iteration-0/train", "for-loop-2/iteration-0/train"),
    ("for-loop-2[0]/train", "for-loop-2/iteration-0/train"),
    ("for-loop-1[2]/for-loop-3[10]/square", "for-loop-1/iteration-2/for-loop-3/iteration-10/square"),
    ("for-loop-1[2]/for-loop-3/iteration-1/square", "for-loop-1/iteration-2/for-loop-3/iteration-1/square"),
    ("for-loop-2[1]", "for-loop-2/iteration-1"),
    ("odd[x]/name", "odd[x]/name"),  # not an iteration: left for the caller to refuse
])
def test_either_spelling_of_an_iteration_normalizes_to_the_one_notation(written, normalized):
    assert task_paths.normalize_path(written) == normalized
    assert task_paths.normalize_path(normalized) == normalized  # idempotent


def test_producer_references_normalize_their_task_part_only():
    assert task_paths.normalize_producer("for-loop-2[0]/train.model") == "for-loop-2/iteration-0/train.model"
    assert task_paths.normalize_producer("ingest.train") == "ingest.train"
    assert task_paths.normalize_producer("for-loop-2[0]/train") == "for-loop-2/iteration-0/train"


def test_paths_of_a_run_with_nested_loops_and_a_condition():
    nodes = {
        1: Node(None, "", None),  # the root DAG
        2: Node(1, "for-loop-1", None),
        3: Node(2, "for-loop-1", 0),
        4: Node(3, "for-loop-2", None),
        5: Node(4, "for-loop-2", 1),
        6: Node(5, "square", None),
        7: Node(1, "condition-1", None),
        8: Node(7, "deploy", None),
    }
    assert task_paths.paths_of(nodes) == {
        1: "", 2: "for-loop-1", 3: "for-loop-1/iteration-0", 4: "for-loop-1/iteration-0/for-loop-2",
        5: "for-loop-1/iteration-0/for-loop-2/iteration-1", 6: "for-loop-1/iteration-0/for-loop-2/iteration-1/square",
        7: "condition-1", 8: "condition-1/deploy",
    }


def test_paths_of_nodes_whose_parents_are_missing_or_loop():
    # Parents outside the given nodes: a path starts at the first known node, an iteration keeps its loop's name.
    assert task_paths.paths_of({5: Node(4, "for-loop-2", 1), 6: Node(5, "train", None)}) == {
        5: "for-loop-2/iteration-1", 6: "for-loop-2/iteration-1/train"}
    # A parent_dag_id cycle ends; every node still gets a path.
    looped = task_paths.paths_of({1: Node(2, "a", None), 2: Node(1, "b", None), 3: Node(2, "t", None)})
    assert set(looped) == {1, 2, 3} and looped[3].endswith("/t")
    # An iteration whose parent is not its loop names the loop itself.
    assert task_paths.paths_of({1: Node(None, "", None), 2: Node(1, "for-loop-3", 0)}) == {
        1: "", 2: "for-loop-3/iteration-0"}


def test_importing_it_loads_only_the_standard_library():
    code = "import sys, kfp_lineage.task_paths; print(sorted(m for m in ('kfp', 'ml_metadata', 'google.protobuf') " \
           "if m in sys.modules))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_the_run_result_show_and_expect_name_tasks_in_loops_alike(tmp_path):
    url = str(tmp_path / "mlmd.sqlite")
    result = run_module.run_pipeline(pipelines.loop_over_constants_and_inputs, {"items": [3]}, store=url,
                                     pipeline_root=str(tmp_path / "root"), run_id="nested", cwd=str(tmp_path))
    assert result.state == "COMPLETE"
    inner = "for-loop-1/iteration-0/for-loop-3/iteration-1/square"
    assert inner in result.tasks

    store = conftest.open_store(url)
    shown = {e.path for e in describe.describe_run(store, "nested").executions.values()} - {""}
    assert shown == set(result.tasks)
    assert set(expectations_record.read_run(store, "nested").tasks) == set(result.tasks)

    runner = CliRunner()
    text = runner.invoke(cli.main, ["show", "nested", "--store", url])
    assert text.exit_code == 0 and f"  {inner}  COMPLETE" in text.output
    assert re.search(r"for-loop-\d+\[", text.output) is None
    as_json = runner.invoke(cli.main, ["show", "nested", "--store", url, "--json"])
    assert inner in {e["path"] for e in json.loads(as_json.output)["executions"]}
    for spelling in (inner, "for-loop-1[0]/for-loop-3[1]/square"):
        missing = runner.invoke(cli.main, ["trace", f"nested/{spelling}/Output", "--store", url])
        # Output is a parameter, not an artifact: the task is found either way, its artifact output is not.
        assert missing.exit_code == 2 and f"task {spelling!r} of run nested recorded no output 'Output'" in (
            missing.output)
