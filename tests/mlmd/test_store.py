"""Store URLs: parsing, redaction, opening, and errors that never show the password."""

import os
import stat

import pytest

from kfp_lineage import errors
from kfp_lineage.mlmd import store


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


def test_the_printed_store_url_parses_back_to_the_same_store(tmp_path):
    url = store.parse_store_url(str(tmp_path / "m.sqlite"))
    assert url.redacted == f"sqlite:///{tmp_path}/m.sqlite"
    assert store.parse_store_url(url.redacted).path == url.path


# Regressions found by tests/reliability/test_fuzz_store_urls.py: a traceback, or the password in the message.
@pytest.mark.parametrize(
    "text, message",
    [
        ("mysql://root:pw@[::1/mlmd", "store URL mysql://root:***@[::1/mlmd cannot be parsed (Invalid IPv6 URL): use a "
         "file path, sqlite:///PATH, mysql://USER:PASSWORD@HOST:PORT/DB or postgresql://USER@HOST:PORT/DB"),
        ("mysql://root:pa#ss@localhost/mlmd", "store URL mysql://root:***@localhost/mlmd has a port that is not a "
         "number from 0 to 65535: use mysql://USER@HOST:PORT/DB"),
        ("mysql://root:12?ss@localhost/mlmd", "store URL mysql://root:***@localhost/mlmd has '@' after the host: "
         "percent-encode special characters in the user and password (%2F for /, %3F for ?, %23 for #, %40 for @)"),
        ("mysql://root:12/ss@localhost/mlmd", "store URL mysql://root:***@localhost/mlmd has '@' after the host: "
         "percent-encode special characters in the user and password (%2F for /, %3F for ?, %23 for #, %40 for @)"),
        ("mysql://h:70000/db", "store URL mysql://h:70000/db has a port that is not a number from 0 to 65535: "
         "use mysql://USER@HOST:PORT/DB"),
    ],
    ids=["unmatched-bracket", "raw-hash-in-password", "raw-question-mark", "raw-slash-in-password", "port-too-big"],
)
def test_unencoded_special_characters_never_show_the_password(text, message):
    with pytest.raises(errors.StoreError) as raised:
        store.parse_store_url(text)
    assert str(raised.value) == message


def test_a_directory_given_as_the_store_says_so(tmp_path):
    for url in (str(tmp_path), f"sqlite:///{tmp_path}"):
        with pytest.raises(errors.StoreError) as refused:
            store.parse_store_url(url)
        assert str(refused.value) == (f"store {tmp_path} is a directory: name the store file in it, e.g. "
                                      f"--store {tmp_path}/mlmd.sqlite")
