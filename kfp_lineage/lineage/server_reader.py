"""Read-only SQL on the MLMD schema of a MySQL/MariaDB or PostgreSQL store: the fast reader of server stores.

`ServerReader` implements reader.Reader with the results of `mlmd_reader.MlmdReader` (tests/lineage checks they
agree on both servers) through a DB-API driver: PyMySQL for MySQL and MariaDB (`pip install 'kfp-lineage[mysql]'`;
mysqlclient, a C driver about three times faster at turning rows into Python, is used instead when it is
installed), psycopg 3 for PostgreSQL (`pip install 'kfp-lineage[postgresql]'`). Without a driver, or on a schema
version it was not written for, `connect` raises and the caller reads through ml-metadata instead.

The statements are written for both servers: table names unquoted (PostgreSQL folds them to lower case, which is
how ml-metadata created them there), booleans compared with TRUE/FALSE (PostgreSQL types them boolean, MySQL
tinyint), and each property value column selected on its own (neither server coalesces a string with a number the
way SQLite does). The session is read-only.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from kfp_lineage.lineage import graph as lineage_graph
from kfp_lineage.lineage import sql_runs
from kfp_lineage.mlmd import vocabulary

# The MLMD schema versions this reader was written and tested against (ml-metadata 1.14 to 1.17).
KNOWN_SCHEMA_VERSIONS = frozenset({10})
# scheme -> the modules of its DB-API drivers, the preferred first (mysqlclient is MySQLdb)
DRIVERS = {"mysql": ("MySQLdb", "pymysql"), "postgresql": ("psycopg",)}
EXTRAS = {"mysql": "kfp-lineage[mysql]", "postgresql": "kfp-lineage[postgresql]"}
_CHUNK = 5000  # ids per statement
# Up to this many ids, a node's row and every property of it come in one statement (a LEFT JOIN that repeats the
# row per property): a trace reads a handful of nodes per level, and round trips are most of its time. Larger
# batches (impact with full=True) read the properties in a second statement.
_JOIN_PROPERTIES_MAX = 64
_ARTIFACT_COLUMNS = ("id", "type_id", "uri", "state", "name", "create_time_since_epoch")
_EXECUTION_COLUMNS = ("id", "type_id", "last_known_state", "name", "create_time_since_epoch",
                      "last_update_time_since_epoch")
# Event(type, artifact_id, execution_id, key) from a 4-tuple without Event._make's Python-level call (a walk makes
# tens of thousands), as in sqlite_reader.
_EVENT = functools.partial(tuple.__new__, lineage_graph.Event)
_OUTPUT = vocabulary.OUTPUT_EVENT
_DISPLAY_NAME = vocabulary.DISPLAY_NAME
_VALUES = "int_value, double_value, string_value, proto_value, bool_value"  # vocabulary.sql_value's order
Properties = Optional[Iterable[str]]  # as in reader.Properties


def connect(kind: str, host: str, port: int, user: str, password: str, database: str) -> "ServerReader":
    """Opens a read-only reader of the MLMD store in `database`.

    Args:
        kind: "mysql" (MySQL or MariaDB) or "postgresql".

    Raises:
        ImportError: the driver is not installed (the message names the extra to install).
        ValueError: the database is not an MLMD store of a schema version this reader knows, or cannot be read.
    """
    driver = None
    for name in DRIVERS[kind]:
        try:
            driver = importlib.import_module(name)
            break
        except ImportError:
            continue
    if driver is None:
        raise ImportError(f"the {kind} SQL reader needs {DRIVERS[kind][-1]}: pip install '{EXTRAS[kind]}'")
    try:
        if kind == "mysql":
            connection = driver.connect(host=host, port=port, user=user, password=password, database=database,
                                        autocommit=True, charset="utf8mb4", connect_timeout=10)
            with connection.cursor() as cursor:
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
        else:
            connection = driver.connect(host=host, port=port, user=user, password=password, dbname=database,
                                        autocommit=True, connect_timeout=10)
            connection.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            # This session's plans only: a walk looks up a few thousand ids among 100,000s of rows, which index
            # scans do best on a database in memory; the stock cost model picks sequential scans and parallel
            # workers for them (several times slower here).
            connection.execute("SET random_page_cost = 1.1")
            connection.execute("SET max_parallel_workers_per_gather = 0")
    except Exception as e:  # each driver has its own error classes; the caller falls back to ml-metadata
        raise ValueError(f"cannot read the {kind} store {database}: {' '.join(str(e).split())[:200]}") from None
    try:
        return ServerReader(kind, connection)
    except ValueError:
        connection.close()
        raise


class ServerReader:
    """Reads a MySQL/MariaDB or PostgreSQL MLMD store with read-only SQL; same results as MlmdReader."""

    def __init__(self, kind: str, connection: Any):
        """Reads the schema version and the types.

        Raises:
            ValueError: not an MLMD store of a schema version this reader knows.
        """
        self.kind = kind
        self.connection = connection
        try:
            versions = self._query("SELECT schema_version FROM MLMDEnv")
        except Exception as e:
            raise ValueError(f"not a readable MLMD store: {' '.join(str(e).split())[:200]}") from None
        if len(versions) != 1 or versions[0][0] not in KNOWN_SCHEMA_VERSIONS:
            shown = ", ".join(str(v) for (v,) in versions) or "none"
            raise ValueError(f"MLMD schema version {shown} is not one of {sorted(KNOWN_SCHEMA_VERSIONS)}")
        self._types: Dict[int, Tuple[str, int]] = {}
        self._load_types()

    def close(self) -> None:
        self.connection.close()

    # --- SQL ----------------------------------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = ()) -> List[tuple]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, list(params) or None)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _select(self, sql: str, column: str, ids: Sequence[Any], before: Sequence[Any] = (),
                after: Sequence[Any] = ()) -> List[tuple]:
        """Runs `sql`, whose `{ids}` is the condition `column` is one of the ids, for every chunk of ids."""
        rows: List[tuple] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = list(ids[start:start + _CHUNK])
            numbers = set(map(type, chunk)) == {int}
            # Ids go in as text the statement parses: the drivers' per-value conversion (psycopg checks every
            # element of a list parameter against a pattern; the MySQL drivers escape every parameter) cost more
            # than the server's work on a large walk. Integers need no quoting; any other id stays a parameter.
            if self.kind == "postgresql":  # one array parameter: the statement text stays the same
                if numbers:
                    condition, values = f"{column} = ANY(%s::bigint[])", ["{" + ",".join(map(str, chunk)) + "}"]
                else:
                    condition, values = f"{column} = ANY(%s)", [chunk]
            elif numbers:
                condition, values = f"{column} IN ({','.join(map(str, chunk))})", []
            else:
                condition, values = f"{column} IN ({','.join(['%s'] * len(chunk))})", chunk
            rows.extend(self._query(sql.format(ids=condition), (*before, *values, *after)))
        return rows

    def _load_types(self) -> None:
        self._types = {row[0]: (row[1], row[2]) for row in self._query("SELECT id, name, type_kind FROM Type")}

    def _type_name(self, type_id: int) -> str:
        if type_id not in self._types:
            self._load_types()  # a type registered after we opened the store
        return self._types.get(type_id, ("", 0))[0]

    def _type_names(self, type_ids: Iterable[int]) -> Dict[int, str]:
        """type id -> name for every id given (and every type known): one lookup per row, not a call."""
        names = {i: name for i, (name, _) in self._types.items()}
        for type_id in set(type_ids) - names.keys():
            names[type_id] = self._type_name(type_id)
        return names

    def _type_id(self, name: str, kind: int) -> Optional[int]:
        for _ in range(2):
            found = [i for i, (n, k) in self._types.items() if n == name and k == kind]
            if found:
                return found[0]
            self._load_types()
        return None

    def _properties(self, table: str, column: str, ids: Sequence[int], names: Optional[Sequence[str]],
                    custom_only: bool = False) -> Dict[int, Dict[str, Any]]:
        """owner id -> its properties: every one (a custom property wins over a typed one of the same name, as
        ml-metadata's map does), every custom one (`custom_only`), or only these custom ones."""
        if not ids or names is not None and not names:
            return {}
        if names is None:
            custom = " AND is_custom_property = TRUE" if custom_only else ""
            rows = self._select(f"SELECT {column}, name, is_custom_property, {_VALUES} FROM {table} WHERE {{ids}}"
                                f"{custom}", column, ids)
            rows.sort(key=lambda r: bool(r[2]))  # typed first, so custom values overwrite them
        else:
            rows = self._select(
                f"SELECT {column}, name, is_custom_property, {_VALUES} FROM {table} WHERE {{ids}} "
                f"AND is_custom_property = TRUE AND name IN ({','.join(['%s'] * len(names))})", column, ids,
                after=list(names))
        found: Dict[int, Dict[str, Any]] = {}
        value = vocabulary.sql_value
        wanted = None if names is None else set(names)  # MySQL compares names without case: keep exact ones
        for row in rows:
            if wanted is None or row[1] in wanted:
                found.setdefault(row[0], {})[row[1]] = value(*row[3:])
        return found

    def _rows_and_properties(self, table: str, columns: Sequence[str], property_table: str, column: str,
                             ids: Sequence[int]) -> Tuple[List[tuple], Dict[int, Dict[str, Any]]]:
        """The rows (these columns, the first the id) of `table` for these ids, and owner id -> every property of
        each as _properties reads them, in one statement (for a few ids: _JOIN_PROPERTIES_MAX)."""
        width = len(columns)
        joined = self._select(
            f"SELECT {', '.join('o.' + c for c in columns)}, p.name, p.is_custom_property, "
            f"{', '.join('p.' + v for v in _VALUES.split(', '))} FROM {table} o "
            f"LEFT JOIN {property_table} p ON p.{column} = o.id WHERE {{ids}}", "o." + columns[0], ids)
        rows: Dict[int, tuple] = {}
        for row in joined:
            rows.setdefault(row[0], row[:width])
        joined.sort(key=lambda r: bool(r[width + 1]))  # typed first, so custom values overwrite them
        found: Dict[int, Dict[str, Any]] = {}
        value = vocabulary.sql_value
        for row in joined:
            if row[width] is not None:  # None: the owner has no property (the LEFT JOIN's empty side)
                found.setdefault(row[0], {})[row[width]] = value(*row[width + 2:])
        return list(rows.values()), found

    @staticmethod
    def _joined(table: str, column: str, names: Sequence[str]) -> Tuple[str, str]:
        """SELECT columns and LEFT JOINs that bring these custom properties into their owner's row (alias o): per
        name its stored name and five value columns. Each join is a lookup of the property table's primary key
        (owner, name, is_custom_property), which both servers do directly: one statement and one row per owner
        instead of a second statement whose name list PostgreSQL checks row by row. The join parameters are the
        names, in order."""
        columns = "".join(f", j{i}.name, " + ", ".join(f"j{i}.{v}" for v in _VALUES.split(", "))
                          for i in range(len(names)))
        joins = " ".join(f"LEFT JOIN {table} j{i} ON j{i}.{column} = o.id AND j{i}.name = %s "
                         f"AND j{i}.is_custom_property = TRUE" for i in range(len(names)))
        return columns, joins

    @staticmethod
    def _joined_values(row: Sequence[Any], first: int, names: Sequence[str]) -> Dict[str, Any]:
        """{name: value} from _joined's columns starting at row[first]; MySQL matches names without case, so only
        a stored name equal to the asked one counts, as in _properties."""
        found: Dict[str, Any] = {}
        value = vocabulary.sql_value
        for i, name in enumerate(names):
            at = first + 6 * i
            if row[at] == name:
                found[name] = value(*row[at + 1:at + 6])
        return found

    # --- artifacts ----------------------------------------------------------------------------------------------

    def artifacts(self, ids: Sequence[int], properties: Properties = None) -> Dict[int, lineage_graph.Artifact]:
        if not ids:
            return {}
        if properties is None:
            if len(ids) <= _JOIN_PROPERTIES_MAX:
                rows, props = self._rows_and_properties("Artifact", _ARTIFACT_COLUMNS, "ArtifactProperty",
                                                        "artifact_id", ids)
            else:
                rows = self._select(f"SELECT {', '.join(_ARTIFACT_COLUMNS)} FROM Artifact WHERE {{ids}}", "id", ids)
                props = self._properties("ArtifactProperty", "artifact_id", [r[0] for r in rows], None)
            return {row[0]: self._artifact(row, lineage_graph.artifact_name(props.get(row[0], {}), row[4]),
                                           props.get(row[0], {}))
                    for row in rows}
        # The named properties (display_name always, for the name) come with the artifact's row.
        wanted = sorted(set(properties) | {_DISPLAY_NAME})
        columns, joins = self._joined("ArtifactProperty", "artifact_id", wanted)
        rows = self._select(f"SELECT o.id, o.type_id, o.uri, o.state, o.name, o.create_time_since_epoch{columns} "
                            f"FROM Artifact o {joins} WHERE {{ids}}", "o.id", ids, before=wanted)
        keep_display = _DISPLAY_NAME in set(properties)
        found = {}
        for row in rows:
            values = self._joined_values(row, 6, wanted)
            name = lineage_graph.artifact_name(values, row[4])
            if not keep_display:
                values.pop(_DISPLAY_NAME, None)
            found[row[0]] = self._artifact(row, name, values)
        return found

    def _artifact(self, row: tuple, name: str, properties: Dict[str, Any]) -> lineage_graph.Artifact:
        return lineage_graph.Artifact(
            id=row[0], type=self._type_name(row[1]), uri=row[2] or "", name=name,
            state=vocabulary.ARTIFACT_STATES.get(row[3] or 0) or str(row[3]), create_time=row[5] or 0,
            properties=properties)

    def artifacts_by_uri(self, uri: str) -> Dict[int, lineage_graph.Artifact]:
        return self.artifacts([r[0] for r in self._query("SELECT id FROM Artifact WHERE uri = %s", (uri,))])

    def artifact_properties(self, ids: Sequence[int], names: Sequence[str]) -> Dict[int, Dict[str, Any]]:
        """artifact id -> {name: value} of these custom properties, for artifacts that have any."""
        if self.kind == "mysql" and len(names) > 1 and ids:
            # MySQL/MariaDB turns `artifact_id IN (...) AND name IN (...)` into one index range per pair and spends
            # milliseconds building them; one range per artifact over all its custom properties, filtered here, reads
            # a third of the pages (an artifact has a few custom properties; executions have large ones, so
            # execution_properties keeps the name list). impact reads its endpoint candidates this way.
            found = self._properties("ArtifactProperty", "artifact_id", ids, None, custom_only=True)
            wanted = set(names)
            return {i: kept for i, values in found.items()
                    if (kept := {n: v for n, v in values.items() if n in wanted})}
        return self._properties("ArtifactProperty", "artifact_id", ids, list(names))

    def has_artifacts(self) -> bool:
        return bool(self._query("SELECT id FROM Artifact LIMIT 1"))

    # --- executions ---------------------------------------------------------------------------------------------

    def executions(self, ids: Sequence[int], properties: Properties = None, dags: bool = True
                   ) -> Dict[int, lineage_graph.Execution]:
        if not ids:
            return {}
        names = None if properties is None else sorted(set(properties))
        if names:  # the named properties come with the execution's row
            columns, joins = self._joined("ExecutionProperty", "execution_id", names)
            rows = self._select("SELECT o.id, o.type_id, o.last_known_state, o.name, o.create_time_since_epoch, "
                                f"o.last_update_time_since_epoch{columns} FROM Execution o {joins} WHERE {{ids}}",
                                "o.id", ids, before=names)
        elif properties is None and len(ids) <= _JOIN_PROPERTIES_MAX:
            rows, props = self._rows_and_properties("Execution", _EXECUTION_COLUMNS, "ExecutionProperty",
                                                    "execution_id", ids)
            if not dags:
                types = self._type_names(r[1] for r in rows)
                rows = [r for r in rows if types[r[1]] not in vocabulary.DAG_EXECUTION_TYPES]
            return self._execution_nodes(rows, props)
        else:
            rows = self._select(f"SELECT {', '.join(_EXECUTION_COLUMNS)} FROM Execution WHERE {{ids}}", "id", ids)
        if not dags:
            types = self._type_names(r[1] for r in rows)
            rows = [r for r in rows if types[r[1]] not in vocabulary.DAG_EXECUTION_TYPES]
        if names:
            return self._execution_nodes(rows, {row[0]: self._joined_values(row, 6, names) for row in rows})
        return self._executions(rows, properties)

    def _executions(self, rows: List[tuple], properties: Properties) -> Dict[int, lineage_graph.Execution]:
        names = None if properties is None else sorted(set(properties))
        return self._execution_nodes(rows, self._properties("ExecutionProperty", "execution_id", [r[0] for r in rows],
                                                            names))

    def _execution_nodes(self, rows: List[tuple], props: Dict[int, Dict[str, Any]]
                         ) -> Dict[int, lineage_graph.Execution]:
        states = vocabulary.EXECUTION_STATES
        types = self._type_names(row[1] for row in rows)
        return {row[0]: lineage_graph.Execution(
            id=row[0], type=types[row[1]], name=row[3] or "",
            state=states.get(row[2] or 0) or str(row[2]), create_time=row[4] or 0, update_time=row[5] or 0,
            properties=props.get(row[0], {})) for row in rows}

    def execution_properties(self, ids: Sequence[int], names: Sequence[str]) -> Dict[int, Dict[str, Any]]:
        """execution id -> {name: value} of these custom properties, for executions that have any."""
        return self._properties("ExecutionProperty", "execution_id", ids, list(names))

    def execution_parents(self, ids: Sequence[int]) -> Dict[int, Tuple[Optional[int], str]]:
        if not ids:
            return {}
        names = [vocabulary.PARENT_DAG_ID]
        columns, joins = self._joined("ExecutionProperty", "execution_id", names)
        rows = self._select(f"SELECT o.id, o.name{columns} FROM Execution o {joins} WHERE {{ids}}", "o.id", ids,
                            before=names)
        return {row[0]: (vocabulary.int_or_none(self._joined_values(row, 2, names).get(vocabulary.PARENT_DAG_ID)),
                         row[1] or "") for row in rows}

    # --- events -------------------------------------------------------------------------------------------------

    def events(self, artifact_ids: Sequence[int] = (), execution_ids: Sequence[int] = (),
               types: Sequence[str] = (), keys: bool = True) -> List[lineage_graph.Event]:
        column, ids = ("artifact_id", artifact_ids) if artifact_ids else ("execution_id", execution_ids)
        if not ids:
            return []
        type_filter = ""
        if types:
            type_filter = f" AND type IN ({','.join(str(vocabulary.EVENT_TYPE_IDS[t]) for t in types)})"
        names = vocabulary.EVENT_TYPES
        if not keys:
            rows = self._select(f"SELECT id, type, artifact_id, execution_id FROM Event WHERE {{ids}}{type_filter}",
                                column, ids)
            return [_EVENT((names.get(kind) or str(kind), artifact_id, execution_id, ""))
                    for _, kind, artifact_id, execution_id in rows]
        # Each event with the key steps of its path, in one statement: the first one read names the event, as in
        # ml-metadata's own read of EventPath; KFP writes exactly one.
        rows = self._select("SELECT e.id, e.type, e.artifact_id, e.execution_id, p.step_key FROM Event e "
                            "LEFT JOIN EventPath p ON p.event_id = e.id AND p.is_index_step = FALSE "
                            f"WHERE {{ids}}{type_filter.replace(' type ', ' e.type ')}", f"e.{column}", ids)
        events: Dict[int, lineage_graph.Event] = {}
        for event, kind, artifact_id, execution_id, key in rows:
            if event not in events:
                events[event] = _EVENT((names.get(kind) or str(kind), artifact_id, execution_id, key or ""))
        return list(events.values())

    def output_events(self, execution_ids: Sequence[int]) -> Tuple[List[lineage_graph.Event], Dict[int, str]]:
        """The OUTPUT events of these executions (keys ""), and artifact id -> type name of what they wrote."""
        if not execution_ids:
            return [], {}
        rows = self._select(
            "SELECT e.artifact_id, e.execution_id, a.type_id FROM Event e JOIN Artifact a ON a.id = e.artifact_id "
            f"WHERE {{ids}} AND e.type = {vocabulary.EVENT_TYPE_IDS[_OUTPUT]}", "e.execution_id", execution_ids)
        names = self._type_names(t for _, _, t in rows)
        return [_EVENT((_OUTPUT, a, x, "")) for a, x, _ in rows], {a: names[t] for a, _, t in rows}

    # --- runs ---------------------------------------------------------------------------------------------------

    def _runs(self, where: str, params: Sequence[Any], limit: Optional[int] = None) -> List[lineage_graph.Run]:
        return sql_runs.select_runs(self._query, "%s",
                                    self._type_id(vocabulary.RUN_CONTEXT_TYPE, vocabulary.CONTEXT_TYPE_KIND),
                                    self._type_id(vocabulary.PIPELINE_CONTEXT_TYPE, vocabulary.CONTEXT_TYPE_KIND),
                                    where, params, limit)

    def run(self, run_id: str) -> Optional[lineage_graph.Run]:
        found = self._runs("AND c.name = %s", (run_id,))
        return found[0] if found else None

    def runs(self, limit: int, pipeline: Optional[str] = None) -> Optional[List[lineage_graph.Run]]:
        if pipeline is None:
            return self._runs("", (), limit)
        pipeline_type = self._type_id(vocabulary.PIPELINE_CONTEXT_TYPE, vocabulary.CONTEXT_TYPE_KIND)
        rows = self._query("SELECT id FROM Context WHERE type_id = %s AND name = %s", (pipeline_type, pipeline))
        if not rows:
            return None
        return self._runs("AND c.id IN (SELECT context_id FROM ParentContext WHERE parent_context_id = %s)",
                          (rows[0][0],), limit)

    def run_executions(self, context_id: int, properties: Properties = None) -> List[lineage_graph.Execution]:
        rows = self._query(
            "SELECT id, type_id, last_known_state, name, create_time_since_epoch, last_update_time_since_epoch "
            "FROM Execution WHERE id IN (SELECT execution_id FROM Association WHERE context_id = %s)", (context_id,))
        return list(self._executions(rows, properties).values())

    def run_of_execution(self, execution_id: int) -> Optional[str]:
        run_type = self._type_id(vocabulary.RUN_CONTEXT_TYPE, vocabulary.CONTEXT_TYPE_KIND)
        rows = self._query("SELECT MIN(c.name) FROM Association a JOIN Context c ON c.id = a.context_id "
                           "WHERE a.execution_id = %s AND c.type_id = %s", (execution_id, run_type))
        return rows[0][0] if rows else None

    def pipelines(self) -> List[str]:
        pipeline_type = self._type_id(vocabulary.PIPELINE_CONTEXT_TYPE, vocabulary.CONTEXT_TYPE_KIND)
        return sorted(r[0] for r in self._query("SELECT name FROM Context WHERE type_id = %s", (pipeline_type,)))

    def pipelines_of(self, run_ids: Sequence[str]) -> Dict[str, Optional[str]]:
        if not run_ids:
            return {}
        run_type = self._type_id(vocabulary.RUN_CONTEXT_TYPE, vocabulary.CONTEXT_TYPE_KIND)
        pipeline_type = self._type_id(vocabulary.PIPELINE_CONTEXT_TYPE, vocabulary.CONTEXT_TYPE_KIND)
        rows = self._select(
            "SELECT c.name, MIN(p.name) FROM Context c "
            "LEFT JOIN ParentContext pc ON pc.context_id = c.id "
            "LEFT JOIN Context p ON p.id = pc.parent_context_id AND p.type_id = %s "
            "WHERE c.type_id = %s AND {ids} GROUP BY c.name", "c.name", list(run_ids),
            before=(pipeline_type if pipeline_type is not None else -1, run_type))
        return {name: pipeline for name, pipeline in rows}
