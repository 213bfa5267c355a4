"""kfp-lineage's covering indexes: a store the runner creates gets them once with the marker, ml-metadata reopens,
writes and reads such a store unchanged (its statements cannot use them), foreign stores get them only on request,
and no query result changes (tests/lineage/test_readers.py compares every view with and without them)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner
from kfp import compiler

from kfp_lineage import cli, errors
from kfp_lineage.engine import run as run_module
from kfp_lineage.lineage import reader as lineage_reader
from kfp_lineage.lineage import references, walk
from kfp_lineage.mlmd import indexes
from kfp_lineage.mlmd import store as store_module
from tests import conftest
from tests.fixtures import pipelines
from tests.lineage.support import as_json
from tests.lineage_stores import Builder, training_run

OURS = sorted(index.name for index in indexes.SQLITE_INDEXES)
# ml-metadata 1.17.1's own SELECT statements on the indexed tables (its SQLite query config), with sample ids.
MLMD_STATEMENTS = [
    "SELECT `id`, `artifact_id`, `execution_id`, `type`, `milliseconds_since_epoch` from `Event` "
    "WHERE `artifact_id` IN (1, 2, 3)",
    "SELECT `id`, `artifact_id`, `execution_id`, `type`, `milliseconds_since_epoch` from `Event` "
    "WHERE `execution_id` IN (1, 2, 3)",
    "SELECT `event_id`, `is_index_step`, `step_index`, `step_key` from `EventPath` WHERE `event_id` IN (1, 2, 3)",
    "SELECT `artifact_id` as `id`, `name` as `key`, `is_custom_property`, `int_value`, `double_value`, "
    "`string_value`, `byte_value`, `proto_value`, `bool_value` from `ArtifactProperty` WHERE `artifact_id` IN (1, 2)",
    "SELECT `execution_id` as `id`, `name` as `key`, `is_custom_property`, `int_value`, `double_value`, "
    "`string_value`, `byte_value`, `proto_value`, `bool_value` from `ExecutionProperty` "
    "WHERE `execution_id` IN (1, 2)",
]


def index_names(path) -> list:
    with sqlite3.connect(path) as connection:
        return sorted(r[0] for r in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_kfpl%'"))


def marker(path) -> dict:
    with sqlite3.connect(path) as connection:
        return dict(connection.execute(f"SELECT name, value FROM {indexes.MARKER_TABLE}").fetchall())


@pytest.fixture(scope="module")
def linear_yaml(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "linear.yaml"
    compiler.Compiler().compile(pipelines.linear, str(path))
    return str(path)


def run(spec, store, tmp_path, run_id):
    result = run_module.run_pipeline(spec, store=str(store), pipeline_root=str(tmp_path / "root"), run_id=run_id,
                                     enable_cache=False)
    assert result.state == "COMPLETE"
    return result


def test_a_store_the_runner_creates_gets_the_indexes_once_and_keeps_working(tmp_path, linear_yaml):
    store = tmp_path / "new.sqlite"
    run(linear_yaml, store, tmp_path, "first")
    assert index_names(store) == OURS
    assert marker(store) == {"created_by": f"kfp-lineage {indexes._version()}",
                             "index_version": str(indexes.INDEX_VERSION)}
    with sqlite3.connect(store) as connection:
        schema = connection.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    run(linear_yaml, store, tmp_path, "second")  # reopened by ml-metadata and written again
    with sqlite3.connect(store) as connection:
        assert connection.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall() == schema
    report = indexes.add_indexes(store_module.parse_store_url(str(store)))
    assert report.added == [] and sorted(report.present) == OURS
    # ml-metadata reads the runs back, and the walks read the same through SQL and ml-metadata calls.
    metadata_store = conftest.open_store(str(store))
    assert sorted(c.name for c in metadata_store.get_contexts_by_type("system.PipelineRun")) == ["first", "second"]
    run(linear_yaml, store, tmp_path, "third")
    model = references.find_artifact(metadata_store, "third/make-dataset/data")
    assert as_json(walk.trace(metadata_store, model)) == as_json(walk.trace(metadata_store, model, sql=False))
    assert as_json(walk.impact(metadata_store, model, full=True)) == as_json(
        walk.impact(metadata_store, model, full=True, sql=False))


def test_ml_metadata_statements_cannot_use_them_and_read_rows_in_the_same_order(tmp_path):
    path = tmp_path / "m.sqlite"
    metadata_store = conftest.open_store(str(path))
    builder = Builder(metadata_store)
    # A list input: INPUT events whose artifact ids do not follow the order they were written in.
    late, early = builder.artifact("system.Dataset", "gs://b/2"), builder.artifact("system.Dataset", "gs://b/1")
    run_builder = builder.run("r1")
    consumer, _ = run_builder.task("consume", {"items": [late, early]}, {})
    before = [(e.artifact_id, e.type) for e in metadata_store.get_events_by_execution_ids([consumer])]
    with sqlite3.connect(path) as connection:
        plans = [connection.execute("EXPLAIN QUERY PLAN " + s).fetchall() for s in MLMD_STATEMENTS]
    indexes.add_indexes(store_module.parse_store_url(str(path)))
    with sqlite3.connect(path) as connection:
        assert [connection.execute("EXPLAIN QUERY PLAN " + s).fetchall() for s in MLMD_STATEMENTS] == plans
        assert not any("idx_kfpl" in str(plan) for plan in plans)
    reopened = conftest.open_store(str(path))
    assert [(e.artifact_id, e.type) for e in reopened.get_events_by_execution_ids([consumer])] == before
    assert before[0][0] == late


def test_a_store_made_elsewhere_is_indexed_only_on_request_then_kept_current(tmp_path, linear_yaml):
    store = tmp_path / "foreign.sqlite"
    Builder(conftest.open_store(str(store))).artifact("system.Dataset", "gs://b/x")  # made by ml-metadata
    run(linear_yaml, store, tmp_path, "first")
    assert index_names(store) == []
    result = CliRunner().invoke(cli.main, ["index", "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith(
        f"indexed sqlite:///{store} (not marked as created by kfp-lineage) in ")
    assert f"  added   {OURS[0]}" in result.output and ": 4 added, 0 present already" in result.output
    assert marker(store) == {"index_version": str(indexes.INDEX_VERSION)}
    with sqlite3.connect(store) as connection:  # a later kfp-lineage adds an index: runs add it to marked stores
        connection.execute(f"DROP INDEX {OURS[0]}")
    run(linear_yaml, store, tmp_path, "second")
    assert index_names(store) == OURS
    again = json.loads(CliRunner().invoke(cli.main, ["index", "--store", str(store), "--json"]).output)
    assert again["added"] == [] and sorted(again["present"]) == OURS and again["created_by"] is None
    dropped = CliRunner().invoke(cli.main, ["index", "--store", str(store), "--drop"])
    assert dropped.exit_code == 0 and dropped.output.startswith(f"dropped 4 indexes from sqlite:///{store} ")
    assert index_names(store) == []
    run(linear_yaml, store, tmp_path, "third")  # no marker any more: left alone
    assert index_names(store) == []


def test_index_refuses_missing_and_foreign_files_and_server_stores(tmp_path):
    for target, message in [(tmp_path / "none.sqlite", "no store at"), (tmp_path, "is a directory")]:
        result = CliRunner().invoke(cli.main, ["index", "--store", str(target)])
        assert result.exit_code == 2 and message in result.output
    plain = tmp_path / "plain.sqlite"
    sqlite3.connect(plain).execute("CREATE TABLE t (x)")
    result = CliRunner().invoke(cli.main, ["index", "--store", str(plain)])
    assert result.exit_code == 2 and f"Error: {plain} is not an MLMD store" in result.output
    assert not (tmp_path / "none.sqlite").exists()
    with pytest.raises(errors.StoreError, match="indexes are for SQLite stores"):
        indexes.add_indexes(store_module.parse_store_url("mysql://root@127.0.0.1:3306/mlmd"))


def test_the_walks_read_the_same_with_the_indexes(tmp_path):
    path = tmp_path / "m.sqlite"
    builder = Builder(conftest.open_store(str(path)))
    source = builder.artifact("system.Dataset", "bq://t", {"query": "SELECT 1"}, "source")
    runs = [training_run(builder, f"r{i}", source) for i in range(3)]
    model = runs[1].outputs[("train", "model")]
    graphs = []
    for add in (False, True):
        if add:
            indexes.add_indexes(store_module.parse_store_url(str(path)))
        metadata_store = conftest.open_store(str(path))  # a new store object: a new reader sees the indexes
        reader = lineage_reader.reader_for(metadata_store)
        assert ("INDEXED BY" in reader._indexed_by["ArtifactProperty"]) is add
        graphs.append([as_json(walk.trace(metadata_store, model)), as_json(walk.impact(metadata_store, source)),
                       as_json(walk.impact(metadata_store, source, full=True)), as_json(walk.trace(reader, model))])
    assert graphs[0] == graphs[1]


def test_a_store_the_runner_creates_stays_in_rollback_journal_mode(tmp_path, linear_yaml):
    # Not WAL: ml-metadata links its own SQLite, so a Python sqlite3 connection to the store closing in the same
    # process (the SQL reader, add_indexes) cannot see ml-metadata's locks and deletes the log it still writes; a
    # run made after such a close was lost when this was tried.
    store = tmp_path / "new.sqlite"
    run(linear_yaml, store, tmp_path, "first")
    with sqlite3.connect(store) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
