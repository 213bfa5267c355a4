"""The project's training pipeline, run through the local runner: its MLMD lineage and its trace."""

import os

import pytest
from click.testing import CliRunner

from kfp_lineage import cli
from kfp_lineage.lineage import queries, references, store_access, walk
from kfp_lineage.mlmd import store as store_module
from kfp_lineage.lineage.render import text as render_text
from kfp_lineage.engine import run as run_module
from tests import conftest
from tests.mlmd_view import RunView

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TRAINING = os.path.join(REPO, "specs", "training.yaml")
DATA = os.path.join(REPO, "data", "breast_cancer.csv")
DEPLOY = "condition-1/condition-branches-2/condition-3/deploy-local"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real run of specs/training.yaml (the demo's defaults), shared by the tests in this module."""
    tmp = tmp_path_factory.mktemp("training")
    url = str(tmp / "mlmd.sqlite")
    result = run_module.run_pipeline(
        TRAINING,
        {"code_version": "abc123", "deployed_by": "https://ci.example/build/7", "source_uri": DATA},
        store=url,
        pipeline_root=str(tmp / "root"),
        run_id="training-1",
        cwd=str(tmp),  # the local registry goes to <cwd>/.kfp-lineage/model-registry
    )
    return result, url


def test_training_run_records_the_lineage_a_cluster_would(trained):
    result, url = trained
    assert result.state == "COMPLETE", {k: t.error for k, t in result.tasks.items() if t.error}
    view = RunView(conftest.open_store(url), "training-1")
    [train_ds] = view.outputs("ingest")["train"]
    [test_ds] = view.outputs("ingest")["test"]
    assert view.artifact(train_ds).type == view.artifact(test_ds).type == "system.Dataset"
    assert view.inputs("train") == {"train_data": [train_ds]}
    [model] = view.outputs("train")["model"]
    assert view.artifact(model).type == "system.Model"
    assert view.artifact(view.outputs("train")["metrics"][0]).type == "system.Metrics"
    assert view.inputs("evaluate") == {"model": [model], "test_data": [test_ds]}
    assert {view.artifact(i).type for k, [i] in view.outputs("evaluate").items() if k != "executor-logs"} == {
        "system.Metrics", "system.ClassificationMetrics"
    }
    assert view.prop("evaluate", "outputs") == {"passed": True}
    assert view.inputs(DEPLOY) == {"model": [model]}
    assert view.state(DEPLOY) == "COMPLETE"
    assert view.state("condition-1/condition-branches-2/condition-4") == "CANCELED"
    assert view.state("") == "COMPLETE"
    model_props = view.artifact(model).custom_properties
    assert model_props["code_version"].string_value == "abc123"
    assert model_props["framework"].string_value == "scikit-learn"
    assert len(model_props["sha256"].string_value) == 64


def test_trace_of_the_deployed_model_shows_data_code_metrics_and_deployment(trained):
    _, url = trained
    store = conftest.open_store(url)
    graph = queries.trace(store, queries.find_artifact(store, "training-1/train/model"))
    text = render_text.trace_text(graph)
    lines = text.splitlines()
    assert lines[0].startswith("model  system.Model  ") and "(run training-1, task train)" in lines[0]
    assert lines[1].startswith("  train_data: train  system.Dataset  ") and "rows=" in lines[1]
    assert lines[2] == f"    sourced_from: {DATA}  (task ingest)"
    assert "  training_code: abc123" in lines
    assert any(line.startswith("  metrics: accuracy=") and "(task evaluate)" in line for line in lines)
    assert any(line.startswith("  deployed_to: file://") and "(task deploy-local, " in line for line in lines)
    assert (trained[0].tasks[DEPLOY].outputs["endpoint"]["uri"]).startswith(trained[0].run_root)
    assert "  deployed_by: https://ci.example/build/7" in lines


def test_trace_finds_an_artifact_by_id_uri_and_latest(trained):
    _, url = trained
    store = conftest.open_store(url)
    by_path = queries.find_artifact(store, "training-1/train/model")
    assert queries.find_artifact(store, str(by_path.id)).id == by_path.id
    assert queries.find_artifact(store, by_path.uri).id == by_path.id
    assert queries.find_artifact(store, "latest/train/model").id == by_path.id


@pytest.mark.parametrize(
    "reference, message",
    [
        ("999999", "no artifact with id 999999"),
        ("/no/such/uri", "no artifact has URI /no/such/uri"),
        ("nope/train/model", "no run 'nope'"),
        ("training-1/nope/model", "run training-1 has no task 'nope'"),
        ("training-1/train/nope", "task 'train' of run training-1 recorded no output 'nope'"),
    ],
)
def test_trace_of_unknown_artifacts_is_a_clear_error(trained, reference, message):
    _, url = trained
    result = CliRunner().invoke(cli.main, ["trace", reference, "--store", url])
    assert result.exit_code == 2
    assert result.stderr.strip() == "Error: " + result.stderr.strip()[len("Error: "):]
    assert message in result.stderr


def test_trace_on_a_missing_store_exits_2(tmp_path):
    result = CliRunner().invoke(cli.main, ["trace", "latest/train/model", "--store", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 2 and "no store at" in result.stderr
    assert not (tmp_path / "none.sqlite").exists()


def test_a_model_below_the_threshold_is_not_deployed(tmp_path):
    url = str(tmp_path / "mlmd.sqlite")
    result = run_module.run_pipeline(
        TRAINING, {"threshold": 0.9999, "source_uri": DATA}, store=url, pipeline_root=str(tmp_path / "root"),
        run_id="strict", cwd=str(tmp_path),
    )
    assert result.state == "COMPLETE"
    assert result.tasks["evaluate"].outputs["passed"] == {"value": False}
    assert result.tasks["condition-1"].state == "CANCELED"
    assert not any(key.startswith("condition-1/") for key in result.tasks)


def test_show_lists_each_task_s_log_after_what_it_made(trained):
    _, url = trained
    shown = CliRunner().invoke(cli.main, ["show", "training-1", "--store", url], catch_exceptions=False).stdout
    assert "out executor-logs" not in shown
    train = shown.split("\n  train  ")[1].split("\n  evaluate  ")[0].splitlines()
    assert [line.split(":")[0].strip() for line in train[2:]] == ["in  train_data", "out metrics", "out model", "log"]
    assert train[-1].startswith("    log: ") and "/train/" in train[-1] and "/executor-logs-0  [artifact " in train[-1]


@pytest.mark.parametrize("sql", [True, False])
def test_impact_counts_no_task_log_among_what_the_tasks_made(trained, sql):
    _, url = trained
    reader = store_access.open_reader(store_module.parse_store_url(url), sql=sql)
    graph = walk.impact(reader, references.resolve_artifact(reader, "training-1/ingest/train"))
    shown = render_text.impact_text(graph).splitlines()
    assert "  train  COMPLETE  reads train_data  (+1 other output)" in shown  # its metrics; not its log
    assert "  deploy-local  COMPLETE  reads model" in shown
    assert shown[-1] == "downstream: 1 run, 3 tasks, 5 artifacts (1 model, 1 endpoint)"
