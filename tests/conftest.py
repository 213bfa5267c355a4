"""Shared fixtures: metadata stores of every supported kind, and a reader for recorded runs."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import subprocess
import uuid
from typing import Iterator, List

import pytest

from kfp_lineage.engine.exec import environment_plan
from kfp_lineage.mlmd import store as store_module

# Tests run tasks in the runner's environment unless they opt in (task_env="auto"/"isolated", or --task-env): specs
# compiled with kfp's default image (python:3.9) would otherwise each get an environment built from the package
# index, and the suite must not need the network. Tests of task environments install from a local wheelhouse.
os.environ.setdefault(environment_plan.MODE_ENV_VAR, "current")

# A suite started in the background (`make test &` from a script) inherits SIGINT ignored, which Python and the
# runner then leave ignored (a nohup'd run is not ours to interrupt): the interrupt tests, and the runners they
# start, would never see Ctrl-C. The suite runs as if started from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Server URLs come from the environment; .ci/run sets them and KFP_LINEAGE_REQUIRE_SERVERS=1 so a missing
# server fails the run instead of skipping.
SERVER_URL_VARS = {
    "mysql": "KFP_LINEAGE_TEST_MYSQL_URL",
    "postgresql": "KFP_LINEAGE_TEST_POSTGRESQL_URL",
}


def server_url_or_skip(kind: str) -> str:
    """The base URL of a test server of `kind`, or skip (fail under KFP_LINEAGE_REQUIRE_SERVERS=1)."""
    variable = SERVER_URL_VARS[kind]
    url = os.environ.get(variable)
    if not url:
        reason = f"{kind} tests need a server: set {variable} (e.g. in .ci/run)"
        if os.environ.get("KFP_LINEAGE_REQUIRE_SERVERS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return url


# Every server database a test uses is named kfpl_<this session's token>_<random>, made by fresh_database_url and
# dropped when the test ends, passed or failed; _drop_test_databases then fails the test if one is still there.
DATABASE_PREFIX = "kfpl_"
_SESSION_TOKEN = uuid.uuid4().hex[:6]
_created_databases: List[str] = []  # URLs handed out to the running test


def fresh_database_url(kind: str) -> str:
    """A URL on the test server naming a database no test used yet (ml-metadata creates it on first open).

    The database is dropped when the test that asked for it ends.
    """
    base = server_url_or_skip(kind)
    prefix, _, _ = base.rpartition("/")
    url = f"{prefix}/{DATABASE_PREFIX}{_SESSION_TOKEN}_{uuid.uuid4().hex[:12]}"
    _created_databases.append(url)
    return url


def drop_database(url: str) -> None:
    """Drops the database `url` names (if it exists) with the server's own command-line client.

    PostgreSQL refuses to drop a database with open connections, and a store a test still holds keeps one: they
    are ended first.
    """
    parsed = store_module.parse_store_url(url)
    name = parsed.database
    assert name.startswith(DATABASE_PREFIX), f"refusing to drop {name!r}: not a test database"
    if parsed.scheme == "mysql":
        run_server_sql("mysql", f"DROP DATABASE IF EXISTS `{name}`")
    else:
        end_connections(url)
        run_server_sql("postgresql", f'DROP DATABASE IF EXISTS "{name}"')


def end_connections(url: str) -> int:
    """Ends every server connection to the database `url` names, as a server restart or a proxy would; returns how
    many it ended."""
    parsed = store_module.parse_store_url(url)
    if parsed.scheme == "mysql":
        ids = run_server_sql("mysql", "SELECT id FROM information_schema.processlist "
                                      f"WHERE db = '{parsed.database}' AND id <> CONNECTION_ID()").split()
        if ids:
            run_server_sql("mysql", " ".join(f"KILL CONNECTION {i};" for i in ids))
        return len(ids)
    ended = run_server_sql("postgresql", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                         f"WHERE datname = '{parsed.database}' AND pid <> pg_backend_pid()")
    return len(ended.split())


def list_test_databases(kind: str, token: str = "") -> List[str]:
    """Names of the databases on the `kind` test server that tests made (this session's only, with `token`)."""
    pattern = (DATABASE_PREFIX + token).replace("_", "\\_") + "%"
    if kind == "mysql":
        out = run_server_sql(kind, f"SHOW DATABASES LIKE '{pattern}'")
    else:
        out = run_server_sql(kind, f"SELECT datname FROM pg_database WHERE datname LIKE '{pattern}'")
    return sorted(out.split())


def run_server_sql(kind: str, *statements: str, database: str = "") -> str:
    """Runs SQL on the `kind` test server with its command-line client (mariadb/mysql, psql), as the user of the
    server's URL, in `database` or the URL's own; returns the rows, tab-separated, without a header.

    Each statement runs on its own (PostgreSQL's DROP DATABASE cannot run inside a transaction).
    """
    url = store_module.parse_store_url(server_url_or_skip(kind))
    database = database or url.database
    if kind == "mysql":
        client = shutil.which("mariadb") or shutil.which("mysql")
        command = [f"--host={url.host}", f"--port={url.port}", f"--user={url.user}", f"--database={database}",
                   "--batch", "--skip-column-names"]
        for statement in statements:
            command += ["--execute", statement]
        env = dict(os.environ, MYSQL_PWD=url.password)
        package = "mariadb-client"
    else:
        client = shutil.which("psql")
        command = [f"--host={url.host}", f"--port={url.port}", f"--username={url.user}", f"--dbname={database}",
                   "--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "--set=ON_ERROR_STOP=1"]
        for statement in statements:
            command += ["--command", statement]
        env = dict(os.environ, PGPASSWORD=url.password)
        package = "postgresql-client"
    if client is None:
        pytest.fail(f"{kind} tests drop their databases with the server's command-line client: install {package}")
    done = subprocess.run([client] + command, capture_output=True, text=True, timeout=60, env=env)
    if done.returncode != 0:
        pytest.fail(f"{os.path.basename(client)} failed ({done.returncode}) on {statements}: {done.stderr.strip()}")
    return done.stdout


@pytest.fixture(autouse=True)
def _drop_test_databases() -> Iterator[None]:
    """Drops the server databases the test made, then fails it if any of them is still there."""
    yield
    if not _created_databases:
        return
    urls = list(_created_databases)
    _created_databases.clear()
    gc.collect()  # closes the connections of stores the test no longer references
    for url in urls:
        drop_database(url)
    kinds = {store_module.parse_store_url(url).scheme for url in urls}
    left = [name for kind in sorted(kinds) for name in list_test_databases(kind, _SESSION_TOKEN)]
    if left:
        pytest.fail(f"the test left databases behind: {', '.join(left)}")


@pytest.fixture(params=["sqlite", "mysql", "postgresql"])
def any_store_url(request, tmp_path) -> Iterator[str]:
    """A fresh store URL for each kind of store: SQLite file always; MariaDB/PostgreSQL when configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/mlmd.sqlite"
    else:
        yield fresh_database_url(request.param)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return str(tmp_path / "mlmd.sqlite")


def open_store(url: str):
    """Opens a store for reading in assertions, with plain ml-metadata."""
    return store_module.open_store(store_module.parse_store_url(url))
