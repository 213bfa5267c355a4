"""Shared fixtures: metadata stores of every supported kind, and a reader for recorded runs."""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import pytest

from kfp_lineage.mlmd import store as store_module

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


def fresh_database_url(kind: str) -> str:
    """A URL on the test server naming a database no test used yet (ml-metadata creates it)."""
    base = server_url_or_skip(kind)
    prefix, _, _ = base.rpartition("/")
    return f"{prefix}/kfpl_{uuid.uuid4().hex[:12]}"


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
