"""Batched reads of lineage records from an MLMD store, as lineage graph nodes: the `Reader` interface and
`reader_for`, which picks the reader for a store.

Two readers implement it with the same results:

- `mlmd_reader.MlmdReader`: plain ml-metadata calls (no filter_query), for every store.
- `sqlite_reader.SqliteReader`: read-only SQL on the MLMD schema (version 10, ml-metadata 1.14 to 1.17) of a
  SQLite store, several times faster for large walks (bench/results-queries.md).
- `server_reader.ServerReader`: the same on a MySQL/MariaDB or PostgreSQL store, through PyMySQL or psycopg
  (the optional extras kfp-lineage[mysql] and kfp-lineage[postgresql]).

`reader_for(store)` picks a SQL reader for a store with a known schema and falls back to ml-metadata otherwise
(no driver installed, gRPC, unknown schema version). `store_access.open_reader(url)` opens a reader from
a store URL without ml-metadata where a SQL reader applies (SQLite, and MySQL/PostgreSQL with their driver).
"""

from __future__ import annotations

import os
import urllib.parse
import weakref
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Protocol, Sequence, Tuple, Union
from typing import runtime_checkable

from kfp_lineage.lineage import graph as lineage_graph
from kfp_lineage.lineage import sqlite_reader

if TYPE_CHECKING:  # mlmd_reader and ml-metadata load only when a store is read through ml-metadata
    from ml_metadata.metadata_store import metadata_store

Properties = Optional[Iterable[str]]  # None: every property, typed and custom; else only these custom properties


@runtime_checkable
class Reader(Protocol):
    """What the lineage walks read. Every method takes a batch and costs a fixed number of store calls."""

    kind: str  # "ml-metadata", "sqlite", "mysql" or "postgresql"

    def close(self) -> None:
        """Releases the reader's connection (an ml-metadata store is left to its owner)."""

    def artifacts(self, ids: Sequence[int], properties: Properties = None) -> Dict[int, lineage_graph.Artifact]:
        """id -> artifact for the ids that exist; `properties` limits which properties are read."""

    def artifacts_by_uri(self, uri: str) -> Dict[int, lineage_graph.Artifact]:
        """id -> artifact for every artifact with this URI, with all its properties."""

    def artifact_properties(self, ids: Sequence[int], names: Sequence[str]) -> Dict[int, Dict[str, Any]]:
        """artifact id -> {name: value} of these custom properties, for artifacts that have any."""

    def has_artifacts(self) -> bool:
        """Whether the store holds any artifact."""

    def executions(self, ids: Sequence[int], properties: Properties = None, dags: bool = True
                   ) -> Dict[int, lineage_graph.Execution]:
        """id -> execution for the ids that exist; `properties` limits which are read; `dags=False` leaves out
        DAG executions (vocabulary.DAG_EXECUTION_TYPES)."""

    def execution_properties(self, ids: Sequence[int], names: Sequence[str]) -> Dict[int, Dict[str, Any]]:
        """execution id -> {name: value} of these custom properties, for executions that have any."""

    def execution_parents(self, ids: Sequence[int]) -> Dict[int, Tuple[Optional[int], str]]:
        """id -> (parent_dag_id or None, Execution.name): enough to walk up to a root DAG."""

    def events(self, artifact_ids: Sequence[int] = (), execution_ids: Sequence[int] = (),
               types: Sequence[str] = (), keys: bool = True) -> List[lineage_graph.Event]:
        """Events of these artifacts, or else of these executions, optionally only of some types ("INPUT"), in no
        particular order; `keys=False` leaves every key "" (cheaper on large walks)."""

    def output_events(self, execution_ids: Sequence[int]) -> Tuple[List[lineage_graph.Event], Dict[int, str]]:
        """The OUTPUT events of these executions (keys ""), and artifact id -> type name of what they wrote."""

    def run(self, run_id: str) -> Optional[lineage_graph.Run]:
        """The run (system.PipelineRun context) of this id with its pipeline, or None."""

    def runs(self, limit: int, pipeline: Optional[str] = None) -> Optional[List[lineage_graph.Run]]:
        """The newest `limit` runs, newest first; None when `pipeline` is given and unknown."""

    def run_executions(self, context_id: int, properties: Properties = None) -> List[lineage_graph.Execution]:
        """Every execution associated with the run context `context_id`."""

    def run_of_execution(self, execution_id: int) -> Optional[str]:
        """The name of a system.PipelineRun context the execution is associated with (for roots not named run/...)."""

    def pipelines(self) -> List[str]:
        """The names of every system.Pipeline context, sorted."""

    def pipelines_of(self, run_ids: Sequence[str]) -> Dict[str, Optional[str]]:
        """run id -> pipeline name (the run context's system.Pipeline parent)."""


_READERS: "weakref.WeakKeyDictionary[metadata_store.MetadataStore, Dict[bool, Reader]]" = weakref.WeakKeyDictionary()

Store = Union["metadata_store.MetadataStore", Reader]  # what the read functions accept


def reader_for(store: Store, sql: bool = True) -> Reader:
    """The reader for `store`, made once per store object.

    Args:
        store: an open ml-metadata store, or a Reader (returned as it is).
        sql: allow the read-only SQL reader when the store is a SQLite file with a known schema; False always
            reads through ml-metadata.

    Returns:
        A SqliteReader or an MlmdReader, or `store` when it is a Reader already.
    """
    if isinstance(store, Reader):
        return store
    readers = _READERS.setdefault(store, {})
    if sql not in readers:
        readers[sql] = _make_reader(store, sql)
    return readers[sql]


def _make_reader(store: metadata_store.MetadataStore, sql: bool) -> Reader:
    path = sqlite_path(store) if sql else None
    if path:
        try:
            return sqlite_reader.SqliteReader(path)
        except ValueError:
            pass
    server = _server_config(store) if sql else None
    if server:
        from kfp_lineage.lineage import server_reader

        try:
            return server_reader.connect(*server)
        except (ImportError, ValueError):
            pass  # no driver, or not a schema it knows: ml-metadata reads it
    from kfp_lineage.lineage import mlmd_reader

    return mlmd_reader.MlmdReader(store)


def _server_config(store: metadata_store.MetadataStore) -> Optional[Tuple[str, str, int, str, str, str]]:
    """(kind, host, port, user, password, database) of a store opened on MySQL or PostgreSQL, else None."""
    from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

    config = getattr(store, "_config", None)  # ml-metadata keeps the ConnectionConfig it was opened with
    if not isinstance(config, mlmd_pb.ConnectionConfig):  # a gRPC client's MetadataStoreClientConfig
        return None
    kind = config.WhichOneof("config")
    if kind == "mysql":
        c = config.mysql
        return "mysql", c.host, c.port or 3306, c.user, c.password, c.database
    if kind == "postgresql":
        c = config.postgresql
        return "postgresql", c.host or c.hostaddr, int(c.port or 5432), c.user, c.password, c.dbname
    return None


def sqlite_path(store: metadata_store.MetadataStore) -> Optional[str]:
    """The file of a store opened on SQLite, or None (a server, gRPC, or an in-memory database)."""
    from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

    config = getattr(store, "_config", None)  # ml-metadata keeps the ConnectionConfig it was opened with
    if not isinstance(config, mlmd_pb.ConnectionConfig) or config.WhichOneof("config") != "sqlite":
        return None
    path = config.sqlite.filename_uri
    if path.startswith("file:"):
        path = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
    if not path or path == ":memory:" or not os.path.isfile(path):
        return None
    return path
