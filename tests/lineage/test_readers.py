"""The SQL readers: each returns exactly what ml-metadata returns (SQLite with and without kfp-lineage's indexes,
MySQL/MariaDB and PostgreSQL through their drivers), is chosen where it applies, refuses unknown schemas and never
writes; without a driver, server stores are read through ml-metadata; the benchmark's store and baselines agree
with the queries."""

import importlib
import importlib.metadata
import os
import shutil
import sqlite3
import sys

import pytest

from kfp_lineage.lineage import describe
from kfp_lineage.lineage import mlmd_reader
from kfp_lineage.lineage import reader as lineage_reader
from kfp_lineage.lineage import runs as lineage_runs
from kfp_lineage.lineage import server_reader
from kfp_lineage.lineage import store_access
from kfp_lineage.lineage import sqlite_reader as lineage_sql
from kfp_lineage.lineage import walk
from kfp_lineage.mlmd import indexes as store_indexes
from kfp_lineage.mlmd import store as store_module
from tests import conftest
from tests.lineage.support import as_json
from tests.lineage_stores import CACHED, COMPLETE, FAILED, Builder, training_run


BUILDS = ["training", "loops", "cache", "failures", "vertex"]
VIEWS = ["trace", "impact", "impact-full", "artifact", "run"]


def build_store(store, build):
    """Writes the runs of one scenario; returns (source id, model id)."""
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
                          parent=iteration, parameters={"nested": {"a": [1, 2]}, "flag": True})
    return source, runs[0].outputs[("train", "model")]


def view_of(store, view, source, model, sql):
    return as_json({
        "trace": lambda: walk.trace(store, model, sql=sql),
        "impact": lambda: walk.impact(store, source, sql=sql),
        "impact-full": lambda: walk.impact(store, source, full=True, sql=sql),
        "artifact": lambda: describe.describe_artifact(store, model, sql=sql),
        "run": lambda: describe.describe_run(store, "r0", sql=sql),
    }[view]())


@pytest.mark.parametrize("indexed", [False, True], ids=["mlmd-schema", "kfpl-indexes"])
@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("view", VIEWS)
def test_the_sql_reader_returns_exactly_what_ml_metadata_returns(tmp_path, build, view, indexed):
    store = conftest.open_store(str(tmp_path / "m.sqlite"))
    source, model = build_store(store, build)
    if indexed:  # kfp-lineage's covering indexes (mlmd/indexes.py) change no result
        store_indexes.add_indexes(store_module.parse_store_url(str(tmp_path / "m.sqlite")))
        store = conftest.open_store(str(tmp_path / "m.sqlite"))
    assert isinstance(lineage_reader.reader_for(store, True), lineage_sql.SqliteReader)
    assert view_of(store, view, source, model, True) == view_of(store, view, source, model, False)


@pytest.mark.parametrize("join_properties_max", [server_reader._JOIN_PROPERTIES_MAX, 0],
                         ids=["few-ids-joined", "properties-apart"])
@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("kind", ["mysql", "postgresql"])
def test_the_server_sql_reader_returns_exactly_what_ml_metadata_returns(kind, build, join_properties_max,
                                                                        monkeypatch):
    # A few nodes come with their properties in one statement; past the limit, properties are read apart. The test
    # stores are small, so the limit is also set to 0 to check the second way.
    monkeypatch.setattr(server_reader, "_JOIN_PROPERTIES_MAX", join_properties_max)
    url = conftest.fresh_database_url(kind)
    store = conftest.open_store(url)
    source, model = build_store(store, build)
    reader = lineage_reader.reader_for(store)
    assert isinstance(reader, server_reader.ServerReader) and reader.kind == kind
    for view in VIEWS:
        assert view_of(store, view, source, model, True) == view_of(store, view, source, model, False), view
    assert [r.to_json() for r in lineage_runs.list_runs(store)] == [
        r.to_json() for r in lineage_runs.list_runs(store, sql=False)]
    opened = store_access.open_reader(store_module.parse_store_url(url))
    assert isinstance(opened, server_reader.ServerReader)
    assert view_of(opened, "trace", source, model, True) == view_of(store, "trace", source, model, False)
    opened.close()


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
def test_server_stores_are_read_through_ml_metadata_without_their_driver(kind, monkeypatch):
    url = conftest.fresh_database_url(kind)
    store = conftest.open_store(url)
    builder = Builder(store)
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    run = training_run(builder, "r1", source)
    for driver in server_reader.DRIVERS[kind]:  # as if the extra were not installed
        monkeypatch.setitem(sys.modules, driver, None)
    with pytest.raises(ImportError, match=rf"pip install 'kfp-lineage\[{kind}\]'"):
        server_reader.connect(kind, "127.0.0.1", 1, "u", "", "db")
    assert isinstance(lineage_reader.reader_for(store), mlmd_reader.MlmdReader)
    assert isinstance(store_access.open_reader(store_module.parse_store_url(url)), mlmd_reader.MlmdReader)
    graph = walk.trace(store, run.outputs[("train", "model")])
    assert graph.producer(run.outputs[("train", "model")]).run_id == "r1"
    assert sorted(dict(walk.impact(store, source).executions_by_run())) == ["r1"]
    assert [r.run_id for r in lineage_runs.list_runs(store)] == ["r1"]


@pytest.mark.parametrize("kind", ["mysql", "postgresql"])
def test_the_server_sql_reader_refuses_unknown_schemas_and_never_writes(kind):
    url = conftest.fresh_database_url(kind)
    parsed = store_module.parse_store_url(url)
    Builder(conftest.open_store(url)).artifact("system.Dataset", "bq://t", name="source")
    reader = server_reader.connect(kind, parsed.host, parsed.port, parsed.user, parsed.password, parsed.database)
    with pytest.raises(Exception, match="(?i)read.only"):
        reader._query("DELETE FROM Artifact")
    reader.close()
    driver = importlib.import_module(server_reader.DRIVERS[kind][-1])
    if kind == "mysql":
        connection = driver.connect(host=parsed.host, port=parsed.port, user=parsed.user, password=parsed.password,
                                    database=parsed.database, autocommit=True)
        connection.cursor().execute("UPDATE MLMDEnv SET schema_version = 99")
    else:
        connection = driver.connect(host=parsed.host, port=parsed.port, user=parsed.user, dbname=parsed.database,
                                    autocommit=True)
        connection.execute("UPDATE MLMDEnv SET schema_version = 99")
    connection.close()
    with pytest.raises(ValueError, match="MLMD schema version 99 is not one of"):
        server_reader.connect(kind, parsed.host, parsed.port, parsed.user, parsed.password, parsed.database)
    with pytest.raises(ValueError, match="cannot read the"):
        server_reader.connect(kind, parsed.host, parsed.port, parsed.user, parsed.password, parsed.database + "_none")


# get_lineage_subgraph takes its start as a filter_query, which ml-metadata 1.21 removed (ZetaSQL): that baseline
# exists on the legacy stack only.
_SUBGRAPH = tuple(int(p) for p in importlib.metadata.version("ml-metadata").split(".")[:2]) < (1, 21)


def test_the_synthetic_store_and_the_benchmark_baselines_agree_with_the_queries(tmp_path):
    from bench import bench_queries, synthetic_store

    store = conftest.open_store(str(tmp_path / "synthetic.sqlite"))
    summary = synthetic_store.build(store, runs=60, sources=2, chunk=25)
    assert summary.runs == 60 and summary.executions > 5 * 60 and summary.artifacts > 10 * 60
    assert sum(summary.sources.values()) == 60 and summary.cached_models
    for model in summary.models[:5] + summary.cached_models[:3]:
        graph = walk.trace(store, model)
        assert as_json(graph) == as_json(walk.trace(store, model, sql=False))
        assert graph.producer(model).state == "COMPLETE"  # a cache hit never wins
        artifacts, executions = bench_queries.naive_trace(store, model, runs=True)
        assert set(graph.artifacts) == artifacts
        # The naive walk also meets the cache hits that re-used the model, and the condition DAG that passed it on.
        assert set(graph.executions) == {e for e in executions if kind(store, e) == "task"}
        if _SUBGRAPH:
            sub_artifacts, _ = bench_queries.subgraph_trace(store, model)
            assert set(graph.artifacts) <= sub_artifacts
    for source in summary.sources:
        graph = walk.impact(store, source, full=True)
        artifacts, executions = bench_queries.naive_impact(store, source, runs=False)
        assert set(graph.artifacts) == artifacts
        assert set(graph.executions) == {e for e in executions if kind(store, e) != "dag"}
        assert as_json(walk.impact(store, source)) == as_json(walk.impact(store, source, sql=False))
        if _SUBGRAPH:
            sub_artifacts, _ = bench_queries.lineage_subgraph(store, source, 2, 40)  # DOWNSTREAM
            assert sub_artifacts == artifacts


def kind(store, execution_id):
    [execution] = store.get_executions_by_id([execution_id])
    if execution.type == "system.DAGExecution":
        return "dag"
    return "cache hit" if execution.last_known_state == execution.CACHED else "task"
