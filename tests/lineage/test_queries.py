"""Lineage queries on stores written with plain ml-metadata: branches, loops, cache hits, failures, cycles, deep
chains, an artifact used by many runs, Vertex-style roots; both readers (SQL and ml-metadata) agree."""

import json
import os
import shutil
import sqlite3

import pytest

from kfp_lineage import errors
from kfp_lineage.lineage import mlmd_reader
from kfp_lineage.lineage import reader as lineage_reader
from kfp_lineage.lineage import sqlite_reader as lineage_sql
from kfp_lineage.lineage import queries
from kfp_lineage.lineage.render import text as render_text
from tests import conftest
from tests.lineage_stores import CACHED, COMPLETE, FAILED, RUNNING, Builder, training_run

BOTH_READERS = pytest.mark.parametrize("sql", [True, False], ids=["sql", "mlmd"])


@pytest.fixture
def store(sqlite_url):
    return conftest.open_store(sqlite_url)


@pytest.fixture
def builder(store):
    return Builder(store)


def as_json(graph):
    return json.loads(json.dumps(graph.to_json(), sort_keys=True, default=str))


# --- trace -------------------------------------------------------------------------------------------------


@BOTH_READERS
def test_trace_walks_producers_to_the_source_and_lists_evaluations_and_deployments(builder, store, sql):
    source = builder.artifact("system.Dataset", "bq://project.data.events", {"query": "SELECT 1"}, name="source")
    run = training_run(builder, "r1", source)
    model = run.outputs[("train", "model")]

    graph = queries.trace(store, model, sql=sql)

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

    graph = queries.trace(store, model, sql=sql)

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

    for graph in (queries.trace(store, model), queries.describe_artifact(store, model)):
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

    graph = queries.trace(store, model["model"], sql=sql)

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

    graph = queries.trace(store, best["best"], sql=sql)

    pick = graph.producer(best["best"])
    inputs = graph.inputs(pick.id)
    assert [e.key for e, _ in inputs] == ["models"] * 3
    assert sorted(a.id for _, a in inputs) == models
    assert {graph.producer(m).run_id for m in models} == {"loop"}
    # Three tasks named train in one run: the views name them by path; a task with a name of its own keeps it.
    assert [graph.producer(m).path for m in models] == [f"for-loop-2[{i}]/train" for i in range(3)]
    assert pick.path is None
    assert "task for-loop-2[1]/train" in render_text.trace_text(graph)

    run_graph = queries.describe_run(store, "loop", sql=sql)
    paths = sorted(e.path for e in run_graph.executions.values())
    assert paths == ["", "for-loop-2", "for-loop-2[0]", "for-loop-2[0]/train", "for-loop-2[1]",
                     "for-loop-2[1]/train", "for-loop-2[2]", "for-loop-2[2]/train", "ingest", "pick-best"]
    assert queries.find_artifact(store, "loop/for-loop-2[1]/train/model").id == models[1]
    # The form runs, lineage specs and `check` print names the same task.
    assert queries.find_artifact(store, "loop/for-loop-2/iteration-1/train/model").id == models[1]
    for reference, message in [
        ("loop/for-loop-2[9]/train/model", "run loop has no task 'for-loop-2[9]/train'"),
        ("loop/bogus/train/model", "run loop has no task 'bogus/train'"),  # not the bare name's fallback
        ("loop/for-loop-2[1]/model", "'for-loop-2[1]' in run loop is a pipeline or control-flow group, whose "
                                     "outputs are its tasks' outputs: name the inner task"),
    ]:
        with pytest.raises(errors.InvalidInputError) as failure:
            queries.find_artifact(store, reference)
        assert str(failure.value).startswith(message)
    with pytest.raises(errors.InvalidInputError) as failure:
        queries.find_artifact(store, "loop/train/model")
    assert str(failure.value) == (
        f"task 'train' of run loop has 3 outputs 'model' (ids {', '.join(map(str, models))}): pass one id")


@BOTH_READERS
def test_a_cycle_ends_the_walk_in_both_directions(builder, store, sql):
    run = builder.run("cycle")
    _, a = run.task("make", outputs={"a": ("system.Dataset", {})})
    x, b = run.task("x", {"a": a["a"]}, {"b": ("system.Dataset", {})})
    y, _ = run.task("y", {"b": b["b"]}, {"a": a["a"]})  # writes the artifact x read: a cycle

    traced = queries.trace(store, b["b"], sql=sql)
    assert set(traced.artifacts) == {a["a"], b["b"]}
    downstream = queries.impact(store, a["a"], sql=sql)
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

    graph = queries.trace(store, artifact_ids[-1], depth=5, sql=sql)
    assert len(graph.artifacts) == 6  # the artifact and five steps up
    assert graph.truncated == [("execution", execution_ids[-6])]
    full = queries.trace(store, artifact_ids[-1], depth=100, sql=sql)
    assert len(full.artifacts) == 40 and full.truncated == []

    downstream = queries.impact(store, artifact_ids[0], depth=3, sql=sql)
    assert len(downstream.executions) == 1 + 3  # the producer and three consumer steps
    assert downstream.truncated == [("artifact", artifact_ids[3])]


# --- impact ------------------------------------------------------------------------------------------------


@BOTH_READERS
def test_impact_of_a_dataset_used_by_many_runs_groups_everything_by_run(builder, store, sql):
    source = builder.artifact("system.Dataset", "bq://shared", name="source")
    for i in range(12):
        training_run(builder, f"run-{i:02d}", source, pipeline="nightly" if i % 2 else "training",
                     deploy=i % 3 != 0, evaluate_state=FAILED if i == 5 else COMPLETE)

    graph = queries.impact(store, source, sql=sql)

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

    graph = queries.impact(store, dataset, sql=sql)

    assert graph.executions[hit].state == "CACHED" and graph.executions[hit].run_id == "second"
    assert graph.executions[hit].properties["cached_execution_id"] == "3"
    assert graph.producer(model).run_id == "first"  # the original made it
    assert graph.artifacts[model].run_id == "first"


def test_impact_full_reads_every_property_and_key(builder, store):
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    training_run(builder, "r", source)
    graph = queries.impact(store, source, full=True)
    model = next(a for a in graph.artifacts.values() if a.type == "system.Model")
    assert model.properties["framework"] == "scikit-learn"
    assert all(e.key for e in graph.events)


@pytest.mark.parametrize("build", ["training", "loops", "cache", "failures", "vertex"])
@pytest.mark.parametrize("view", ["trace", "impact", "impact-full", "artifact", "run"])
def test_the_sql_reader_returns_exactly_what_ml_metadata_returns(tmp_path, build, view):
    store = conftest.open_store(str(tmp_path / "m.sqlite"))
    builder = Builder(store, **({"dag_type": "system.DagExecution", "root_type": "system.Run"}
                                if build == "vertex" else {}))
    source = builder.artifact("system.Dataset", "bq://t", {"query": "SELECT 1", "columns": ["a", "b"]}, "source")
    runs = [training_run(builder, f"r{i}", source, evaluate_state=FAILED if build == "failures" and i else COMPLETE)
            for i in range(3)]
    if build == "cache":
        hit = builder.run("hit")
        hit.task("train", {"train_data": runs[0].outputs[("ingest", "train")]},
                 {"model": runs[0].outputs[("train", "model")]}, state=CACHED)
    if build == "loops":
        loop_run = builder.run("loops")
        loop = loop_run.dag("for-loop-1", iteration_count=2)
        for index in range(2):
            iteration = loop_run.dag("for-loop-1", parent=loop, iteration_index=index)
            loop_run.task("train", {"data": source}, {"model": ("system.Model", {"flag": True})},
                          parent=iteration, parameters={"nested": {"a": [1, 2]}})
    model = runs[0].outputs[("train", "model")]
    call = {
        "trace": lambda sql: queries.trace(store, model, sql=sql),
        "impact": lambda sql: queries.impact(store, source, sql=sql),
        "impact-full": lambda sql: queries.impact(store, source, full=True, sql=sql),
        "artifact": lambda sql: queries.describe_artifact(store, model, sql=sql),
        "run": lambda sql: queries.describe_run(store, "r0", sql=sql),
    }[view]
    assert isinstance(lineage_reader.reader_for(store, True), lineage_sql.SqliteReader)
    assert as_json(call(True)) == as_json(call(False))


# --- runs, show, find ----------------------------------------------------------------------------------------


def test_list_runs_newest_first_with_state_duration_and_task_counts(builder, store):
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    training_run(builder, "a", source)
    training_run(builder, "b", source, pipeline="nightly", evaluate_state=FAILED)
    training_run(builder, "c", source, deploy=False)

    runs = queries.list_runs(store)
    assert [r.run_id for r in runs] == ["c", "b", "a"]
    assert [(r.pipeline, r.state) for r in runs] == [("training", "COMPLETE"), ("nightly", "FAILED"),
                                                     ("training", "COMPLETE")]
    assert runs[0].task_states == {"COMPLETE": 3, "CANCELED": 1}
    assert runs[1].task_states == {"COMPLETE": 2, "FAILED": 1}
    assert runs[2].task_states == {"COMPLETE": 5}
    assert all(r.start_time and r.end_time >= r.start_time and r.duration_seconds >= 0 for r in runs)
    assert [r.run_id for r in queries.list_runs(store, pipeline="training", limit=1)] == ["c"]
    assert [r.run_id for r in queries.list_runs(store, limit=2, sql=False)] == ["c", "b"]
    with pytest.raises(errors.InvalidInputError) as failure:
        queries.list_runs(store, pipeline="nope")
    assert str(failure.value) == "no pipeline 'nope' in this store: its pipelines are nightly, training"


def test_a_root_left_running_by_the_backend_reads_from_its_tasks(builder, store):
    done = builder.run("done", root_state=RUNNING)
    done.task("a", outputs={"x": ("system.Artifact", {})})
    busy = builder.run("busy", root_state=RUNNING)
    busy.task("a", state=RUNNING)
    broken = builder.run("broken", root_state=RUNNING)
    broken.task("a", state=FAILED)
    states = {r.run_id: (r.state, r.duration_seconds is None) for r in queries.list_runs(store)}
    assert states == {"done": ("COMPLETE", False), "busy": ("RUNNING", True), "broken": ("FAILED", False)}


@BOTH_READERS
def test_describe_run_lists_every_execution_with_paths_and_outside_artifacts(builder, store, sql):
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    first = training_run(builder, "first", source)
    second = builder.run("second")
    second.task("train", {"train_data": first.outputs[("ingest", "train")]},
                {"model": first.outputs[("train", "model")]}, state=CACHED)

    graph = queries.describe_run(store, "second", sql=sql)
    run = graph.runs["second"]
    assert run.state == "COMPLETE" and run.task_states == {"CACHED": 1}
    assert sorted(e.path for e in graph.executions.values()) == ["", "train"]
    model = graph.artifacts[first.outputs[("train", "model")]]
    assert model.run_id == "first"  # made by the original run, re-used here

    latest = queries.describe_run(store, "latest", sql=sql)
    assert latest.run_id == "second"
    whole = queries.describe_run(store, "first", sql=sql)
    assert sorted(e.path for e in whole.executions.values()) == [
        "", "condition-1", "condition-1/deploy", "evaluate", "ingest", "train"]
    assert whole.artifacts[source].run_id is None  # imported, not made by any run


def test_describe_resolves_runs_then_artifacts(builder, store):
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    run = training_run(builder, "r1", source)
    assert queries.describe(store, "r1").view == "run"
    assert queries.describe(store, "latest").run_id == "r1"
    model = run.outputs[("train", "model")]
    for reference in (str(model), "r1/train/model", "/root/training/r1/train/2/model"):
        graph = queries.describe(store, reference)
        assert graph.view == "artifact" and graph.artifact_id == model
    with pytest.raises(errors.InvalidInputError) as failure:
        queries.describe(store, "nope")
    assert str(failure.value) == ("no run or artifact 'nope' in this store: pass a run id (`kfp-lineage runs` "
                                  "lists them), an artifact id, a URI or RUN_ID/TASK/OUTPUT")


def test_describe_artifact_shows_producer_cache_hits_and_consumers(builder, store):
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    first = training_run(builder, "first", source)
    model = first.outputs[("train", "model")]
    second = builder.run("second")
    hit, _ = second.task("train", {"train_data": first.outputs[("ingest", "train")]}, {"model": model},
                         state=CACHED)
    graph = queries.describe_artifact(store, model)
    assert graph.producer(model).run_id == "first"
    assert hit in graph.executions
    assert [x.task_name for _, x in graph.consumers(model)] == ["evaluate", "deploy"]
    assert graph.root.properties["framework"] == "scikit-learn"


@pytest.mark.parametrize(
    "reference, message",
    [
        ("999", "no artifact with id 999 in this store: `kfp-lineage runs` and `kfp-lineage show RUN_ID` list "
                "the artifacts"),
        ("/no/such", "no artifact has URI /no/such: pass an artifact id, a URI, or RUN_ID/TASK/OUTPUT"),
        ("nope/train/model", "no run 'nope' in this store: `kfp-lineage runs` lists them"),
        ("r1/nope/model", "run r1 has no task 'nope': `kfp-lineage show r1` lists its tasks"),
        ("r1/train/nope", "task 'train' of run r1 recorded no output 'nope': `kfp-lineage show r1` lists its "
                          "outputs"),
        ("shared://uri", "2 artifacts have URI shared://uri (ids 1, 2): pass one id"),
    ],
)
def test_find_artifact_errors_name_the_problem_and_the_fix(builder, store, reference, message):
    assert [builder.artifact("system.Dataset", "shared://uri") for _ in range(2)] == [1, 2]
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    training_run(builder, "r1", source)
    with pytest.raises(errors.InvalidInputError) as failure:
        queries.find_artifact(store, reference)
    assert str(failure.value) == message


def test_an_empty_store_says_so(store):
    for call in (lambda: queries.find_artifact(store, "1"), lambda: queries.find_artifact(store, "/x"),
                 lambda: queries.describe(store, "something")):
        with pytest.raises(errors.InvalidInputError) as failure:
            call()
        assert str(failure.value) == "the store has no artifacts yet: run a pipeline with `kfp-lineage run` first"
    for call in (lambda: queries.list_runs(store), lambda: queries.find_artifact(store, "latest/train/model"),
                 lambda: queries.describe_run(store, "latest")):
        with pytest.raises(errors.InvalidInputError) as failure:
            call()
        assert str(failure.value) == "the store has no pipeline runs yet: run one with `kfp-lineage run`"


def test_a_store_whose_runs_recorded_only_parameters_says_so(builder, store):
    builder.run("params-only").task("add", parameters={"a": 1})
    with pytest.raises(errors.InvalidInputError) as failure:
        queries.find_artifact(store, "1")
    assert str(failure.value) == (
        "this store's runs recorded no artifacts (only parameters): `kfp-lineage show RUN_ID` shows a run")


def test_vertex_style_roots_get_their_run_from_the_context(tmp_path):
    store = conftest.open_store(str(tmp_path / "m.sqlite"))
    builder = Builder(store, dag_type="system.DagExecution", root_type="system.Run")
    run = builder.run("projects/p/locations/l/pipelineJobs/job-1", root_name="")
    _, made = run.task("train", outputs={"model": ("google.VertexModel", {"resourceName": "models/1"})})
    for sql in (True, False):
        graph = queries.trace(store, made["model"], sql=sql)
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
        graph = queries.trace(store, made["x"], sql=sql)
        assert graph.root.run_id == "r"  # found through the run context
    assert sorted(queries.task_paths(queries.describe_run(store, "r").executions.values()).values())


# --- readers ---------------------------------------------------------------------------------------------------


def test_the_sql_reader_is_used_for_sqlite_and_refuses_unknown_schemas(tmp_path, store, sqlite_url):
    assert isinstance(lineage_reader.reader_for(store), lineage_sql.SqliteReader)
    assert isinstance(lineage_reader.reader_for(store, sql=False), mlmd_reader.MlmdReader)
    for sql in (True, False):  # both implement every method of the interface
        assert isinstance(lineage_reader.reader_for(store, sql), lineage_reader.Reader)
    copy = tmp_path / "copy.sqlite"
    shutil.copy(sqlite_url, copy)
    with sqlite3.connect(copy) as connection:
        connection.execute("UPDATE MLMDEnv SET schema_version = 99")
    with pytest.raises(ValueError, match="MLMD schema version 99 is not one of"):
        lineage_sql.SqliteReader(str(copy))
    with pytest.raises(ValueError, match="not a readable MLMD store"):
        lineage_sql.SqliteReader(os.devnull)


def test_the_sql_reader_never_writes(tmp_path, builder, store, sqlite_url):
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    training_run(builder, "r1", source)
    reader = lineage_sql.SqliteReader(sqlite_url)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.connection.execute("DELETE FROM Artifact")


@pytest.mark.parametrize("kind", ["mysql", "postgresql"])
def test_server_stores_are_read_through_ml_metadata(kind):
    url = conftest.fresh_database_url(kind)
    store = conftest.open_store(url)
    builder = Builder(store)
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    run = training_run(builder, "r1", source)
    assert isinstance(lineage_reader.reader_for(store), mlmd_reader.MlmdReader)
    graph = queries.trace(store, run.outputs[("train", "model")])
    assert graph.producer(run.outputs[("train", "model")]).run_id == "r1"
    assert sorted(dict(queries.impact(store, source).executions_by_run())) == ["r1"]
    assert [r.run_id for r in queries.list_runs(store)] == ["r1"]


# --- the benchmark's store and baselines (not timed here: `make bench` times them) -------------------------------


def test_the_synthetic_store_and_the_benchmark_baselines_agree_with_the_queries(tmp_path):
    from bench import bench_queries, synthetic_store

    store = conftest.open_store(str(tmp_path / "synthetic.sqlite"))
    summary = synthetic_store.build(store, runs=60, sources=2, chunk=25)
    assert summary.runs == 60 and summary.executions > 5 * 60 and summary.artifacts > 10 * 60
    assert sum(summary.sources.values()) == 60 and summary.cached_models
    for model in summary.models[:5] + summary.cached_models[:3]:
        graph = queries.trace(store, model)
        assert as_json(graph) == as_json(queries.trace(store, model, sql=False))
        assert graph.producer(model).state == "COMPLETE"  # a cache hit never wins
        artifacts, executions = bench_queries.naive_trace(store, model, runs=True)
        assert set(graph.artifacts) == artifacts
        # The naive walk also meets the cache hits that re-used the model, and the condition DAG that passed it on.
        assert set(graph.executions) == {e for e in executions if kind(store, e) == "task"}
        sub_artifacts, _ = bench_queries.subgraph_trace(store, model)
        assert set(graph.artifacts) <= sub_artifacts
    for source in summary.sources:
        graph = queries.impact(store, source, full=True)
        artifacts, executions = bench_queries.naive_impact(store, source, runs=False)
        assert set(graph.artifacts) == artifacts
        assert set(graph.executions) == {e for e in executions if kind(store, e) != "dag"}
        assert as_json(queries.impact(store, source)) == as_json(queries.impact(store, source, sql=False))
        sub_artifacts, _ = bench_queries.lineage_subgraph(store, source, 2, 40)  # DOWNSTREAM
        assert sub_artifacts == artifacts


def kind(store, execution_id):
    [execution] = store.get_executions_by_id([execution_id])
    if execution.type == "system.DAGExecution":
        return "dag"
    return "cache hit" if execution.last_known_state == execution.CACHED else "task"
