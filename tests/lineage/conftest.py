"""Fixtures of the lineage tests: a fresh SQLite store and a Builder writing runs into it as the backend does."""

import pytest

from tests import conftest
from tests.lineage_stores import Builder


@pytest.fixture
def store(sqlite_url):
    return conftest.open_store(sqlite_url)


@pytest.fixture
def builder(store):
    return Builder(store)
