"""Metadata store URLs: parse, redact and open ml-metadata stores (SQLite, MySQL/MariaDB, PostgreSQL)."""

from __future__ import annotations

import dataclasses
import os
import time
import urllib.parse
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # imported where used: the read commands' SQL path runs without ml-metadata
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

from kfp_lineage import errors

DEFAULT_STORE_PATH = os.path.join(".kfp-lineage", "mlmd.sqlite")
STORE_ENV_VAR = "KFP_LINEAGE_STORE"

_SCHEMES = ("sqlite", "mysql", "postgresql")
_OPEN_ATTEMPTS = 12  # with the backoff below: about 12 s before giving up
_DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}


@dataclasses.dataclass(frozen=True)
class StoreURL:
    """A parsed store URL. `str()` never shows the password; `redacted` is what logs and errors print."""

    scheme: str
    path: str = ""
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = dataclasses.field(default="", repr=False)
    database: str = ""

    @property
    def redacted(self) -> str:
        """The URL with any password replaced by `***`."""
        if self.scheme == "sqlite":
            return f"sqlite:///{self.path}"  # absolute paths give sqlite:////abs/path, which parses back the same
        auth = self.user + (":***" if self.password else "")
        return f"{self.scheme}://{auth}@{self.host}:{self.port}/{self.database}"

    def __str__(self) -> str:
        return self.redacted

    def connection_config(self) -> metadata_store_pb2.ConnectionConfig:
        """The ml-metadata ConnectionConfig for this URL."""
        from ml_metadata.proto import metadata_store_pb2

        config = metadata_store_pb2.ConnectionConfig()
        if self.scheme == "sqlite":
            config.sqlite.filename_uri = self.path
            config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        elif self.scheme == "mysql":
            config.mysql.host = self.host
            config.mysql.port = self.port
            config.mysql.user = self.user
            config.mysql.password = self.password
            config.mysql.database = self.database
        else:
            config.postgresql.host = self.host
            config.postgresql.port = str(self.port)
            config.postgresql.user = self.user
            config.postgresql.password = self.password
            config.postgresql.dbname = self.database
        return config


def parse_store_url(url: Optional[str]) -> StoreURL:
    """Parses a store URL.

    Args:
        url: a file path, `sqlite:///relative/path`, `sqlite:////absolute/path`,
            `mysql://user:password@host:port/db` or `postgresql://user[:password]@host:port/db`.
            None or "" means the default SQLite file `.kfp-lineage/mlmd.sqlite`.

    Returns:
        The parsed URL; SQLite paths are made absolute.

    Raises:
        StoreError: the URL has an unknown scheme or misses a part; the message shows the URL redacted.
    """
    if not url:
        return StoreURL(scheme="sqlite", path=os.path.abspath(DEFAULT_STORE_PATH))
    if "://" not in url:
        return StoreURL(scheme="sqlite", path=os.path.abspath(url))
    try:
        parsed = urllib.parse.urlsplit(url)
    except ValueError as e:  # e.g. "Invalid IPv6 URL" for an unmatched '['
        raise errors.StoreError(
            f"store URL {_redact_netloc(url)} cannot be parsed ({e}): use a file path, sqlite:///PATH, "
            "mysql://USER:PASSWORD@HOST:PORT/DB or postgresql://USER@HOST:PORT/DB"
        ) from None
    scheme = {"postgres": "postgresql", "mariadb": "mysql"}.get(parsed.scheme, parsed.scheme)
    if scheme not in _SCHEMES:
        shown = url.split("://", 1)[0]
        raise errors.StoreError(
            f"store URL scheme {shown!r} is not supported: use a file path, sqlite:///PATH, "
            "mysql://USER:PASSWORD@HOST:PORT/DB or postgresql://USER@HOST:PORT/DB"
        )
    if scheme == "sqlite":
        path = url.split("://", 1)[1]
        # sqlite:///rel/path -> "rel/path"; sqlite:////abs/path -> "/abs/path" (SQLAlchemy's convention).
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise errors.StoreError("store URL sqlite:/// has no file path: use sqlite:///PATH/TO/mlmd.sqlite")
        return StoreURL(scheme="sqlite", path=os.path.abspath(path))
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

    Raises:
        StoreError: the store cannot be opened; the message names the redacted URL and the cause.
    """
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
        except Exception as e:  # ml-metadata raises its own errors.* classes and RuntimeError
            # Several processes connecting to an empty database race to create the schema; ml-metadata then
            # says "... concurrent connection to the empty database. Please retry the connection."
            # On PostgreSQL the loser of that race sees "relation ... already exists" or a duplicate key instead.
            racing = any(sign in str(e).lower() for sign in ("retry", "already exists", "duplicate key"))
            if racing and attempt + 1 < _OPEN_ATTEMPTS:
                time.sleep(min(2.0, 0.05 * 2**attempt))
                continue
            cause = str(e).replace(url.password, "***") if url.password else str(e)
            cause = " ".join(cause.split())[:300]
            raise errors.StoreError(f"cannot open the metadata store {url.redacted}: {cause}") from None
    if url.scheme == "sqlite" and created:
        os.chmod(url.path, 0o600)
    return store
