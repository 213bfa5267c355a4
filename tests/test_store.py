"""Store URLs: parsing, redaction, opening, and errors that never show the password."""

import os
import stat

import pytest

from kfp_lineage import errors, store


def test_default_is_a_sqlite_file_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = store.parse_store_url(None)
    assert url.scheme == "sqlite" and url.path == str(tmp_path / ".kfp-lineage" / "mlmd.sqlite")


@pytest.mark.parametrize(
    "text, path",
    [("/abs/m.sqlite", "/abs/m.sqlite"), ("sqlite:////abs/m.sqlite", "/abs/m.sqlite")],
)
def test_sqlite_paths(text, path):
    assert store.parse_store_url(text).path == path


def test_relative_sqlite_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert store.parse_store_url("sqlite:///sub/m.sqlite").path == str(tmp_path / "sub" / "m.sqlite")


def test_mysql_url_keeps_the_password_out_of_its_text():
    url = store.parse_store_url("mysql://admin:s3cr%40t@db.example:3307/mlmd")
    assert (url.host, url.port, url.user, url.password, url.database) == ("db.example", 3307, "admin", "s3cr@t", "mlmd")
    assert url.redacted == "mysql://admin:***@db.example:3307/mlmd"
    assert "s3cr" not in str(url) and "s3cr" not in repr(url)
    assert url.connection_config().mysql.password == "s3cr@t"


def test_postgresql_url_defaults_the_port():
    url = store.parse_store_url("postgresql://postgres@localhost/mlmd")
    assert url.port == 5432 and url.connection_config().postgresql.dbname == "mlmd"


@pytest.mark.parametrize(
    "text, message",
    [
        ("mongodb://h/db", "store URL scheme 'mongodb' is not supported"),
        ("mysql://root:hunter2@127.0.0.1:3306/", "needs a host and a database"),
        ("mysql://root:hunter2@127.0.0.1:port/db", "has a port that is not a number"),
        ("sqlite:///", "has no file path"),
    ],
)
def test_bad_urls(text, message):
    with pytest.raises(errors.StoreError, match=message) as raised:
        store.parse_store_url(text)
    assert "hunter2" not in str(raised.value)


def test_unreachable_server_is_a_store_error_without_the_password():
    url = store.parse_store_url("mysql://root:hunter2@127.0.0.1:1/mlmd")
    with pytest.raises(errors.StoreError, match=r"cannot open the metadata store mysql://root:\*\*\*@127.0.0.1:1/mlmd") as e:
        store.open_store(url)
    assert "hunter2" not in str(e.value)


def test_new_sqlite_store_is_private_to_its_owner(tmp_path):
    url = store.parse_store_url(str(tmp_path / "new" / "mlmd.sqlite"))
    store.open_store(url)
    assert stat.S_IMODE(os.stat(url.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o700
