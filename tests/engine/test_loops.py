"""ParallelFor loops whose iterations finish without launching a process (false conditions, cache hits)."""

import collections
from typing import Counter

from kfp import dsl
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage.engine import progress
from kfp_lineage.engine import run as run_module
from tests import conftest
from tests.fixtures import pipelines
from tests.mlmd_view import RunView


class _FinishedCounter(progress.Reporter):
    """Counts task_finished events per task key."""

    def __init__(self) -> None:
        self.finished: Counter[str] = collections.Counter()

    def task_finished(self, key: str, state: str, duration: float, error: str = "", log_path: str = "") -> None:
        self.finished[key] += 1


@dsl.pipeline(name="loop-of-skipped-iterations")
def loop_of_skipped_iterations(mode: str = "fast"):
    with dsl.ParallelFor([1, 2, 3]):
        with dsl.If(mode == "slow"):
            pipelines.echo(text="never")


@dsl.pipeline(name="loop-of-echoes")
def loop_of_echoes():
    with dsl.ParallelFor(["a", "b", "c"]) as text:
        pipelines.echo(text=text)


@dsl.pipeline(name="wide-loop")
def wide_loop(items: list):
    with dsl.ParallelFor(items) as item:
        with dsl.If(item == "run"):
            pipelines.echo(text="same")  # one fingerprint for every iteration: one earlier run caches them all


def test_a_300_item_loop_whose_iterations_all_end_at_once_iterates_instead_of_recursing(tmp_path, sqlite_url):
    # Every iteration ends while the loop is being started: 190 skipped by their condition, 110 served from the
    # cache. Reporting each end from inside the start of the next used to recurse until RecursionError, leaving
    # the root, the loop and the run context RUNNING.
    root = str(tmp_path / "root")
    seed = run_module.run_pipeline(wide_loop, {"items": ["run"]}, store=sqlite_url, pipeline_root=root)
    assert seed.state == "COMPLETE"
    reporter = _FinishedCounter()
    items = ["skip"] * 190 + ["run"] * 110
    result = run_module.run_pipeline(wide_loop, {"items": items}, store=sqlite_url, pipeline_root=root,
                                     run_id="wide", reporter=reporter)
    assert result.state == "COMPLETE"
    [loop] = [key for key in result.tasks if "/" not in key]
    assert reporter.finished[loop] == 1 and max(reporter.finished.values()) == 1
    iterations = [result.tasks[f"{loop}/iteration-{i}"].state for i in range(300)]
    assert iterations == ["COMPLETE"] * 300
    echoes = [task.state for key, task in result.tasks.items() if key.endswith("/echo")]
    assert echoes == ["CACHED"] * 110
    view = RunView(conftest.open_store(sqlite_url), "wide")
    assert not [e.id for e in view.executions if e.last_known_state == mlmd_pb.Execution.RUNNING]
    assert view.state("") == "COMPLETE" and view.state(loop) == "COMPLETE"
    assert view.run_context.custom_properties["runner_state"].string_value == "COMPLETE"


def test_a_loop_whose_iterations_finish_at_once_is_finished_once(tmp_path, sqlite_url):
    # Each iteration ends while it is being started (its only task's condition is false), which re-enters the
    # loop's scheduling; the loop used to be finished (published and reported) once per re-entry.
    reporter = _FinishedCounter()
    result = run_module.run_pipeline(loop_of_skipped_iterations, store=sqlite_url,
                                     pipeline_root=str(tmp_path / "root"), reporter=reporter)
    assert result.state == "COMPLETE"
    [loop] = [key for key in result.tasks if "/" not in key]
    assert reporter.finished[loop] == 1
    assert max(reporter.finished.values()) == 1
    assert [result.tasks[f"{loop}/iteration-{i}"].state for i in range(3)] == ["COMPLETE"] * 3


def test_a_loop_served_from_the_cache_is_finished_once(tmp_path, sqlite_url):
    root = str(tmp_path / "root")
    first = run_module.run_pipeline(loop_of_echoes, store=sqlite_url, pipeline_root=root)
    assert first.state == "COMPLETE"
    reporter = _FinishedCounter()
    again = run_module.run_pipeline(loop_of_echoes, store=sqlite_url, pipeline_root=root, reporter=reporter)
    [loop] = [key for key in again.tasks if "/" not in key]
    assert again.state == "COMPLETE"
    assert [again.tasks[f"{loop}/iteration-{i}/echo"].state for i in range(3)] == ["CACHED"] * 3
    assert reporter.finished[loop] == 1
    assert max(reporter.finished.values()) == 1


@dsl.pipeline(name="loop-over-a-parameter")
def loop_over_a_parameter(items: list = ["x", "y"], suffix: str = "!"):  # noqa: B006 (a pipeline default)
    with dsl.ParallelFor(items) as item:
        pipelines.echo(text=item)


def _loop_key(view) -> str:
    [loop] = [key for key in view.by_key if key and "/" not in key]
    return loop


def test_a_raw_list_loop_records_the_list_in_its_inputs_and_each_iteration_its_item(tmp_path, sqlite_url):
    # dag.go: a loop over a raw list adds the whole list to its inputs under the item input's name; each iteration's
    # inputs are the loop's with the list replaced by the item (resolve.go).
    result = run_module.run_pipeline(loop_of_echoes, {}, store=sqlite_url, pipeline_root=str(tmp_path / "root"),
                                     run_id="raw")
    assert result.state == "COMPLETE"
    view = RunView(conftest.open_store(sqlite_url), "raw")
    loop = _loop_key(view)
    [item_input] = view.prop(loop, "inputs")
    assert item_input.startswith("pipelinechannel--loop-item-param-")
    assert view.prop(loop, "inputs") == {item_input: ["a", "b", "c"]}
    assert view.prop(loop, "iteration_count") == 3
    assert [view.prop(f"{loop}/iteration-{i}", "inputs") for i in range(3)] == [
        {item_input: "a"}, {item_input: "b"}, {item_input: "c"}]
    assert view.prop(f"{loop}/iteration-1", "display_name") == view.prop(loop, "display_name")
    assert view.prop(f"{loop}/iteration-1", "total_dag_tasks") == view.prop(loop, "total_dag_tasks") == 1


def test_an_iteration_over_a_parameter_leaves_the_list_out_of_its_inputs(tmp_path, sqlite_url):
    result = run_module.run_pipeline(loop_over_a_parameter, {}, store=sqlite_url,
                                     pipeline_root=str(tmp_path / "root"), run_id="param")
    assert result.state == "COMPLETE"
    view = RunView(conftest.open_store(sqlite_url), "param")
    loop = _loop_key(view)
    assert view.prop(loop, "inputs") == {"pipelinechannel--items": ["x", "y"]}
    assert view.prop(f"{loop}/iteration-0", "inputs") == {"pipelinechannel--items-loop-item": "x"}
