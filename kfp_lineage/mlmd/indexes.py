"""kfp-lineage's own indexes on an MLMD store: covering indexes for the lineage walks, and the marker table that
says the runner keeps them current.

MLMD's schema indexes no property value and no event-path key, so a walk reads a table row after every index
entry. These indexes hold the columns the SQL reader (lineage/sqlite_reader.py) reads, so it never leaves them.
Each is named `idx_kfpl_...` and is partial on a condition ml-metadata's own statements never state (an id `> 0`,
a key step): SQLite can then use them only for statements that state it, so ml-metadata's query plans, and the
order in which its unordered reads return rows, stay exactly as they were (tests/mlmd/test_indexes.py checks its
statements' plans). ml-metadata ignores tables and indexes it did not create.

Which stores get them:
- a store `kfp-lineage run` creates (the SQLite file did not exist): indexes and the marker, at creation;
- a store with the marker: the runner adds any index a newer kfp-lineage defines;
- any other store only on request: `kfp-lineage index --store URL` (`add_indexes`), which writes the marker too, so
  later runs keep the indexes current. `kfp-lineage index --drop` removes both.

The marker is the table `kfpl_store` (name, value): `created_by` = "kfp-lineage <version>" when kfp-lineage
created the store, `index_version` = INDEX_VERSION of the indexes present.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import time
import urllib.parse
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from kfp_lineage import errors
from kfp_lineage.mlmd import store as store_module

if TYPE_CHECKING:
    from ml_metadata.metadata_store import metadata_store

INDEX_PREFIX = "idx_kfpl_"
MARKER_TABLE = "kfpl_store"
INDEX_VERSION = 1  # bump when SQLITE_INDEXES changes, so the runner adds the new ones to marked stores
CREATED_BY, INDEX_VERSION_KEY = "created_by", "index_version"
_VALUE_COLUMNS = ("string_value", "double_value", "int_value", "bool_value", "proto_value")


@dataclasses.dataclass(frozen=True)
class Index:
    """One covering index: its columns, and the partial-index condition only our statements state."""

    name: str
    table: str
    columns: Tuple[str, ...]
    where: str

    def create_sql(self) -> str:
        return (f"CREATE INDEX IF NOT EXISTS {self.name} ON {self.table}({', '.join(self.columns)}) "
                f"WHERE {self.where}")


# What each serves (sqlite_reader.py states the conditions):
SQLITE_INDEXES = (
    # An execution's OUTPUT (or INPUT) events with their artifacts: impact's and trace's walk by execution.
    Index("idx_kfpl_event_by_execution", "Event", ("execution_id", "type", "artifact_id"), "execution_id > 0"),
    # The key of an event's path (its input or output name), without reading EventPath rows.
    Index("idx_kfpl_eventpath_key", "EventPath", ("event_id", "is_index_step", "step_key"), "is_index_step = 0"),
    # Property values by owner and name: every property an execution or artifact shows.
    Index("idx_kfpl_execution_property", "ExecutionProperty",
          ("execution_id", "name", "is_custom_property") + _VALUE_COLUMNS, "execution_id > 0"),
    Index("idx_kfpl_artifact_property", "ArtifactProperty",
          ("artifact_id", "name", "is_custom_property") + _VALUE_COLUMNS, "artifact_id > 0"),
)


@dataclasses.dataclass
class IndexReport:
    """What add_indexes or drop_indexes did to a store."""

    store: str  # the redacted URL
    added: List[str]
    present: List[str]  # already there before the call (add), or removed (drop)
    created_by: Optional[str]  # the marker's created_by: "kfp-lineage <version>", or None
    seconds: float

    def to_json(self) -> Dict[str, object]:
        return dataclasses.asdict(self)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("kfp-lineage")
    except metadata.PackageNotFoundError:
        return "unknown"


def _connect(url: store_module.StoreURL) -> sqlite3.Connection:
    """A read-write connection to an existing SQLite store; StoreError for another kind or a missing file."""
    if url.scheme != "sqlite":
        raise errors.StoreError(
            f"kfp-lineage's indexes are for SQLite stores; {url.redacted} is a {url.scheme} store, whose "
            "properties its server already keeps with their keys: nothing to add")
    if not os.path.isfile(url.path) or os.path.getsize(url.path) == 0:
        raise errors.StoreError(f"no store at {url.path}: run a pipeline first, or pass --store")
    connection = sqlite3.connect(url.path, timeout=30, isolation_level=None)
    try:
        [(version,)] = connection.execute("SELECT schema_version FROM MLMDEnv").fetchall()
    except (sqlite3.Error, ValueError):
        connection.close()
        raise errors.StoreError(f"{url.path} is not an MLMD store: pass the store a pipeline ran into") from None
    return connection


def _marker(connection: sqlite3.Connection) -> Optional[Dict[str, str]]:
    """The marker's rows, or None when the store has no marker table."""
    try:
        return dict(connection.execute(f"SELECT name, value FROM {MARKER_TABLE}").fetchall())
    except sqlite3.OperationalError:  # no such table
        return None


def _present(connection: sqlite3.Connection) -> List[str]:
    return [row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE ? ESCAPE '\\' ORDER BY name",
        (INDEX_PREFIX.replace("_", "\\_") + "%",))]


def add_indexes(url: store_module.StoreURL, created: bool = False) -> IndexReport:
    """Adds every index of SQLITE_INDEXES the store lacks and writes the marker, in one transaction.

    Args:
        url: an existing SQLite MLMD store.
        created: the caller just created the store (the marker then records `created_by`).

    Returns:
        What was added and what was there already.

    Raises:
        StoreError: not a SQLite MLMD store, or it cannot be written.
    """
    started = time.perf_counter()
    connection = _connect(url)
    try:
        before = set(_present(connection))
        connection.execute("BEGIN IMMEDIATE")
        try:
            for index in SQLITE_INDEXES:
                connection.execute(index.create_sql())
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            rows = [(INDEX_VERSION_KEY, str(INDEX_VERSION))] + ([(CREATED_BY, f"kfp-lineage {_version()}")]
                                                                if created else [])
            connection.executemany(f"INSERT OR REPLACE INTO {MARKER_TABLE} (name, value) VALUES (?, ?)", rows)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        marker = _marker(connection) or {}
    except sqlite3.Error as e:
        raise errors.StoreError(f"cannot add indexes to {url.redacted}: {e}") from None
    finally:
        connection.close()
    names = [index.name for index in SQLITE_INDEXES]
    return IndexReport(store=url.redacted, added=[n for n in names if n not in before],
                       present=[n for n in names if n in before], created_by=marker.get(CREATED_BY),
                       seconds=round(time.perf_counter() - started, 3))


def drop_indexes(url: store_module.StoreURL) -> IndexReport:
    """Removes every idx_kfpl_* index and the marker (ml-metadata's own schema is left as it is).

    Raises:
        StoreError: not a SQLite MLMD store, or it cannot be written.
    """
    started = time.perf_counter()
    connection = _connect(url)
    try:
        marker = _marker(connection) or {}
        present = _present(connection)
        connection.execute("BEGIN IMMEDIATE")
        for name in present:
            connection.execute(f'DROP INDEX IF EXISTS "{name}"')
        connection.execute(f"DROP TABLE IF EXISTS {MARKER_TABLE}")
        connection.execute("COMMIT")
    except sqlite3.Error as e:
        raise errors.StoreError(f"cannot drop indexes of {url.redacted}: {e}") from None
    finally:
        connection.close()
    return IndexReport(store=url.redacted, added=[], present=present, created_by=marker.get(CREATED_BY),
                       seconds=round(time.perf_counter() - started, 3))


def open_run_store(url: store_module.StoreURL) -> metadata_store.MetadataStore:
    """Opens the store a run writes to (store.open_store). A SQLite store this call creates gets the indexes and
    the marker; a store with the marker gets any index it lacks; any other store is left as it is.

    Raises:
        StoreError: as store.open_store.
    """
    created = url.scheme == "sqlite" and not os.path.exists(url.path)
    metadata_store = store_module.open_store(url)
    if url.scheme == "sqlite" and (created or _needs_indexes(url)):
        add_indexes(url, created=created)
    return metadata_store


def _needs_indexes(url: store_module.StoreURL) -> bool:
    """Whether a store has the marker but misses an index of this version (one cheap read)."""
    try:
        connection = sqlite3.connect(f"file:{urllib.parse.quote(url.path)}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return False
    try:
        marker = _marker(connection)
        return marker is not None and not {i.name for i in SQLITE_INDEXES} <= set(_present(connection))
    finally:
        connection.close()
