"""Deferred writes (Recorder.defer), on a real SQLite store: the store must end as if every write had been made at
once, in the same order."""

import pytest
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage.mlmd import recorder
from kfp_lineage.mlmd import vocabulary
from tests import conftest

CONTAINER = vocabulary.CONTAINER_EXECUTION_TYPE
COMPLETE = mlmd_pb.Execution.COMPLETE


@pytest.fixture
def writer(sqlite_url):
    return recorder.Recorder(conftest.open_store(sqlite_url))


def _begin(writer, tmp_path, run_id="run-1"):
    return writer.begin_run("deferred", run_id, str(tmp_path / run_id))


def _properties(name):
    return {vocabulary.DISPLAY_NAME: name, vocabulary.TASK_NAME: name, vocabulary.INPUTS: {"x": 1}}


def test_a_deferred_publish_is_written_before_the_next_call_and_in_order(writer, tmp_path, sqlite_url):
    contexts = _begin(writer, tmp_path)
    first = writer.create_execution(contexts, CONTAINER, _properties("a"))
    second = writer.create_execution(contexts, CONTAINER, _properties("b"))
    writer.defer(lambda: writer.publish_execution(contexts, first, COMPLETE, {vocabulary.OUTPUTS: {"y": 2}}))
    writer.defer(lambda: writer.publish_execution(contexts, second, COMPLETE))
    reader = conftest.open_store(sqlite_url)
    assert [e.last_known_state for e in reader.get_executions_by_id([first, second])] == [
        mlmd_pb.Execution.RUNNING, mlmd_pb.Execution.RUNNING]

    third = writer.create_execution(contexts, CONTAINER, _properties("c"))  # runs both deferred writes first

    a, b, c = reader.get_executions_by_id([first, second, third])
    assert a.last_known_state == COMPLETE and b.last_known_state == COMPLETE
    assert a.custom_properties[vocabulary.OUTPUTS].struct_value["y"] == 2
    assert a.last_update_time_since_epoch <= b.last_update_time_since_epoch <= c.create_time_since_epoch


def test_a_read_sees_the_deferred_writes(writer, tmp_path):
    contexts = _begin(writer, tmp_path)
    properties = dict(_properties("a"), **{vocabulary.CACHE_FINGERPRINT: "f" * 64})
    execution_id = writer.create_execution(contexts, CONTAINER, properties)
    writer.defer(lambda: writer.publish_execution(contexts, execution_id, COMPLETE, {vocabulary.OUTPUTS: {}}))
    assert writer.cache_index(contexts) == {"f" * 64: execution_id}


def test_a_failed_deferred_write_raises_once_and_closing_the_run_still_writes_the_others(writer, tmp_path,
                                                                                        sqlite_url):
    contexts = _begin(writer, tmp_path)
    broken = writer.create_execution(contexts, CONTAINER, _properties("a"))
    done = writer.create_execution(contexts, CONTAINER, _properties("b"))

    def fails():
        raise OSError("disk full")

    writer.defer(fails)
    with pytest.raises(OSError, match="disk full"):
        writer.flush()
    writer.flush()  # not run again

    writer.defer(fails)
    writer.defer(lambda: writer.publish_execution(contexts, done, COMPLETE))
    closed = writer.close_run(contexts, "the runner stopped on an error: disk full")

    assert closed == 1
    reader = conftest.open_store(sqlite_url)
    a, b = reader.get_executions_by_id([broken, done])
    assert a.last_known_state == mlmd_pb.Execution.FAILED
    assert b.last_known_state == COMPLETE
