"""The text views, exactly: trace tree, impact by run, one run, one artifact, the runs table. Clocks are frozen by
overwriting the times ml-metadata recorded."""

import pytest

from kfp_lineage.lineage import describe
from kfp_lineage.lineage import runs as lineage_runs
from kfp_lineage.lineage import walk
from kfp_lineage.lineage.render import text as render_text
from tests import conftest
from tests.lineage_stores import CACHED, FAILED, Builder, training_run

T0 = 1795672603000  # 2026-11-26T05:56:43Z


@pytest.fixture
def store(sqlite_url):
    return conftest.open_store(sqlite_url)


@pytest.fixture
def two_runs(store):
    builder = Builder(store)
    source = builder.artifact("system.Dataset", "bq://project.data.events", {"query": "SELECT * FROM events"},
                              name="source")
    first = training_run(builder, "r1", source)
    second = training_run(builder, "r2", source, deploy=False)
    return builder, source, first, second


def freeze(graph_or_runs):
    """Every execution took 1.5 s, starting a second apart from T0; runs likewise."""
    runs = graph_or_runs if isinstance(graph_or_runs, list) else list(graph_or_runs.runs.values())
    if not isinstance(graph_or_runs, list):
        for execution in graph_or_runs.executions.values():
            execution.create_time = T0 + 1000 * execution.id
            execution.update_time = execution.create_time + 1500
        for artifact in graph_or_runs.artifacts.values():
            artifact.create_time = T0 + 1000 * artifact.id
    for index, run in enumerate(runs):
        if run.start_time is not None:
            run.start_time, run.end_time = T0 + 60_000 * index, T0 + 60_000 * index + 4400
    return graph_or_runs


def test_trace_text(store, two_runs):
    _, _, first, _ = two_runs
    text = render_text.trace_text(walk.trace(store, first.outputs[("train", "model")]))
    assert text == "\n".join([
        "model  system.Model  /root/training/r1/train/2/model  sha256:9940075c6f63  framework=scikit-learn   "
        "(run r1, task train)",
        "  train_data: train  system.Dataset  /root/training/r1/ingest/0/train  sha256:e16ef1790232  rows=426  "
        "(task ingest)",
        "    source: source  system.Dataset  bq://project.data.events",
        "      sourced_from: SELECT * FROM events",
        "  training_code: abc123",
        "  metrics: accuracy=0.972 f1=0.9608  (task evaluate)",
        "  deployed_to: https://endpoints.example/r1  (task deploy, 2026-11-26T05:56:48Z)",
        "  deployed_by: https://ci.example/build/7",
    ])


def test_trace_text_marks_other_runs_repeats_and_the_depth_limit(store, two_runs):
    builder, source, first, _ = two_runs
    model = first.outputs[("train", "model")]
    later = builder.run("r3")
    later.task("train", {"train_data": first.outputs[("ingest", "train")]}, {"model": model}, state=CACHED)
    later.task("evaluate", {"model": model}, {"metrics": ("system.Metrics", {"accuracy": 0.5})})
    later.task("compare", {"a": model, "b": source}, {"report": ("system.Markdown", {})})
    _, joined = later.task("join", {"left": source, "right": first.outputs[("ingest", "train")]},
                           {"out": ("system.Dataset", {})})

    lines = render_text.trace_text(walk.trace(store, model)).splitlines()
    assert lines[-3:] == [
        "  deployed_by: https://ci.example/build/7",
        "  metrics: accuracy=0.5  (task evaluate, run r3)",
        "  used_by: task compare, run r3, as a -> report",
    ]
    joined_lines = render_text.trace_text(walk.trace(store, joined["out"])).splitlines()
    assert joined_lines[1:] == [
        "  left: source  system.Dataset  bq://project.data.events",
        "    sourced_from: SELECT * FROM events",
        "  right: train  system.Dataset  /root/training/r1/ingest/0/train  sha256:e16ef1790232  rows=426  "
        "(run r1, task ingest)",
        "    source: source  system.Dataset  bq://project.data.events  (artifact 1, shown above)",
    ]
    shallow = render_text.trace_text(walk.trace(store, model, depth=0)).splitlines()
    assert shallow[1] == f"  ... (depth limit reached: trace artifact {model} to go further)"


def test_impact_text(store, two_runs):
    _, source, first, _ = two_runs
    text = render_text.impact_text(walk.impact(store, source))
    assert text == "\n".join([
        "impact of source  system.Dataset  bq://project.data.events",
        "run r1  (pipeline training)",
        "  ingest  COMPLETE  reads source  (+2 other outputs)",
        "  train  COMPLETE  reads train_data",
        "    model  system.Model  /root/training/r1/train/2/model",
        "  evaluate  COMPLETE  reads model, test_data  (+1 other output)",
        "  deploy  COMPLETE  reads model",
        "    endpoint  system.Artifact  /root/training/r1/deploy/4/endpoint  "
        "deployed_to: https://endpoints.example/r1",
        "run r2  (pipeline training)",
        "  ingest  COMPLETE  reads source  (+2 other outputs)",
        "  train  COMPLETE  reads train_data",
        "    model  system.Model  /root/training/r2/train/2/model",
        "  evaluate  COMPLETE  reads model, test_data  (+1 other output)",
        "downstream: 2 runs, 7 tasks, 9 artifacts (2 models, 1 endpoint)",
    ])
    full = render_text.impact_text(walk.impact(store, source, full=True)).splitlines()
    assert full[2:5] == [
        "  ingest  COMPLETE  reads source",
        "    test  system.Dataset  /root/training/r1/ingest/0/test  rows=143",
        "    train  system.Dataset  /root/training/r1/ingest/0/train  sha256:e16ef1790232  rows=426",
    ]
    assert "    metrics  system.Metrics  /root/training/r1/evaluate/3/metrics  accuracy=0.972 f1=0.9608" in full


def test_impact_text_of_cache_hits_failures_and_the_depth_limit(store, two_runs):
    builder, source, first, _ = two_runs
    dataset = first.outputs[("ingest", "train")]
    later = builder.run("r3")
    later.task("train", {"train_data": dataset}, {"model": first.outputs[("train", "model")]}, state=CACHED,
               cached_execution_id=str(first.executions["train"]))
    later.task("profile", {"data": dataset}, state=FAILED)
    lines = render_text.impact_text(walk.impact(store, dataset)).splitlines()
    assert lines[-5:] == [
        "run r3  (pipeline training)",
        f"  train  CACHED (re-used execution {first.executions['train']})  reads train_data",
        "    model  system.Model  /root/training/r1/train/2/model  (made in run r1)",
        "  profile  FAILED  reads data",
        "downstream: 2 runs, 5 tasks, 3 artifacts (1 model, 1 endpoint)",
    ]
    assert render_text.impact_text(walk.impact(store, source, depth=1)).splitlines()[-1] == (
        "... depth limit reached at 4 artifacts that other tasks read: raise --depth to go further")
    unused = render_text.impact_text(walk.impact(store, first.outputs[("evaluate", "metrics")])).splitlines()
    assert unused[1:] == ["nothing read this artifact",
                          "downstream: 0 runs, 0 tasks, 0 artifacts (0 models, 0 endpoints)"]


def test_run_text(store, two_runs):
    text = render_text.run_text(freeze(describe.describe_run(store, "r2")))
    assert text == "\n".join([
        "run r2  pipeline training  COMPLETE  started 2026-11-26T05:56:43Z  took 4.4 s  "
        "tasks: 1 canceled, 3 complete",
        "  ingest  COMPLETE  1.5 s",
        '    params: source_uri="bq://project.data.events"',
        "    in  source: source  system.Dataset  bq://project.data.events  [artifact 1]",
        "    out test: test  system.Dataset  /root/training/r2/ingest/0/test  rows=143  [artifact 8]",
        "    out train: train  system.Dataset  /root/training/r2/ingest/0/train  sha256:e16ef1790232  rows=426  "
        "[artifact 7]",
        "  train  COMPLETE  1.5 s",
        '    params: code_version="abc123", n_estimators=100.0',
        "    in  train_data: train  system.Dataset  /root/training/r2/ingest/0/train  sha256:e16ef1790232  "
        "rows=426  [artifact 7]",
        "    out model: model  system.Model  /root/training/r2/train/2/model  sha256:9940075c6f63  "
        "framework=scikit-learn  [artifact 9]",
        "  evaluate  COMPLETE  1.5 s",
        "    in  model: model  system.Model  /root/training/r2/train/2/model  sha256:9940075c6f63  "
        "framework=scikit-learn  [artifact 9]",
        "    in  test_data: test  system.Dataset  /root/training/r2/ingest/0/test  rows=143  [artifact 8]",
        "    out metrics: metrics  system.Metrics  /root/training/r2/evaluate/3/metrics  accuracy=0.972 "
        "f1=0.9608  [artifact 10]",
        "  condition-1  CANCELED  (DAG)",
    ])


def test_artifact_text(store, two_runs):
    _, _, first, _ = two_runs
    text = render_text.artifact_text(freeze(describe.describe_artifact(store, first.outputs[("train", "model")])))
    assert text == "\n".join([
        "artifact 4: model  system.Model  LIVE",
        "  uri: /root/training/r1/train/2/model",
        "  made by: train  (run r1, execution 3, COMPLETE)",
        "  created: 2026-11-26T05:56:47.000Z",
        "  properties:",
        "    code_version: abc123",
        "    display_name: model",
        "    framework: scikit-learn",
        "    sha256: 9940075c6f63" + "0" * 52,
        "  read by:",
        "    evaluate as model  (run r1, execution 4, COMPLETE)",
        "    deploy as model  (run r1, execution 6, COMPLETE)",
    ])


def test_runs_table(store, two_runs):
    text = render_text.runs_table(freeze(lineage_runs.list_runs(store)))
    assert text == "\n".join([
        "RUN  PIPELINE  STATE     STARTED               DURATION  TASKS",
        "r2   training  COMPLETE  2026-11-26T05:56:43Z  4.4 s     1 canceled, 3 complete",
        "r1   training  COMPLETE  2026-11-26T05:57:43Z  4.4 s     5 complete",
    ])


@pytest.mark.parametrize("seconds, shown", [(None, "running"), (0.04, "0.0 s"), (59.94, "59.9 s"),
                                            (200, "3 min 20 s"), (7500, "2 h 5 min")])
def test_durations(seconds, shown):
    assert render_text._duration(seconds) == shown
