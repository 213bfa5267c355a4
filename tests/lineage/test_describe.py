"""Describing one run or one artifact (`kfp-lineage show`), and placing executions in their runs."""

import pytest

from kfp_lineage import errors
from kfp_lineage.lineage import describe
from kfp_lineage.lineage import placement
from kfp_lineage.lineage import walk
from tests import conftest
from tests.lineage.support import BOTH_READERS
from tests.lineage_stores import CACHED, Builder, training_run


@BOTH_READERS
def test_describe_run_lists_every_execution_with_paths_and_outside_artifacts(builder, store, sql):
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    first = training_run(builder, "first", source)
    second = builder.run("second")
    second.task("train", {"train_data": first.outputs[("ingest", "train")]},
                {"model": first.outputs[("train", "model")]}, state=CACHED)

    graph = describe.describe_run(store, "second", sql=sql)
    run = graph.runs["second"]
    assert run.state == "COMPLETE" and run.task_states == {"CACHED": 1}
    assert sorted(e.path for e in graph.executions.values()) == ["", "train"]
    model = graph.artifacts[first.outputs[("train", "model")]]
    assert model.run_id == "first"  # made by the original run, re-used here

    latest = describe.describe_run(store, "latest", sql=sql)
    assert latest.run_id == "second"
    whole = describe.describe_run(store, "first", sql=sql)
    assert sorted(e.path for e in whole.executions.values()) == [
        "", "condition-1", "condition-1/deploy", "evaluate", "ingest", "train"]
    assert whole.artifacts[source].run_id is None  # imported, not made by any run


def test_describe_resolves_runs_then_artifacts(builder, store):
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    run = training_run(builder, "r1", source)
    assert describe.describe(store, "r1").view == "run"
    assert describe.describe(store, "latest").run_id == "r1"
    model = run.outputs[("train", "model")]
    for reference in (str(model), "r1/train/model", "/root/training/r1/train/2/model"):
        graph = describe.describe(store, reference)
        assert graph.view == "artifact" and graph.artifact_id == model
    with pytest.raises(errors.InvalidInputError) as failure:
        describe.describe(store, "nope")
    assert str(failure.value) == ("no run or artifact 'nope' in this store: pass a run id (`kfp-lineage runs` "
                                  "lists them), an artifact id, a URI or RUN_ID/TASK/OUTPUT")


def test_describe_artifact_shows_producer_cache_hits_and_consumers(builder, store):
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    first = training_run(builder, "first", source)
    model = first.outputs[("train", "model")]
    second = builder.run("second")
    hit, _ = second.task("train", {"train_data": first.outputs[("ingest", "train")]}, {"model": model},
                         state=CACHED)
    graph = describe.describe_artifact(store, model)
    assert graph.producer(model).run_id == "first"
    assert hit in graph.executions
    assert [x.task_name for _, x in graph.consumers(model)] == ["evaluate", "deploy"]
    assert graph.root.properties["framework"] == "scikit-learn"


def test_vertex_style_roots_get_their_run_from_the_context(tmp_path):
    store = conftest.open_store(str(tmp_path / "m.sqlite"))
    builder = Builder(store, dag_type="system.DagExecution", root_type="system.Run")
    run = builder.run("projects/p/locations/l/pipelineJobs/job-1", root_name="")
    _, made = run.task("train", outputs={"model": ("google.VertexModel", {"resourceName": "models/1"})})
    for sql in (True, False):
        graph = walk.trace(store, made["model"], sql=sql)
        assert graph.root.run_id == "projects/p/locations/l/pipelineJobs/job-1"


def test_a_parent_dag_cycle_does_not_hang_run_resolution(builder, store):
    run = builder.run("r")
    first = run.dag("a")
    second = run.dag("b", parent=first)
    [execution] = store.get_executions_by_id([first])
    execution.custom_properties["parent_dag_id"].int_value = second  # a -> b -> a
    store.put_executions([execution])
    _, made = run.task("t", outputs={"x": ("system.Artifact", {})}, parent=second)
    for sql in (True, False):
        graph = walk.trace(store, made["x"], sql=sql)
        assert graph.root.run_id == "r"  # found through the run context
    assert sorted(placement.task_paths(describe.describe_run(store, "r").executions.values()).values())
