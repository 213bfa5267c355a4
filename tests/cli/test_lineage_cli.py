"""The lineage commands' contract: `trace`, `impact`, `runs`, `show`; every format; `-o`; one-line errors with exit
code 2 for unknown artifacts, ambiguous URIs, unknown runs and pipelines, empty and missing stores."""

import json

import pytest
from click.testing import CliRunner

from kfp_lineage import cli
from kfp_lineage.lineage import graph as lineage_graph
from kfp_lineage.lineage import queries
from kfp_lineage.lineage.render import text as render_text
from kfp_lineage.cli import lineage_commands
from tests import conftest
from tests.lineage_stores import Builder, training_run


def invoke(*args):
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


@pytest.fixture
def store_url(sqlite_url):
    store = conftest.open_store(sqlite_url)
    builder = Builder(store)
    source = builder.artifact("system.Dataset", "bq://project.data.events", {"query": "SELECT 1"}, name="source")
    training_run(builder, "r1", source)
    training_run(builder, "r2", source, pipeline="nightly", deploy=False)
    builder.artifact("system.Dataset", "gs://shared/data.csv")
    builder.artifact("system.Dataset", "gs://shared/data.csv")
    return sqlite_url


def test_trace_prints_the_tree_and_every_format(store_url):
    store = conftest.open_store(store_url)
    expected = render_text.trace_text(queries.trace(store, queries.find_artifact(store, "r1/train/model")))
    result = invoke("trace", "r1/train/model", "--store", store_url)
    assert result.exit_code == 0 and result.stdout == expected + "\n"
    assert invoke("trace", "latest/train/model", "--store", store_url).stdout.startswith("model  system.Model  ")

    data = json.loads(invoke("trace", "r1/train/model", "--store", store_url, "--format", "json").stdout)
    assert data["format_version"] == lineage_graph.JSON_FORMAT_VERSION and data["view"] == "trace"
    assert json.loads(invoke("trace", "r1/train/model", "--store", store_url, "--json").stdout) == data
    assert invoke("trace", "r1/train/model", "--store", store_url, "--format", "dot").stdout.startswith(
        "digraph lineage {")
    assert "flowchart LR" in invoke("trace", "r1/train/model", "--store", store_url, "--format", "mermaid").stdout
    assert invoke("trace", "r1/train/model", "--store", store_url, "--format", "html").stdout.startswith(
        "<!DOCTYPE html>")
    shallow = invoke("trace", "r1/train/model", "--store", store_url, "--depth", "0").stdout
    assert "  ... (depth limit reached: trace artifact" in shallow


def test_output_goes_to_a_file_with_o(store_url, tmp_path):
    target = tmp_path / "lineage.html"
    result = invoke("trace", "r1/train/model", "--store", store_url, "--format", "html", "-o", str(target))
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == f"wrote {target}\n"
    assert target.read_text().startswith("<!DOCTYPE html>")


def test_impact_text_reads_a_summary_and_the_other_formats_read_everything(store_url):
    text = invoke("impact", "1", "--store", store_url)
    assert text.exit_code == 0
    assert text.stdout.splitlines()[0] == "impact of source  system.Dataset  bq://project.data.events"
    assert text.stdout.splitlines()[-1] == "downstream: 2 runs, 7 tasks, 9 artifacts (2 models, 1 endpoint)"
    data = json.loads(invoke("impact", "1", "--store", store_url, "--format", "json").stdout)
    assert data["view"] == "impact" and data["full"] is True
    assert sorted(r["run_id"] for r in data["runs"]) == ["r1", "r2"]
    assert [r["pipeline"] for r in sorted(data["runs"], key=lambda r: r["run_id"])] == ["training", "nightly"]


def test_runs_lists_newest_first_and_filters_by_pipeline(store_url):
    lines = invoke("runs", "--store", store_url).stdout.splitlines()
    assert lines[0].split() == ["RUN", "PIPELINE", "STATE", "STARTED", "DURATION", "TASKS"]
    assert [line.split()[:3] for line in lines[1:]] == [["r2", "nightly", "COMPLETE"], ["r1", "training", "COMPLETE"]]
    assert lines[1].endswith("1 canceled, 3 complete") and lines[2].endswith("5 complete")
    data = json.loads(invoke("runs", "--store", store_url, "--pipeline", "training", "--format", "json").stdout)
    assert [r["run_id"] for r in data["runs"]] == ["r1"]
    assert set(data["runs"][0]) == {"run_id", "pipeline", "state", "start_time", "end_time", "duration_seconds",
                                    "task_states"}
    assert [r["run_id"] for r in json.loads(invoke("runs", "--store", store_url, "--limit", "1", "--json").stdout)
            ["runs"]] == ["r2"]


def test_show_a_run_or_an_artifact(store_url):
    run = invoke("show", "r1", "--store", store_url).stdout.splitlines()
    assert run[0].startswith("run r1  pipeline training  COMPLETE  started ")
    assert "  condition-1  COMPLETE  (DAG)" in run
    assert invoke("show", "latest", "--store", store_url).stdout.startswith("run r2  pipeline nightly")
    artifact = invoke("show", "r1/train/model", "--store", store_url).stdout.splitlines()
    assert artifact[0] == "artifact 4: model  system.Model  LIVE"
    assert "    framework: scikit-learn" in artifact
    data = json.loads(invoke("show", "r1", "--store", store_url, "--format", "json").stdout)
    assert data["view"] == "run" and data["runs"][0]["state"] == "COMPLETE"
    assert "subgraph" in invoke("show", "4", "--store", store_url, "--format", "mermaid").stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["trace", "999"], "no artifact with id 999 in this store"),
        (["trace", "gs://shared/data.csv"], "2 artifacts have URI gs://shared/data.csv (ids 11, 12): pass one id"),
        (["impact", "gs://nope"], "no artifact has URI gs://nope: pass an artifact id, a URI, or RUN_ID/TASK/OUTPUT"),
        (["trace", "nope/train/model"], "no run 'nope' in this store: `kfp-lineage runs` lists them"),
        (["show", "nope"], "no run or artifact 'nope' in this store"),
        (["runs", "--pipeline", "nope"], "no pipeline 'nope' in this store: its pipelines are nightly, training"),
    ],
)
def test_bad_references_exit_2_with_one_line(store_url, args, message):
    result = invoke(*args, "--store", store_url)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: " + message)
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_an_output_file_that_cannot_be_written_exits_2_with_one_line(store_url, tmp_path):
    missing = tmp_path / "no-such-dir" / "lineage.html"
    for command in ("trace", "impact"):
        result = invoke(command, "r1/train/model", "--store", store_url, "--format", "html", "-o", str(missing))
        assert result.exit_code == 2
        assert result.stderr == (f"Error: cannot write {missing}: No such file or directory: pass -o FILE in a "
                                 "directory that exists and you can write\n")


@pytest.mark.parametrize("command, reference", [("trace", "r1/train/model"), ("impact", "r1/ingest/train"),
                                                ("show", "r1")])
def test_json_and_another_format_together_exit_2(store_url, command, reference):
    result = invoke(command, reference, "--store", store_url, "--json", "--format", "dot")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "Error: --json and --format dot ask for two formats: pass one\n"
    assert invoke(command, reference, "--store", store_url, "--json", "--format", "json").exit_code == 0


def test_impact_at_depth_0_does_not_claim_nothing_read_the_artifact(store_url):
    result = invoke("impact", "r1/ingest/train", "--store", store_url, "--depth", "0")
    assert result.exit_code == 0
    assert "nothing read this artifact" not in result.stdout
    assert "depth limit reached at 1 artifact that other tasks read" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["trace", "1"], "the store has no artifacts yet: run a pipeline with `kfp-lineage run` first"),
    (["impact", "/x"], "the store has no artifacts yet: run a pipeline with `kfp-lineage run` first"),
    (["show", "r1"], "the store has no artifacts yet: run a pipeline with `kfp-lineage run` first"),
    (["trace", "latest/train/model"], "the store has no pipeline runs yet: run one with `kfp-lineage run`"),
    (["runs"], "the store has no pipeline runs yet: run one with `kfp-lineage run`"),
    (["show", "latest"], "the store has no pipeline runs yet: run one with `kfp-lineage run`"),
])
def test_an_empty_store_exits_2_saying_so(sqlite_url, args, message):
    conftest.open_store(sqlite_url)  # creates the empty store
    result = invoke(*args, "--store", sqlite_url)
    assert (result.exit_code, result.stderr) == (2, f"Error: {message}\n")


@pytest.mark.parametrize("command", ["trace", "impact", "runs", "show"])
def test_a_missing_store_exits_2_and_is_not_created(tmp_path, command):
    missing = tmp_path / "none.sqlite"
    args = [command] + ([] if command == "runs" else ["latest"]) + ["--store", str(missing)]
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr == f"Error: no store at {missing}: run a pipeline first, or pass --store\n"
    assert not missing.exists()


@pytest.mark.parametrize("command", ["trace", "impact", "runs", "show"])
def test_an_empty_file_is_not_read_as_a_store_nor_changed(tmp_path, command):
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    args = [command] + ([] if command == "runs" else ["latest"]) + ["--store", str(empty)]
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {empty} is empty, not an MLMD store: run a pipeline into it, or pass "
                             "--store\n")
    assert empty.stat().st_size == 0


def test_every_lineage_command_has_help_with_an_example():
    for command in lineage_commands.COMMANDS:
        assert "Examples:" in command.help and "kfp-lineage " + command.name in command.help, command.name
        result = invoke(command.name, "--help")
        assert result.exit_code == 0 and "kfp-lineage " + command.name in result.stdout
