"""Opening a store for reading: the read-only SQL reader where one applies, ml-metadata otherwise.

`open_reader(url)` is what the read commands (`trace`, `impact`, `runs`, `show`) use. A SQLite store whose MLMD
schema the SQL reader knows is read with Python's sqlite3 alone, a MySQL/MariaDB or PostgreSQL store with its
driver (server_reader.py), so those commands start without importing ml-metadata; any other store (an unknown
schema version, a server without its driver installed or a database that does not exist yet, gRPC) is opened
with ml-metadata and read through its API, with the same results.
"""

from __future__ import annotations

import os

from kfp_lineage import errors
from kfp_lineage.lineage import reader as lineage_reader
from kfp_lineage.lineage import sqlite_reader
from kfp_lineage.mlmd import store as store_module


def refuse_missing_store(url: store_module.StoreURL) -> None:
    """Raises when a SQLite store to read does not exist or is an empty file (ml-metadata would write its schema
    into it: a read must not change the file); returns for anything else.

    Raises:
        StoreError: the message names the file and the fix.
    """
    if url.scheme != "sqlite":
        return
    if not os.path.exists(url.path):
        raise errors.StoreError(f"no store at {url.path}: run a pipeline first, or pass --store")
    if os.path.isfile(url.path) and os.path.getsize(url.path) == 0:
        raise errors.StoreError(f"{url.path} is empty, not an MLMD store: run a pipeline into it, or pass --store")


def open_reader(url: store_module.StoreURL, sql: bool = True) -> lineage_reader.Reader:
    """Opens an existing store for reading.

    Args:
        url: the store.
        sql: allow a read-only SQL reader; False always reads through ml-metadata.

    Returns:
        A reader; close it when done.

    Raises:
        StoreError: a SQLite file that does not exist or is empty, or a store that cannot be opened.
    """
    refuse_missing_store(url)
    if sql and url.scheme == "sqlite":
        try:
            return sqlite_reader.SqliteReader(url.path)
        except ValueError:
            pass  # not a schema the SQL reader knows: ml-metadata reads it (or says what is wrong with it)
    if sql and url.scheme in ("mysql", "postgresql"):
        from kfp_lineage.lineage import server_reader

        try:
            return server_reader.connect(url.scheme, url.host, url.port, url.user, url.password, url.database)
        except (ImportError, ValueError):
            pass  # no driver, no such database, or an unknown schema: ml-metadata opens it as before
    from kfp_lineage.lineage import mlmd_reader

    return mlmd_reader.MlmdReader(store_module.open_store(url))
