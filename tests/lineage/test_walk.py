"""trace and impact on stores written with plain ml-metadata: branches, loops, cache hits, cycles, deep
chains, an artifact used by many runs; with both readers."""

import pytest

from kfp_lineage import errors
from kfp_lineage.lineage import describe
from kfp_lineage.lineage import references
from kfp_lineage.lineage import walk
from kfp_lineage.lineage.render import text as render_text
from tests.lineage.support import BOTH_READERS
from tests.lineage_stores import CACHED, COMPLETE, FAILED, training_run


@BOTH_READERS
def test_trace_walks_producers_to_the_source_and_lists_evaluations_and_deployments(builder, store, sql):
    source = builder.artifact("system.Dataset", "bq://project.data.events", {"query": "SELECT 1"}, name="source")
    run = training_run(builder, "r1", source)
    model = run.outputs[("train", "model")]

    graph = walk.trace(store, model, sql=sql)

    root = graph.root
    assert (root.name, root.type, root.run_id) == ("model", "system.Model", "r1")
    train = graph.producer(model)
    assert (train.task_name, train.state, train.run_id) == ("train", "COMPLETE", "r1")
    [(event, dataset)] = graph.inputs(train.id)
    assert (event.key, dataset.id, dataset.name) == ("train_data", run.outputs[("ingest", "train")], "train")
    ingest = graph.producer(dataset.id)
    assert ingest.task_name == "ingest"
    assert [(e.key, a.id) for e, a in graph.inputs(ingest.id)] == [("source", source)]
    assert graph.producer(source) is None
    consumers = [(e.key, x.task_name) for e, x in graph.consumers(model)]
    assert consumers == [("model", "evaluate"), ("model", "deploy")]  # the condition DAG is left out
    assert {a.type for x in graph.consumers(model) for _, a in graph.outputs(x[1].id)} == {
        "system.Metrics", "system.Artifact"}
    assert graph.truncated == []
    assert graph.runs["r1"].pipeline == "training"


@BOTH_READERS
def test_trace_of_a_cached_artifact_leads_to_the_original_producer(builder, store, sql):
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    first = training_run(builder, "first", source)
    model = first.outputs[("train", "model")]
    dataset = first.outputs[("ingest", "train")]
    second = builder.run("second")
    hit, outputs = second.task("train", {"train_data": dataset}, {"model": model}, state=CACHED,
                               cached_execution_id=str(first.executions["train"]))
    assert outputs == {"model": model}
    second.task("evaluate", {"model": model}, {"metrics": ("system.Metrics", {"accuracy": 0.5})})

    graph = walk.trace(store, model, sql=sql)

    producer = graph.producer(model)
    assert producer.state == "COMPLETE" and producer.run_id == "first"
    assert hit not in graph.executions  # the cache hit is not upstream lineage
    assert graph.root.run_id == "first"
    runs = sorted(x.run_id for _, x in graph.consumers(model) if x.task_name == "evaluate")
    assert runs == ["first", "second"]


def test_an_original_producer_wins_even_when_the_cache_hit_has_the_lower_id(builder, store):
    dataset = builder.artifact("system.Dataset", "/d", name="data")
    hit_run = builder.run("hit")
    hit, made = hit_run.task("train", {"train_data": dataset}, {"model": ("system.Model", {})}, state=CACHED)
    model = made["model"]
    original_run = builder.run("original")
    original, _ = original_run.task("train", {"train_data": dataset}, {"model": model})
    assert hit < original

    for graph in (walk.trace(store, model), describe.describe_artifact(store, model)):
        assert graph.producer(model).id == original
        assert graph.root.run_id == "original"


@BOTH_READERS
def test_trace_follows_every_branch_of_a_fan_in(builder, store, sql):
    run = builder.run("fan")
    _, left = run.task("make-left", outputs={"data": ("system.Dataset", {"rows": 2.0})})
    _, right = run.task("make-right", outputs={"data": ("system.Dataset", {"rows": 3.0})})
    _, merged = run.task("combine", {"left": left["data"], "right": right["data"]},
                         {"merged": ("system.Dataset", {})})
    _, model = run.task("train", {"data": merged["merged"]}, {"model": ("system.Model", {})})

    graph = walk.trace(store, model["model"], sql=sql)

    combine = graph.producer(merged["merged"])
    assert [(e.key, graph.producer(a.id).task_name) for e, a in graph.inputs(combine.id)] == [
        ("left", "make-left"), ("right", "make-right")]
    assert len(graph.artifacts) == 4


@BOTH_READERS
def test_loop_iterations_are_dags_with_an_iteration_index_and_their_outputs_are_traced(builder, store, sql):
    run = builder.run("loop")
    _, data = run.task("ingest", outputs={"train": ("system.Dataset", {})})
    loop = run.dag("for-loop-2", iteration_count=3)
    models = []
    for index in range(3):
        iteration = run.dag("for-loop-2", parent=loop, iteration_index=index)
        _, made = run.task("train", {"train_data": data["train"]}, {"model": ("system.Model", {"i": index})},
                           parent=iteration, parameters={"max_depth": index})
        models.append(made["model"])
    _, best = run.task("pick-best", {"models": models}, {"best": ("system.Model", {})})

    graph = walk.trace(store, best["best"], sql=sql)

    pick = graph.producer(best["best"])
    inputs = graph.inputs(pick.id)
    assert [e.key for e, _ in inputs] == ["models"] * 3
    assert sorted(a.id for _, a in inputs) == models
    assert {graph.producer(m).run_id for m in models} == {"loop"}
    # Three tasks named train in one run: the views name them by path; a task with a name of its own keeps it.
    assert [graph.producer(m).path for m in models] == [f"for-loop-2/iteration-{i}/train" for i in range(3)]
    assert pick.path is None
    assert "task for-loop-2/iteration-1/train" in render_text.trace_text(graph)

    run_graph = describe.describe_run(store, "loop", sql=sql)
    paths = sorted(e.path for e in run_graph.executions.values())
    assert paths == ["", "for-loop-2", "for-loop-2/iteration-0", "for-loop-2/iteration-0/train",
                     "for-loop-2/iteration-1", "for-loop-2/iteration-1/train", "for-loop-2/iteration-2",
                     "for-loop-2/iteration-2/train", "ingest", "pick-best"]
    # The notation views print (the one runs and lineage specs use), and the `[i]` spelling they printed before.
    assert references.find_artifact(store, "loop/for-loop-2/iteration-1/train/model").id == models[1]
    assert references.find_artifact(store, "loop/for-loop-2[1]/train/model").id == models[1]
    for reference, message in [
        ("loop/for-loop-2[9]/train/model", "run loop has no task 'for-loop-2[9]/train'"),
        ("loop/bogus/train/model", "run loop has no task 'bogus/train'"),  # not the bare name's fallback
        ("loop/for-loop-2[1]/model", "'for-loop-2[1]' in run loop is a pipeline or control-flow group, whose "
                                     "outputs are its tasks' outputs: name the inner task"),
        ("loop/for-loop-2/iteration-1/model", "'for-loop-2/iteration-1' in run loop is a pipeline or control-flow "
                                              "group"),
    ]:
        with pytest.raises(errors.InvalidInputError) as failure:
            references.find_artifact(store, reference)
        assert str(failure.value).startswith(message)
    with pytest.raises(errors.InvalidInputError) as failure:
        references.find_artifact(store, "loop/train/model")
    assert str(failure.value) == (
        f"task 'train' of run loop has 3 outputs 'model' (ids {', '.join(map(str, models))}): pass one id")


@BOTH_READERS
def test_a_cycle_ends_the_walk_in_both_directions(builder, store, sql):
    run = builder.run("cycle")
    _, a = run.task("make", outputs={"a": ("system.Dataset", {})})
    x, b = run.task("x", {"a": a["a"]}, {"b": ("system.Dataset", {})})
    y, _ = run.task("y", {"b": b["b"]}, {"a": a["a"]})  # writes the artifact x read: a cycle

    traced = walk.trace(store, b["b"], sql=sql)
    assert set(traced.artifacts) == {a["a"], b["b"]}
    downstream = walk.impact(store, a["a"], sql=sql)
    assert {x, y} <= set(downstream.executions)
    assert downstream.truncated == []


@BOTH_READERS
def test_depth_bounds_a_deep_chain_and_says_where_it_stopped(builder, store, sql):
    run = builder.run("deep")
    _, made = run.task("step-0", outputs={"out": ("system.Dataset", {})})
    artifact_ids = [made["out"]]
    execution_ids = []
    for i in range(1, 40):
        execution_id, made = run.task(f"step-{i}", {"in": artifact_ids[-1]}, {"out": ("system.Dataset", {})})
        artifact_ids.append(made["out"])
        execution_ids.append(execution_id)

    graph = walk.trace(store, artifact_ids[-1], depth=5, sql=sql)
    assert len(graph.artifacts) == 6  # the artifact and five steps up
    assert graph.truncated == [("execution", execution_ids[-6])]
    full = walk.trace(store, artifact_ids[-1], depth=100, sql=sql)
    assert len(full.artifacts) == 40 and full.truncated == []

    downstream = walk.impact(store, artifact_ids[0], depth=3, sql=sql)
    assert len(downstream.executions) == 1 + 3  # the producer and three consumer steps
    assert downstream.truncated == [("artifact", artifact_ids[3])]


@BOTH_READERS
def test_impact_of_a_dataset_used_by_many_runs_groups_everything_by_run(builder, store, sql):
    source = builder.artifact("system.Dataset", "bq://shared", name="source")
    for i in range(12):
        training_run(builder, f"run-{i:02d}", source, pipeline="nightly" if i % 2 else "training",
                     deploy=i % 3 != 0, evaluate_state=FAILED if i == 5 else COMPLETE)

    graph = walk.impact(store, source, sql=sql)

    groups = dict(graph.executions_by_run())
    assert sorted(groups) == [f"run-{i:02d}" for i in range(12)]
    assert [e.task_name for e in groups["run-01"]] == ["ingest", "train", "evaluate", "deploy"]
    assert [(e.task_name, e.state) for e in groups["run-05"]] == [
        ("ingest", "COMPLETE"), ("train", "COMPLETE"), ("evaluate", "FAILED")]
    assert [e.task_name for e in groups["run-03"]] == ["ingest", "train", "evaluate"]  # not deployed
    assert not any(e.is_dag for e in graph.executions.values())
    endpoints = sorted(a.endpoint for a in graph.artifacts.values() if a.is_endpoint)
    assert endpoints == [f"https://endpoints.example/run-{i:02d}" for i in range(12) if i % 3 and i != 5]
    assert graph.runs["run-01"].pipeline == "nightly" and graph.runs["run-02"].pipeline == "training"
    assert graph.full is False
    model = next(a for a in graph.artifacts.values() if a.type == "system.Model")
    assert model.properties == {} and model.name == "model"  # the summary reads names, not properties


@BOTH_READERS
def test_impact_includes_cache_hits_and_their_re_used_outputs(builder, store, sql):
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    first = training_run(builder, "first", source)
    dataset, model = first.outputs[("ingest", "train")], first.outputs[("train", "model")]
    second = builder.run("second")
    hit, _ = second.task("train", {"train_data": dataset}, {"model": model}, state=CACHED, cached_execution_id="3")

    graph = walk.impact(store, dataset, sql=sql)

    assert graph.executions[hit].state == "CACHED" and graph.executions[hit].run_id == "second"
    assert graph.executions[hit].properties["cached_execution_id"] == "3"
    assert graph.producer(model).run_id == "first"  # the original made it
    assert graph.artifacts[model].run_id == "first"


def test_impact_full_reads_every_property_and_key(builder, store):
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    training_run(builder, "r", source)
    graph = walk.impact(store, source, full=True)
    model = next(a for a in graph.artifacts.values() if a.type == "system.Model")
    assert model.properties["framework"] == "scikit-learn"
    assert all(e.key for e in graph.events)
