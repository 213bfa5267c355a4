"""Tests leave no database behind on the MariaDB/PostgreSQL test servers (tests/conftest.py drops them)."""

import pytest

from kfp_lineage.mlmd import store as store_module
from tests import conftest


@pytest.mark.parametrize("kind", ["mysql", "postgresql"])
def test_a_test_database_is_dropped_even_while_a_store_holds_it_open(kind):
    url = conftest.fresh_database_url(kind)
    name = store_module.parse_store_url(url).database
    store = conftest.open_store(url)  # creates it, and keeps a connection open
    assert name in conftest.list_test_databases(kind)
    conftest.drop_database(url)
    assert name not in conftest.list_test_databases(kind)
    del store


@pytest.mark.parametrize("kind", ["mysql", "postgresql"])
def test_databases_are_named_for_this_session_so_the_leak_check_sees_only_its_own(kind):
    first, second = conftest.fresh_database_url(kind), conftest.fresh_database_url(kind)
    names = [store_module.parse_store_url(url).database for url in (first, second)]
    assert names[0] != names[1]
    assert names[0][:len("kfpl_") + 7] == names[1][:len("kfpl_") + 7]  # kfpl_<session token>_
    # Never created (nothing opened them): the autouse fixture's DROP ... IF EXISTS passes all the same.


def test_only_test_databases_can_be_dropped():
    with pytest.raises(AssertionError, match="not a test database"):
        conftest.drop_database("mysql://root@127.0.0.1:3306/test")
