"""The MLMD vocabulary: the value codec both ways, the SQL column forms of a real SQLite store, and the values of
our own properties."""

import math
import os
import socket
import sqlite3

import pytest
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage.mlmd import recorder, vocabulary
from tests import conftest

SAMPLES = [
    (1, 1.0),
    (2.5, 2.5),
    ("text", "text"),
    (True, 1),
    (["a", 1.0, None, {"b": [True]}], ["a", 1.0, None, {"b": [True]}]),
    ({"nested": {"list": [1, 2]}, "x": None}, {"nested": {"list": [1.0, 2.0]}, "x": None}),  # only the top unwraps
]


@pytest.mark.parametrize("value, expected", SAMPLES)
def test_values_convert_as_the_backend_converts_artifact_metadata_and_back(value, expected):
    converted = vocabulary.to_mlmd_value(value)
    assert vocabulary.python_value(converted) == expected
    assert type(vocabulary.python_value(converted)) is type(expected)


def test_the_kinds_of_mlmd_value():
    assert vocabulary.to_mlmd_value(None) is None
    assert vocabulary.to_mlmd_value(3).WhichOneof("value") == "double_value"
    assert vocabulary.to_mlmd_value(3, keep_int=True).WhichOneof("value") == "int_value"
    assert vocabulary.to_mlmd_value(True, keep_int=True).int_value == 1
    assert vocabulary.to_mlmd_value([1]).struct_value.fields["list"].list_value.values[0].number_value == 1.0
    assert vocabulary.to_mlmd_value(object).string_value == "<class 'object'>"


def test_artifact_metadata_wraps_a_dict_and_refuses_a_null_as_the_backend_does():
    # converter.go StructValueToMLMDValue: a dict is the struct {"struct": {...}}; a null is "unknown/unsupported"
    converted = vocabulary.to_mlmd_artifact_value("params", {"lr": 0.1, "layers": [2]})
    assert converted.struct_value.fields["struct"].struct_value.fields["lr"].number_value == 0.1
    assert list(converted.struct_value) == ["struct"]
    assert vocabulary.python_value(converted) == {"lr": 0.1, "layers": [2.0]}  # read back unwrapped
    assert vocabulary.python_value(vocabulary.to_mlmd_artifact_value("n", [1])) == [1.0]
    assert vocabulary.to_mlmd_artifact_value("ok", True).int_value == 1
    with pytest.raises(ValueError, match="artifact metadata 'threshold' is null"):
        vocabulary.to_mlmd_artifact_value("threshold", None)
    assert vocabulary.null_metadata_key({"a": 1, "c": None, "b": None}) == "b"
    assert vocabulary.null_metadata_key({"a": {"inner": None}}) is None  # only a top-level null fails


def test_a_struct_whose_one_key_is_list_or_struct_unwraps_only_around_that_kind():
    assert vocabulary.python_value(vocabulary.to_mlmd_value({"struct": "not a dict"})) == {"struct": "not a dict"}
    assert vocabulary.python_value(vocabulary.to_mlmd_value({"list": "not a list"})) == {"list": "not a list"}


def test_a_nan_inside_a_struct_reads_back_instead_of_failing():
    value = vocabulary.python_value(vocabulary.to_mlmd_value({"loss": float("nan")}))
    assert math.isnan(value["loss"])


def test_custom_property_and_int_or_none():
    execution = mlmd_pb.Execution()
    recorder.set_custom_properties(execution, {"parent_dag_id": 7, "outputs": {"n": 1}})
    assert vocabulary.custom_property(execution, vocabulary.PARENT_DAG_ID) == 7
    assert vocabulary.custom_property(execution, vocabulary.OUTPUTS) == {"n": 1.0}
    assert vocabulary.custom_property(execution, vocabulary.ITERATION_INDEX, "none") == "none"
    assert [vocabulary.int_or_none(v) for v in (7, 7.0, "7", "x", None)] == [7, 7, 7, None, None]


def test_sql_columns_decode_to_what_ml_metadata_returns(sqlite_url):
    """Every value form ml-metadata writes to the SQL schema (ints, doubles, strings, `mlmd-struct::` strings,
    booleans) reads back from the rows as python_value reads the Value ml-metadata returns."""
    store = conftest.open_store(sqlite_url)
    type_id = store.put_artifact_type(mlmd_pb.ArtifactType(name="system.Dataset"))
    artifact = mlmd_pb.Artifact(type_id=type_id, uri="/data")
    artifact.custom_properties["count"].int_value = 3
    artifact.custom_properties["flag"].bool_value = True
    for key, value in {"rows": 2.5, "name": "d", "columns": ["a", "b"], "schema": {"a": {"b": 1}}}.items():
        artifact.custom_properties[key].CopyFrom(vocabulary.to_mlmd_value(value))
    [artifact_id] = store.put_artifacts([artifact])
    [stored] = store.get_artifacts_by_id([artifact_id])
    expected = {k: vocabulary.python_value(v) for k, v in stored.custom_properties.items()}
    assert expected == {"count": 3, "flag": True, "rows": 2.5, "name": "d", "columns": ["a", "b"],
                        "schema": {"a": {"b": 1.0}}}

    with sqlite3.connect(sqlite_url) as connection:
        rows = connection.execute(
            "SELECT name, int_value, double_value, string_value, proto_value, bool_value FROM ArtifactProperty "
            "WHERE artifact_id = ?", (artifact_id,)).fetchall()
        coalesced = dict(connection.execute(
            "SELECT name, COALESCE(string_value, double_value, int_value) FROM ArtifactProperty "
            "WHERE artifact_id = ? AND bool_value IS NULL", (artifact_id,)).fetchall())
    assert any(str(row[3]).startswith(vocabulary.SQL_STRUCT_PREFIX) for row in rows)  # the form is exercised
    assert {row[0]: vocabulary.sql_value(*row[1:]) for row in rows} == expected
    assert {k: vocabulary.sql_string_value(v) for k, v in coalesced.items()} == {
        k: v for k, v in expected.items() if k != "flag"}


def test_the_runner_identity_names_this_process_and_parses_back():
    identity = vocabulary.runner_identity()
    host, pid = vocabulary.parse_runner(identity)
    assert (host, pid) == (socket.gethostname(), os.getpid())
    assert identity == vocabulary.runner_identity(os.getpid())  # stable for one process
    assert vocabulary.parse_runner("elsewhere:not-a-pid:") == ("elsewhere", None)


def test_root_execution_names():
    assert vocabulary.root_execution_name("r-1") == "run/r-1"
    assert vocabulary.run_id_of_root("run/r-1") == "r-1"
    assert vocabulary.run_id_of_root("") is None


def test_state_and_event_tables_come_from_the_ml_metadata_protos():
    assert vocabulary.EVENT_TYPES[mlmd_pb.Event.OUTPUT] == vocabulary.OUTPUT_EVENT == "OUTPUT"
    assert vocabulary.EVENT_TYPE_IDS["INPUT"] == mlmd_pb.Event.INPUT
    assert vocabulary.execution_state_name(mlmd_pb.Execution.CACHED) == "CACHED"
    assert vocabulary.execution_state_name(99) == "99"
    assert vocabulary.ARTIFACT_STATES[mlmd_pb.Artifact.LIVE] == "LIVE"


def test_the_spelled_out_enums_are_ml_metadata_s():
    # vocabulary spells these out so that reading a store needs no protobuf import.
    for table, enum in ((vocabulary.EVENT_TYPES, mlmd_pb.Event.Type),
                        (vocabulary.ARTIFACT_STATES, mlmd_pb.Artifact.State),
                        (vocabulary.EXECUTION_STATES, mlmd_pb.Execution.State)):
        assert table == {v.number: v.name for v in enum.DESCRIPTOR.values}
    assert (vocabulary.INPUT_EVENT, vocabulary.OUTPUT_EVENT) == ("INPUT", "OUTPUT")
    assert vocabulary.EVENT_TYPE_IDS["OUTPUT"] == mlmd_pb.Event.OUTPUT
