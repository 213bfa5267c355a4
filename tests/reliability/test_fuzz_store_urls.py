"""Fuzzed store URLs: parsed or refused with a StoreError, and the password never shown."""

import urllib.parse

from hypothesis import assume, event, given
from hypothesis import strategies as st

from kfp_lineage import errors
from kfp_lineage.mlmd import store

SCHEMES = ["mysql", "mariadb", "postgresql", "postgres", "sqlite", "mongodb", "", "MySQL", "mysql+pymysql", "grpc",
           "grpcs", "GRPC"]
# Characters a password may hold, including every one that means something in a URL.
PASSWORD_ALPHABET = st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]) | st.sampled_from(
    list("@:/?#[]%!$&'()*+,;= \\\"")
)


def _refused_or_parsed(text: str):
    try:
        return store.parse_store_url(text), None
    except errors.StoreError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        return None, str(e)


def _assert_hidden(secret: str, url, message) -> None:
    """The password, as typed or decoded, appears nowhere a user or a log can see it."""
    shown = [message] if message is not None else [url.redacted, str(url), repr(url)]
    for text in shown:
        for form in {secret, urllib.parse.unquote(secret)}:
            assert form not in text, f"password {form!r} shown in {text!r}"


@given(st.text(max_size=80))
def test_arbitrary_text_parses_or_is_a_store_error(text):
    url, _ = _refused_or_parsed(text)
    if url is not None:
        assert url.scheme in ("sqlite", "mysql", "postgresql", "grpc", "grpcs")
        if url.scheme == "sqlite":
            assert url.path.startswith("/")


@given(st.sampled_from(SCHEMES), st.text(max_size=40))
def test_scheme_with_arbitrary_rest_parses_or_is_a_store_error(scheme, rest):
    _refused_or_parsed(f"{scheme}://{rest}")


hosts = st.one_of(
    st.sampled_from(["localhost", "127.0.0.1", "db.example.com", "[::1]", "[::1", "", "h_st", "xn--bcher-kva.ch"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", max_size=15),
)
ports = st.one_of(
    st.none(), st.integers(-5, 70000).map(str), st.sampled_from(["", "port", "33o6", "+1", " 1", "٣٣٠٦"])
)
databases = st.one_of(st.sampled_from(["mlmd", "", "db/x", "db?x=1", "db#f"]), st.text(max_size=10))
users = st.one_of(st.sampled_from(["root", "", "u@x", "a:b"]), st.text(max_size=8))


@st.composite
def server_urls(draw, encode: bool):
    """A mysql/postgresql URL with a distinctive password, percent-encoded as documented or typed raw."""
    scheme = draw(st.sampled_from(["mysql", "mariadb", "postgresql", "postgres"]))
    # Raw, "12/..." reads as a port followed by a path that holds the rest of the password; "12?" and "12#" as
    # a port followed by a query or fragment.
    lead = draw(st.sampled_from(["Pw", "12/", "12?", "12#", "12@", "Pw:", "[Pw"]))
    password = lead + draw(st.text(PASSWORD_ALPHABET, min_size=4, max_size=16))
    user, host, port, database = draw(users), draw(hosts), draw(ports), draw(databases)
    quote = (lambda part: urllib.parse.quote(part, safe="")) if encode else (lambda part: part)
    written = quote(password)
    netloc = f"{quote(user)}:{written}@{host}" + (f":{port}" if port is not None else "")
    url = f"{scheme}://{netloc}/{database}"
    # Only a password that is not also part of the rest of the URL can be told apart from it.
    without = url.replace(f":{written}@", ":@", 1)
    assume(written not in without and password not in without)
    return url, written, password


@given(server_urls(encode=True))
def test_encoded_password_round_trips_and_is_never_shown(case):
    url_text, written, password = case
    url, message = _refused_or_parsed(url_text)
    event("parsed" if url else "refused")
    if url is not None:
        assert url.password == password
    _assert_hidden(written, url, message)
    _assert_hidden(password, url, message)


@given(server_urls(encode=False))
def test_raw_password_with_special_characters_is_never_shown(case):
    url_text, written, password = case
    url, message = _refused_or_parsed(url_text)
    event("parsed" if url else "refused")
    _assert_hidden(password, url, message)
