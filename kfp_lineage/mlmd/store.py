"""Metadata store URLs: parse, redact and open ml-metadata stores (SQLite, MySQL/MariaDB, PostgreSQL, and an
ml-metadata gRPC service: grpc_store.py)."""

from __future__ import annotations

import os
import random
import re
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

if TYPE_CHECKING:  # imported where used: the read commands' SQL path runs without ml-metadata
    from ml_metadata.metadata_store import metadata_store

from kfp_lineage import errors
from kfp_lineage.mlmd.store_url import StoreURL  # re-exported: callers name it store.StoreURL

DEFAULT_STORE_PATH = os.path.join(".kfp-lineage", "mlmd.sqlite")
STORE_ENV_VAR = "KFP_LINEAGE_STORE"

_SCHEMES = ("sqlite", "mysql", "postgresql")
_OPEN_ATTEMPTS = 12  # with _backoff: about 10 s before giving up
_WRITE_ATTEMPTS = 8  # with _backoff: about 3 s, on top of ml-metadata's own retries of AbortedError
_T = TypeVar("_T")
_DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}


def parse_store_url(url: Optional[str]) -> StoreURL:
    """Parses a store URL.

    Args:
        url: a file path, `sqlite:///relative/path`, `sqlite:////absolute/path`,
            `mysql://user:password@host:port/db`, `postgresql://user[:password]@host:port/db`, or
            `grpc://host:port` / `grpcs://host:port?ca=...` (grpc_store.parse_grpc_url).
            None or "" means the default SQLite file `.kfp-lineage/mlmd.sqlite`.

    Returns:
        The parsed URL; SQLite paths are made absolute.

    Raises:
        StoreError: the URL has an unknown scheme or misses a part; the message shows the URL redacted.
    """
    if not url:
        return StoreURL(scheme="sqlite", path=os.path.abspath(DEFAULT_STORE_PATH))
    if "://" not in url:
        return _sqlite_url(url)
    try:
        parsed = urllib.parse.urlsplit(url)
    except ValueError as e:  # e.g. "Invalid IPv6 URL" for an unmatched '['
        raise errors.StoreError(
            f"store URL {_redact_netloc(url)} cannot be parsed ({e}): use a file path, sqlite:///PATH, "
            "mysql://USER:PASSWORD@HOST:PORT/DB or postgresql://USER@HOST:PORT/DB"
        ) from None
    scheme = {"postgres": "postgresql", "mariadb": "mysql"}.get(parsed.scheme, parsed.scheme)
    if scheme in ("grpc", "grpcs"):
        from kfp_lineage.mlmd import grpc_store

        return grpc_store.parse_grpc_url(url)
    if scheme == "vertex":  # read commands take it before it reaches here (cli/_common.py: open_existing_store)
        raise errors.StoreError(
            f"{url.split('?', 1)[0]} is a Vertex AI pipeline job, which kfp-lineage reads but never records into: "
            "record into a file, mysql://, postgresql:// or grpc:// store")
    if scheme not in _SCHEMES:
        shown = url.split("://", 1)[0]
        raise errors.StoreError(
            f"store URL scheme {shown!r} is not supported: use a file path, sqlite:///PATH, "
            "mysql://USER:PASSWORD@HOST:PORT/DB, postgresql://USER@HOST:PORT/DB or grpc://HOST:PORT"
        )
    if scheme == "sqlite":
        path = url.split("://", 1)[1]
        # sqlite:///rel/path -> "rel/path"; sqlite:////abs/path -> "/abs/path" (SQLAlchemy's convention).
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise errors.StoreError("store URL sqlite:/// has no file path: use sqlite:///PATH/TO/mlmd.sqlite")
        return _sqlite_url(path)
    try:
        port = parsed.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise errors.StoreError(
            f"store URL {_redact_netloc(url)} has a port that is not a number from 0 to 65535: "
            f"use {scheme}://USER@HOST:PORT/DB"
        ) from None
    if "@" in parsed.path + parsed.query + parsed.fragment:
        # A raw '/', '?' or '#' in the password ended the host part early; the rest of the password would
        # otherwise be read as the database and shown.
        raise errors.StoreError(
            f"store URL {_redact_netloc(url)} has '@' after the host: percent-encode special characters in the "
            "user and password (%2F for /, %3F for ?, %23 for #, %40 for @)"
        )
    database = parsed.path.lstrip("/")
    if not parsed.hostname or not database:
        raise errors.StoreError(
            f"store URL {_redact_netloc(url)} needs a host and a database: use {scheme}://USER@HOST:PORT/DB"
        )
    return StoreURL(
        scheme=scheme,
        host=parsed.hostname,
        port=port,
        user=urllib.parse.unquote(parsed.username or ""),
        password=urllib.parse.unquote(parsed.password or ""),
        database=database,
    )


def _sqlite_url(path: str) -> StoreURL:
    """A SQLite store URL for `path`; a directory is refused, with the file to name instead."""
    absolute = os.path.abspath(path)
    if os.path.isdir(absolute):
        raise errors.StoreError(f"store {absolute} is a directory: name the store file in it, e.g. "
                                f"--store {os.path.join(path, 'mlmd.sqlite')}")
    return StoreURL(scheme="sqlite", path=absolute)


def _redact_netloc(url: str) -> str:
    """The URL as an error shows it: everything between the user's ':' and the last '@' replaced by `***`.

    Works on the text rather than urlsplit, so a password with a raw '/', '?', '#', '@' or '[' is hidden too;
    control characters are escaped so the message stays one line.
    """
    scheme, separator, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        url = f"{scheme}{separator}{user}{':***' if colon else ''}@{hostpart}"
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in url)


def open_store(url: StoreURL) -> metadata_store.MetadataStore:
    """Opens (creating when needed) the ml-metadata store at `url`.

    Several runners opening one empty database race to create its schema, and a busy server can report a deadlock
    or drop the connection: those are retried with backoff for about 10 s (see `is_transient`); any other error is
    raised at once.

    Raises:
        StoreError: the store cannot be opened; the message names the redacted URL and the cause.
    """
    if url.scheme in ("grpc", "grpcs"):
        from kfp_lineage.mlmd import grpc_store

        return grpc_store.open_grpc_store(url)
    from ml_metadata.metadata_store import metadata_store

    if url.scheme == "sqlite":
        directory = os.path.dirname(url.path)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as e:
            raise errors.StoreError(f"cannot create the store directory {directory}: {e.strerror}") from None
        created = not os.path.exists(url.path)
    store = None
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            store = metadata_store.MetadataStore(url.connection_config())
            break
        except Exception as e:  # ml-metadata raises RuntimeError from the constructor, with the status text
            if (_is_schema_race(e) or is_transient(e)) and attempt + 1 < _OPEN_ATTEMPTS:
                time.sleep(_backoff(attempt, cap=2.0))
                continue
            cause = str(e).replace(url.password, "***") if url.password else str(e)
            cause = " ".join(cause.split())[:300]
            raise errors.StoreError(f"cannot open the metadata store {url.redacted}: {cause}") from None
    if url.scheme == "sqlite" and created:
        os.chmod(url.path, 0o600)
    return store


# Texts of transient failures, as ml-metadata passes them on from the database or its client library. Each is a
# specific server or client message: a conflict whose transaction was rolled back whole, or a connection the server
# dropped. Anything else (a constraint, a bad query, a server that refuses connections) is a real error.
_TRANSIENT_TEXTS = re.compile(
    "|".join([
        # MySQL/MariaDB: ER_LOCK_DEADLOCK (1213) and ER_LOCK_WAIT_TIMEOUT (1205).
        r"Deadlock found when trying to get lock",
        r"Lock wait timeout exceeded",
        # PostgreSQL: deadlock_detected (40P01), serialization_failure (40001), lock_not_available (55P03).
        r"ERROR:\s+deadlock detected",
        r"ERROR:\s+could not serialize access",
        r"ERROR:\s+canceling statement due to lock timeout",
        # SQLite past its busy timeout.
        r"database is locked",
    ])
)
_CONNECTION_LOST_TEXTS = re.compile(
    "|".join([
        # MySQL/MariaDB clients: CR_SERVER_LOST (2013) and CR_SERVER_GONE_ERROR (2006), in both spellings.
        r"Lost connection to (MySQL )?server",
        r"(MySQL server|Server) has gone away",
        # libpq, and the server's own notice when it ends a backend.
        r"server closed the connection unexpectedly",
        r"terminating connection due to administrator command",
        r"no connection to the server",
        r"could not receive data from server",
        r"Connection reset by peer",
    ])
)
# After libpq lost its connection ml-metadata reports PQresultErrorMessage of no result: an empty cause.
_POSTGRESQL_NO_RESULT = "PostgreSQL metadata source error:"

# The losers of the race to create an empty database's schema: ml-metadata asks to retry ("... concurrent connection
# to the empty database. Please retry the connection."); on PostgreSQL the CREATE DATABASE or CREATE TABLE of the
# loser collides with the winner's in the system catalogue instead (a table's row type collides first, as
# 'type "type" already exists', when the two create the table named Type).
_SCHEMA_RACE_TEXTS = re.compile(
    "|".join([
        r"concurrent connection to the empty database",
        r"duplicate key value violates unique constraint "
        r"\"pg_(database_datname|type_typname_nsp|class_relname_nsp)_index\"",
        r"ERROR:\s+(database|relation|type) \"[^\"]+\" already exists",
    ])
)


def is_transient(error: BaseException) -> bool:
    """Whether a failed ml-metadata call may succeed when run again.

    True for ml-metadata's AbortedError (it means "retry": a MySQL deadlock or lock wait timeout, SQLite's busy
    database, two runs creating one context), and for the database's own texts of a deadlock, a serialization
    failure, a lock timeout or a dropped connection, whatever error class ml-metadata wraps them in.
    """
    from ml_metadata import errors as mlmd_errors

    if isinstance(error, mlmd_errors.AbortedError):
        return True
    text = str(error)
    return bool(_TRANSIENT_TEXTS.search(text)) or is_connection_lost(error)


def is_connection_lost(error: BaseException) -> bool:
    """Whether a failed ml-metadata call failed because the database connection was dropped."""
    text = str(error)
    return bool(_CONNECTION_LOST_TEXTS.search(text)) or text.strip() == _POSTGRESQL_NO_RESULT


def retry_transient(call: Callable[..., _T], *args: Any, attempts: int = _WRITE_ATTEMPTS, **kwargs: Any) -> _T:
    """Runs one ml-metadata call, running it again with backoff while it fails with a transient error.

    Each ml-metadata call is one transaction, and a transaction the database aborted was rolled back whole, so
    running it again is safe. After a dropped connection the store is reconnected first (ml-metadata's PostgreSQL
    source never reconnects by itself). One case stays ambiguous, as for any database client: a connection lost
    during the COMMIT itself, when the write may have landed.

    Args:
        call: a bound method of a MetadataStore, e.g. `store.put_execution`.
        attempts: how many times to run it at most.

    Raises:
        Whatever the call raises, at once for a real error, or after the last attempt for a transient one.
    """
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except Exception as e:  # ml-metadata raises errors.* classes; their text carries the database's reason
            if not is_transient(e) or attempt + 1 == attempts:
                raise
            time.sleep(_backoff(attempt, cap=1.0))
            if is_connection_lost(e):
                _reconnect(getattr(call, "__self__", None))
    raise AssertionError("unreachable")


def _is_schema_race(error: BaseException) -> bool:
    """Whether opening a store failed because another process was creating the same database's schema."""
    return bool(_SCHEMA_RACE_TEXTS.search(str(error)))


def _reconnect(store: Any) -> None:
    """Gives `store` a new database connection; a failure here shows again on the next attempt."""
    from ml_metadata.metadata_store import metadata_store

    if not isinstance(store, metadata_store.MetadataStore):
        return
    try:
        # ml-metadata keeps the ConnectionConfig it was opened with; running the constructor again on the same
        # object replaces its native store (and connection) and leaves every other reference to it valid.
        metadata_store.MetadataStore.__init__(store, store._config)
    except Exception:  # the server is still away: the retried call fails again, and counts as an attempt
        pass


def _backoff(attempt: int, cap: float) -> float:
    """Seconds to wait before attempt `attempt + 1`: exponential from 50 ms up to `cap`, with jitter so that
    runners that collided once do not collide again in step."""
    return min(cap, 0.05 * 2**attempt) * random.uniform(0.5, 1.0)
