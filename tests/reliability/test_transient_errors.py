"""Transient database failures (deadlocks, lock timeouts, dropped connections) are retried; real errors are not."""

import subprocess
import time

import pytest
from ml_metadata import errors as mlmd_errors
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage.mlmd import recorder
from kfp_lineage.mlmd import store as store_module
from tests import conftest
from tests.mlmd_view import RunView

CONTAINER = "system.ContainerExecution"

# Texts as ml-metadata 1.17.1 reports them (copied from real failures on MariaDB 10.11 and PostgreSQL 15).
MARIADB_DEADLOCK_AT_OPEN = RuntimeError(
    "mysql_query aborted: errno: Deadlock found when trying to get lock; try restarting transaction, error: "
    "Deadlock found when trying to get lock; try restarting transaction")
MARIADB_LOST = mlmd_errors.InternalError(
    "mysql_query failed: errno: Lost connection to MySQL server during query, error: Lost connection to MySQL "
    "server during query")
POSTGRESQL_TERMINATED = mlmd_errors.InternalError(
    "PostgreSQL metadata source error: FATAL:  terminating connection due to administrator command\nserver closed "
    "the connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while "
    "processing the request.\n")


@pytest.mark.parametrize("error", [
    MARIADB_DEADLOCK_AT_OPEN,
    mlmd_errors.AbortedError("mysql_query aborted: errno: Lock wait timeout exceeded; try restarting transaction, "
                             "error: Lock wait timeout exceeded; try restarting transaction"),
    mlmd_errors.AbortedError("Concurrent creation of the same context at the first time. Retry the transaction"),
    mlmd_errors.InternalError("PostgreSQL metadata source error: ERROR:  deadlock detected\nDETAIL:  Process 7 "
                              "waits for ShareLock on transaction 9; blocked by process 8."),
    mlmd_errors.InternalError("PostgreSQL metadata source error: ERROR:  could not serialize access due to "
                              "concurrent update\n"),
    mlmd_errors.InternalError("PostgreSQL metadata source error: ERROR:  canceling statement due to lock timeout\n"),
    MARIADB_LOST,
    POSTGRESQL_TERMINATED,
    mlmd_errors.InternalError("PostgreSQL metadata source error: "),  # libpq after the connection went away
])
def test_transient_failures_are_recognised(error):
    assert store_module.is_transient(error)


@pytest.mark.parametrize("error", [
    mlmd_errors.AlreadyExistsError("Given node already exists: type_id: 3 name: \"run-1\""),
    mlmd_errors.InvalidArgumentError("context name must not be empty"),
    mlmd_errors.InternalError("PostgreSQL metadata source error: ERROR:  duplicate key value violates unique "
                              "constraint \"context_type_id_name_key\"\n"),
    mlmd_errors.InternalError("PostgreSQL metadata source error: ERROR:  relation \"artifact\" does not exist\n"),
    RuntimeError("mysql_real_connect failed: errno: Can't connect to MySQL server on '127.0.0.1' (111), error: "
                 "Can't connect to MySQL server on '127.0.0.1' (111)"),
    RuntimeError("mysql_real_connect failed: errno: Access denied for user 'root'@'localhost', error: ..."),
    RuntimeError("PostgreSQL metadata source error: FATAL:  password authentication failed for user \"mlmd\""),
    # The words alone are not enough: a task named after a deadlock is not one.
    mlmd_errors.InvalidArgumentError("property 'deadlock detected' of task 'lost-connection' is not a string"),
])
def test_real_errors_are_not_transient(error):
    assert not store_module.is_transient(error)


# Texts of the losers of the race to create an empty database's schema (from real failures; the last one ended a CI
# run before it was recognised). Opening the store is retried on these, and on nothing else.
@pytest.mark.parametrize("error", [
    RuntimeError("Creating the schema failed: concurrent connection to the empty database. Please retry the "
                 "connection."),
    RuntimeError("PostgreSQL metadata source error: ERROR:  duplicate key value violates unique constraint "
                 "\"pg_database_datname_index\"\nDETAIL:  Key (datname)=(kfpl_1) already exists.\n"),
    RuntimeError("PostgreSQL metadata source error: ERROR:  relation \"artifact\" already exists\n"),
    RuntimeError("PostgreSQL metadata source error: ERROR:  type \"type\" already exists\n"),
])
def test_schema_creation_races_are_retried_at_open(error):
    assert store_module._is_schema_race(error)


def test_other_duplicates_are_not_schema_races():
    assert not store_module._is_schema_race(mlmd_errors.InternalError(
        "PostgreSQL metadata source error: ERROR:  duplicate key value violates unique constraint "
        "\"context_type_id_name_key\"\n"))


def test_a_real_error_is_raised_at_once_without_a_retry(tmp_path):
    store = conftest.open_store(str(tmp_path / "mlmd.sqlite"))
    type_id = store.put_context_type(mlmd_pb.ContextType(name="t"))
    store.put_contexts([mlmd_pb.Context(type_id=type_id, name="run-1")])
    calls = []

    def put_contexts(contexts):
        calls.append(time.monotonic())
        return store.put_contexts(contexts)

    with pytest.raises(mlmd_errors.AlreadyExistsError):
        store_module.retry_transient(put_contexts, [mlmd_pb.Context(type_id=type_id, name="run-1")])
    assert len(calls) == 1


@pytest.mark.parametrize("kind", ["mysql", "postgresql"])
def test_a_dropped_connection_is_reopened_and_the_write_made(kind, tmp_path):
    url = conftest.fresh_database_url(kind)
    writer = recorder.Recorder(conftest.open_store(url))
    contexts = writer.begin_run("pipeline", "run-1", str(tmp_path))
    assert conftest.end_connections(url) >= 1  # as a server restart, an idle timeout or a proxy would
    # On PostgreSQL ml-metadata never reconnects by itself: without the retry every later call fails.
    execution_id = writer.create_execution(contexts, CONTAINER, {"task_name": "train"})
    writer.publish_execution(contexts, execution_id, mlmd_pb.Execution.COMPLETE)
    view = RunView(conftest.open_store(url), "run-1")
    assert [(e.id, e.last_known_state) for e in view.executions] == [(execution_id, mlmd_pb.Execution.COMPLETE)]


def test_a_lock_timeout_on_postgresql_is_waited_out(tmp_path):
    url = conftest.fresh_database_url("postgresql")
    server = store_module.parse_store_url(url)
    name = server.database
    conftest.open_store(url)  # creates the database and its schema
    conftest.run_server_sql("postgresql", f"ALTER DATABASE \"{name}\" SET lock_timeout = '100ms'")
    writer = recorder.Recorder(conftest.open_store(url))  # a new connection, with the short lock timeout
    contexts = writer.begin_run("pipeline", "run-1", str(tmp_path))
    # Another client holds the execution table against writes (reads go on) for a second and a half.
    holder = subprocess.Popen(
        ["psql", f"--host={server.host}", f"--port={server.port}", f"--username={server.user}", f"--dbname={name}",
         "--no-psqlrc", "--quiet",
         "--command", "BEGIN; LOCK TABLE execution IN SHARE MODE; SELECT pg_sleep(1.5); COMMIT;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            if conftest.run_server_sql("postgresql", "SELECT count(*) FROM pg_locks l JOIN pg_class c ON "
                                       "c.oid = l.relation WHERE c.relname = 'execution' AND l.mode = 'ShareLock'",
                                       database=name).strip() == "1":
                break
            time.sleep(0.05)
        else:
            pytest.fail("the lock holder never took its lock")
        started = time.monotonic()
        execution_id = writer.create_execution(contexts, CONTAINER, {"task_name": "train"})
        waited = time.monotonic() - started
    finally:
        assert holder.wait(timeout=30) == 0, holder.stderr.read()
    assert waited > 0.5  # it did meet the lock (and its timeout) and retried until the holder let go
    assert [e.id for e in RunView(conftest.open_store(url), "run-1").executions] == [execution_id]
