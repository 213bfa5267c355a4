"""Read-only SQL on the MLMD schema of a SQLite store: the fast reader of lineage records.

`SqliteReader` implements reader.Reader with the results of `mlmd_reader.MlmdReader` (tests/lineage checks they
agree) and is several times faster on large walks (bench/results-queries.md). It opens the file read-only, never
writes, and refuses a schema version it was not written for, so `reader.reader_for` falls back to ml-metadata
calls. MySQL/MariaDB and PostgreSQL stores have their own SQL reader (server_reader.py): their schemas type
some columns differently (booleans) and neither coalesces a string with a number as SQLite does.

On a store with kfp-lineage's covering indexes (mlmd/indexes.py: stores the runner creates, or `kfp-lineage
index`) the statements read property values and event keys from those indexes alone; the results are the same.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import urllib.parse
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from kfp_lineage.lineage import graph as lineage_graph
from kfp_lineage.lineage import sql_runs
from kfp_lineage.mlmd import indexes as store_indexes
from kfp_lineage.mlmd import vocabulary

# The MLMD schema versions this reader was written and tested against (ml-metadata 1.14 to 1.17).
KNOWN_SCHEMA_VERSIONS = frozenset({10})
_CHUNK = 900  # ids per IN (...) list: under SQLite's oldest variable limit (999)
_MMAP_BYTES = 1 << 30
# Event(type, artifact_id, execution_id, key) from a 4-tuple without Event._make's Python-level call: a walk makes
# tens of thousands of them.
_EVENT = functools.partial(tuple.__new__, lineage_graph.Event)
# An Event row's type as its name (EVENT_TYPES; the number as text when unknown), computed in SQL.
_EVENT_TYPE_NAME = ("CASE e.type " + " ".join(f"WHEN {number} THEN '{name}'"
                                               for number, name in vocabulary.EVENT_TYPES.items())
                    + " ELSE CAST(e.type AS TEXT) END")
_OUTPUT = vocabulary.OUTPUT_EVENT
_DISPLAY_NAME = vocabulary.DISPLAY_NAME
# Values as read by COALESCE(string, double, int) and by the five value columns; see vocabulary.
_coalesced_value = vocabulary.sql_string_value
_sql_value = vocabulary.sql_value
Properties = Optional[Iterable[str]]  # as in reader.Properties
# kfp-lineage's covering indexes (mlmd/indexes.py) are partial on `<owner id> > 0`: the statements below state that
# condition (always true) wherever one of them could serve, which lets SQLite use them when a store has them.
_PROPERTY_INDEXES = {"ExecutionProperty": "idx_kfpl_execution_property",
                      "ArtifactProperty": "idx_kfpl_artifact_property"}
assert set(_PROPERTY_INDEXES.values()) <= {i.name for i in store_indexes.SQLITE_INDEXES}


def _wanted(properties: Properties) -> Optional[frozenset]:
    return None if properties is None else frozenset(properties)


class SqliteReader:
    """Reads a SQLite MLMD store with read-only SQL; same results as MlmdReader."""

    kind = "sqlite"

    def __init__(self, path: str):
        """Opens `path` read-only.

        Raises:
            ValueError: the file is not an MLMD store of a schema version this reader knows.
        """
        uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
        try:
            self.connection = sqlite3.connect(uri, uri=True, timeout=10, isolation_level=None,
                                              check_same_thread=False)
            [(version,)] = self.connection.execute("SELECT schema_version FROM MLMDEnv").fetchall()
        except (sqlite3.Error, ValueError) as e:
            raise ValueError(f"not a readable MLMD store: {e}") from None
        if version not in KNOWN_SCHEMA_VERSIONS:
            self.connection.close()
            raise ValueError(f"MLMD schema version {version} is not one of {sorted(KNOWN_SCHEMA_VERSIONS)}")
        # Memory-map the file: a walk touches rows all over a large store, and mapped pages skip a read() each.
        self.connection.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
        self.connection.execute("PRAGMA temp_store = MEMORY")  # IN (...) lists become in-memory b-trees
        self.connection.execute("PRAGMA query_only = 1")
        present = {row[0] for row in self.connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name IN (?, ?)",
            tuple(_PROPERTY_INDEXES.values()))}
        # A LEFT JOIN on (owner, name, is_custom_property) would pick MLMD's unique key over a covering index: it is
        # named where the store has it.
        self._indexed_by = {table: f" INDEXED BY {name}" if name in present else ""
                            for table, name in _PROPERTY_INDEXES.items()}
        self._types: Dict[int, Tuple[str, int]] = {}
        self._load_types()

    def close(self) -> None:
        self.connection.close()

    def _load_types(self) -> None:
        self._types = {row[0]: (row[1], row[2]) for row in self.connection.execute(
            "SELECT id, name, type_kind FROM Type")}

    def _type_name(self, type_id: int) -> str:
        if type_id not in self._types:
            self._load_types()  # a type registered after we opened the store
        return self._types.get(type_id, ("", 0))[0]

    def _type_id(self, name: str, kind: int) -> Optional[int]:
        found = [i for i, (n, k) in self._types.items() if n == name and k == kind]
        if not found:
            self._load_types()
            found = [i for i, (n, k) in self._types.items() if n == name and k == kind]
        return found[0] if found else None

    def _select(self, sql: str, ids: Sequence[Any], before: Sequence[Any] = (), after: Sequence[Any] = ()
                ) -> List[tuple]:
        """Runs `sql`, whose `{ids}` is a placeholder list, for every chunk of ids; `before` and `after` are the
        parameters around the list. `{ids}` may only appear as `x IN ({ids})`: the list is padded with NULLs."""
        rows: List[tuple] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = list(ids[start:start + _CHUNK])
            # Padded with NULLs (never equal to an id) to a power of two: few distinct statements, so the
            # connection's statement cache spares compiling a new one for nearly every call.
            size = min(_CHUNK, 1 << (len(chunk) - 1).bit_length())
            rows.extend(self.connection.execute(sql.format(ids=",".join("?" * size)),
                                                (*before, *chunk, *[None] * (size - len(chunk)), *after)))
        return rows

    # Row cost in Python dominates large walks (about 0.1 us per column value), so the queries below return few
    # columns: a property value comes back as COALESCE(string, double, int) plus a flag for the rare bool or
    # proto value, which is then read again in full.
    _VALUE = "COALESCE({p}.string_value, {p}.double_value, {p}.int_value)"
    _RARE = "({p}.bool_value IS NOT NULL OR {p}.proto_value IS NOT NULL)"
    # _VALUE and _RARE in one column: the value, else an empty blob marking a bool or proto value. ml-metadata
    # writes only text, reals and integers to the three value columns, so a blob is always the mark.
    _VALUE_OR_MARK = ("COALESCE({p}.string_value, {p}.double_value, {p}.int_value, "
                      "CASE WHEN {p}.bool_value IS NOT NULL OR {p}.proto_value IS NOT NULL THEN X'' END)")

    def _properties(self, table: str, column: str, ids: Sequence[int]) -> Dict[int, Dict[str, Any]]:
        """owner id -> every property; a custom property wins over a typed one of the same name (rows come in
        index order, typed first), as in MlmdReader."""
        rows = self._select(
            f"SELECT {column}, name, {self._VALUE.format(p=table)}, {self._RARE.format(p=table)} FROM {table} "
            f"WHERE {column} IN ({{ids}}) AND {column} > 0 ORDER BY {column}, name, is_custom_property", ids)
        found: Dict[int, Dict[str, Any]] = {}
        rare: List[int] = []
        for owner, name, value, is_rare in rows:
            found.setdefault(owner, {})[name] = _coalesced_value(value)
            if is_rare and value is None:
                rare.append(owner)
        if rare:
            for owner, name, values in self._full_values(table, column, sorted(set(rare))):
                found[owner][name] = _sql_value(*values)
        return found

    def _full_values(self, table: str, column: str, ids: Sequence[int]) -> List[Tuple[int, str, tuple]]:
        rows = self._select(
            f"SELECT {column}, name, int_value, double_value, string_value, proto_value, bool_value FROM {table} "
            f"WHERE {column} IN ({{ids}}) AND {column} > 0 ORDER BY {column}, name, is_custom_property", ids)
        return [(row[0], row[1], row[2:]) for row in rows]

    def _summary_columns(self, table: str, column: str, names: Sequence[str]) -> Tuple[str, str]:
        """SELECT columns and LEFT JOINs that bring these custom properties into the owner's row (alias o)."""
        columns = []
        joins = []
        for i, _ in enumerate(names):
            alias = f"j{i}"
            columns.append(self._VALUE_OR_MARK.format(p=alias))
            joins.append(f"LEFT JOIN {table} {alias}{self._indexed_by[table]} ON {alias}.{column} = o.id "
                         f"AND {alias}.{column} > 0 AND {alias}.name = ? AND {alias}.is_custom_property = 1")
        return "".join(", " + c for c in columns), " ".join(joins)

    def _summary_values(self, table: str, column: str, rows: List[tuple], names: Sequence[str], first: int
                        ) -> Dict[int, Dict[str, Any]]:
        """owner id -> {name: value} from the joined _VALUE_OR_MARK columns starting at row[first]."""
        found: Dict[int, Dict[str, Any]] = {}
        rare: List[int] = []
        columns = list(enumerate(names, first))
        for row in rows:
            values = {}
            for index, name in columns:
                value = row[index]
                if value is None:
                    continue
                kind = type(value)
                if kind is str:
                    values[name] = _coalesced_value(value)
                elif kind is bytes:  # the mark of a bool or proto value
                    rare.append(row[0])
                else:
                    values[name] = value
            found[row[0]] = values
        if rare:
            wanted = set(names)
            for owner, name, values in self._full_values(table, column, sorted(set(rare))):
                if name in wanted:
                    found[owner][name] = _sql_value(*values)
        return found

    def artifacts(self, ids: Sequence[int], properties: Properties = None) -> Dict[int, lineage_graph.Artifact]:
        if not ids:
            return {}
        wanted = _wanted(properties)
        if wanted is None:
            rows = self._select("SELECT id, type_id, uri, state, name, create_time_since_epoch FROM Artifact "
                                "WHERE id IN ({ids})", ids)
            props = self._properties("ArtifactProperty", "artifact_id", [r[0] for r in rows])
            return {row[0]: self._artifact(row, lineage_graph.artifact_name(props.get(row[0], {}), row[4]), props.get(row[0], {}))
                    for row in rows}
        # The name comes with the row: a string display_name, else Artifact.name. `odd` marks a display_name that
        # is not a string, which is then read in full.
        rows = self._select(
            "SELECT o.id, o.type_id, o.uri, o.state, COALESCE(NULLIF(d.string_value, ''), o.name), "
            "o.create_time_since_epoch, d.string_value, d.artifact_id IS NOT NULL AND d.string_value IS NULL "
            f"FROM Artifact o LEFT JOIN ArtifactProperty d{self._indexed_by['ArtifactProperty']} "
            f"ON d.artifact_id = o.id AND d.artifact_id > 0 AND d.name = '{_DISPLAY_NAME}' "
            "AND d.is_custom_property = 1 WHERE o.id IN ({ids})", ids)
        others = sorted(wanted - {_DISPLAY_NAME})
        props = self._custom_properties("ArtifactProperty", "artifact_id", [r[0] for r in rows], others)
        odd = [row[0] for row in rows if row[7]]
        odd_names = self._custom_properties("ArtifactProperty", "artifact_id", odd, [_DISPLAY_NAME])
        found = {}
        artifact = self._artifact
        keep_display = _DISPLAY_NAME in wanted
        for row in rows:
            values = props.get(row[0], {})
            name = row[4]
            if row[7]:
                display = odd_names.get(row[0], {}).get(_DISPLAY_NAME)
                name = lineage_graph.artifact_name({_DISPLAY_NAME: display}, None) or row[4]  # type: ignore[arg-type]
                if keep_display:
                    values[_DISPLAY_NAME] = display
            elif keep_display and row[6] is not None:
                values[_DISPLAY_NAME] = row[6]
            found[row[0]] = artifact(row, name, values)
        return found

    def artifact_properties(self, ids: Sequence[int], names: Sequence[str]) -> Dict[int, Dict[str, Any]]:
        """artifact id -> {name: value} of these custom properties, for artifacts that have any."""
        return self._custom_properties("ArtifactProperty", "artifact_id", ids, names)

    def execution_properties(self, ids: Sequence[int], names: Sequence[str]) -> Dict[int, Dict[str, Any]]:
        """execution id -> {name: value} of these custom properties, for executions that have any."""
        return self._custom_properties("ExecutionProperty", "execution_id", ids, names)

    def output_events(self, execution_ids: Sequence[int]) -> Tuple[List[lineage_graph.Event], Dict[int, str]]:
        """The OUTPUT events of these executions (keys ""), and artifact id -> type name of what they wrote: one
        query, since the artifact row is read anyway."""
        if not execution_ids:
            return [], {}
        rows = self._select(
            "SELECT e.artifact_id, e.execution_id, a.type_id FROM Event e JOIN Artifact a ON a.id = e.artifact_id "
            f"WHERE e.execution_id IN ({{ids}}) AND e.execution_id > 0 "
            f"AND e.type = {vocabulary.EVENT_TYPE_IDS[_OUTPUT]}", execution_ids)
        names = {t: name for t, (name, _) in self._types.items()}
        events = [_EVENT((_OUTPUT, a, x, "")) for a, x, _ in rows]
        return events, {a: names[t] if t in names else self._type_name(t) for a, _, t in rows}

    def _artifact(self, row: tuple, name: Optional[str], properties: Dict[str, Any]) -> lineage_graph.Artifact:
        known = self._types.get(row[1])
        # Positional: Artifact(id, type, uri, name, state, create_time, properties).
        return lineage_graph.Artifact(
            row[0], known[0] if known else self._type_name(row[1]), row[2] or "", name or "",
            vocabulary.ARTIFACT_STATES.get(row[3] or 0) or str(row[3]), row[5] or 0, properties)

    def _custom_properties(self, table: str, column: str, ids: Sequence[int], names: Sequence[str]
                          ) -> Dict[int, Dict[str, Any]]:
        """owner id -> {name: value} of these custom properties, for owners that have any."""
        if not ids or not names:
            return {}
        # `+name`: walk each owner's few index entries once rather than seek every (owner, name) pair.
        rows = self._select(
            f"SELECT {column}, name, {self._VALUE.format(p=table)}, {self._RARE.format(p=table)} FROM {table} "
            f"WHERE {column} IN ({{ids}}) AND {column} > 0 AND +name IN ({','.join('?' * len(names))}) "
            "AND is_custom_property = 1",
            ids, after=list(names))
        found: Dict[int, Dict[str, Any]] = {}
        rare = []
        for owner, name, value, is_rare in rows:
            found.setdefault(owner, {})[name] = _coalesced_value(value)
            if is_rare and value is None:
                rare.append(owner)
        if rare:
            wanted = set(names)
            for owner, name, values in self._full_values(table, column, sorted(set(rare))):
                if name in wanted:
                    found[owner][name] = _sql_value(*values)
        return found

    def executions(self, ids: Sequence[int], properties: Properties = None, dags: bool = True
                   ) -> Dict[int, lineage_graph.Execution]:
        if not ids:
            return {}
        where = "o.id IN ({ids})"
        if not dags:
            dag_types = [i for i, (name, kind) in self._types.items()
                         if kind == vocabulary.EXECUTION_TYPE_KIND and name in vocabulary.DAG_EXECUTION_TYPES]
            where += "".join(f" AND o.type_id != {int(i)}" for i in dag_types)
            found = self._executions(where, ids, (), _wanted(properties))
            return {i: e for i, e in found.items() if not e.is_dag}  # a DAG type registered since we looked
        return self._executions(where, ids, (), _wanted(properties))

    def _executions(self, where: str, ids: Sequence[Any], params: Sequence[Any], wanted: Optional[frozenset]
                    ) -> Dict[int, lineage_graph.Execution]:
        names = sorted(wanted) if wanted is not None else []
        columns, joins = self._summary_columns("ExecutionProperty", "execution_id", names)
        sql = (f"SELECT o.id, o.type_id, o.last_known_state, o.name, o.create_time_since_epoch, "
               f"o.last_update_time_since_epoch{columns} FROM Execution o {joins} WHERE {where}")
        if ids:
            rows = self._select(sql, ids, before=(*names, *params))
        else:
            rows = self.connection.execute(sql, (*names, *params)).fetchall()
        if wanted is None:
            props = self._properties("ExecutionProperty", "execution_id", [r[0] for r in rows])
        else:
            props = self._summary_values("ExecutionProperty", "execution_id", rows, names, 6)
        states = vocabulary.EXECUTION_STATES
        types = self._types
        make = lineage_graph.Execution
        # Positional for speed: id, type, name, state, create_time, update_time, properties.
        return {
            row[0]: make(row[0], types[row[1]][0] if row[1] in types else self._type_name(row[1]), row[3] or "",
                         states.get(row[2] or 0) or str(row[2]), row[4] or 0, row[5] or 0, props.get(row[0], {}))
            for row in rows
        }

    def events(self, artifact_ids: Sequence[int] = (), execution_ids: Sequence[int] = (),
               types: Sequence[str] = (), keys: bool = True) -> List[lineage_graph.Event]:
        column, ids = ("artifact_id", artifact_ids) if artifact_ids else ("execution_id", execution_ids)
        if not ids:
            return []
        type_filter = " AND e.execution_id > 0" if column == "execution_id" else ""
        if types:
            type_filter += f" AND e.type IN ({','.join(str(vocabulary.EVENT_TYPE_IDS[t]) for t in types)})"
        # Rows come shaped as Event(type name, artifact_id, execution_id, key).
        if not keys:
            rows = self._select(f"SELECT {_EVENT_TYPE_NAME}, e.artifact_id, e.execution_id, '' FROM Event e "
                                f"WHERE e.{column} IN ({{ids}}){type_filter}", ids)
            return list(map(_EVENT, rows))
        # The first key step of the path (the first written) names the event. KFP writes exactly one, which a
        # count and a MIN read from the covering index idx_kfpl_eventpath_key when the store has it; several are
        # ordered by rowid. By artifact the unique index (artifact_id, execution_id, type) covers the Event part.
        rows = self._select(
            f"SELECT {_EVENT_TYPE_NAME}, e.artifact_id, e.execution_id, COALESCE((SELECT CASE COUNT(*) WHEN 1 THEN "
            "MIN(p.step_key) ELSE (SELECT q.step_key FROM EventPath q WHERE q.event_id = e.id AND q.is_index_step = 0 "
            "ORDER BY q.rowid LIMIT 1) END FROM EventPath p WHERE p.event_id = e.id AND p.is_index_step = 0), '') "
            f"FROM Event e WHERE e.{column} IN ({{ids}}){type_filter}", ids)
        return list(map(_EVENT, rows))

    def execution_parents(self, ids: Sequence[int]) -> Dict[int, Tuple[Optional[int], str]]:
        rows = self._select(
            "SELECT e.id, e.name, COALESCE(p.int_value, p.double_value, p.string_value) FROM Execution e "
            f"LEFT JOIN ExecutionProperty p ON p.execution_id = e.id AND p.execution_id > 0 "
            f"AND p.name = '{vocabulary.PARENT_DAG_ID}' "
            "WHERE e.id IN ({ids})", ids)
        return {execution_id: (vocabulary.int_or_none(parent), name or "") for execution_id, name, parent in rows}

    def run_of_execution(self, execution_id: int) -> Optional[str]:
        run_type = self._type_id(vocabulary.RUN_CONTEXT_TYPE, vocabulary.CONTEXT_TYPE_KIND)
        row = self.connection.execute(
            "SELECT MIN(c.name) FROM Association a JOIN Context c ON c.id = a.context_id "
            "WHERE a.execution_id = ? AND c.type_id = ?", (execution_id, run_type)).fetchone()
        return row[0] if row else None

    def artifacts_by_uri(self, uri: str) -> Dict[int, lineage_graph.Artifact]:
        ids = [r[0] for r in self.connection.execute("SELECT id FROM Artifact WHERE uri = ?", (uri,))]
        return self.artifacts(ids)

    def has_artifacts(self) -> bool:
        return self.connection.execute("SELECT 1 FROM Artifact LIMIT 1").fetchone() is not None

    def _runs(self, where: str, params: Sequence[Any], limit: Optional[int] = None) -> List[lineage_graph.Run]:
        def query(statement: str, values: Sequence[Any]) -> List[tuple]:
            return self.connection.execute(statement, values).fetchall()

        return sql_runs.select_runs(query, "?",
                                    self._type_id(vocabulary.RUN_CONTEXT_TYPE, vocabulary.CONTEXT_TYPE_KIND),
                                    self._type_id(vocabulary.PIPELINE_CONTEXT_TYPE, vocabulary.CONTEXT_TYPE_KIND),
                                    where, params, limit)

    def run(self, run_id: str) -> Optional[lineage_graph.Run]:
        found = self._runs("AND c.name = ?", (run_id,))
        return found[0] if found else None

    def pipelines(self) -> List[str]:
        pipeline_type = self._type_id(vocabulary.PIPELINE_CONTEXT_TYPE, vocabulary.CONTEXT_TYPE_KIND)
        return [r[0] for r in self.connection.execute(
            "SELECT name FROM Context WHERE type_id = ? ORDER BY name", (pipeline_type,))]

    def runs(self, limit: int, pipeline: Optional[str] = None) -> Optional[List[lineage_graph.Run]]:
        if pipeline is None:
            return self._runs("", (), limit)
        pipeline_type = self._type_id(vocabulary.PIPELINE_CONTEXT_TYPE, vocabulary.CONTEXT_TYPE_KIND)
        row = self.connection.execute("SELECT id FROM Context WHERE type_id = ? AND name = ?",
                                      (pipeline_type, pipeline)).fetchone()
        if row is None:
            return None
        return self._runs("AND c.id IN (SELECT context_id FROM ParentContext WHERE parent_context_id = ?)",
                          (row[0],), limit)

    def run_executions(self, context_id: int, properties: Properties = None) -> List[lineage_graph.Execution]:
        return list(self._executions("o.id IN (SELECT execution_id FROM Association WHERE context_id = ?)", (),
                                     (context_id,), _wanted(properties)).values())

    def pipelines_of(self, run_ids: Sequence[str]) -> Dict[str, Optional[str]]:
        run_type = self._type_id(vocabulary.RUN_CONTEXT_TYPE, vocabulary.CONTEXT_TYPE_KIND)
        pipeline_type = self._type_id(vocabulary.PIPELINE_CONTEXT_TYPE, vocabulary.CONTEXT_TYPE_KIND)
        rows = self._select(
            "SELECT c.name, MIN(p.name) FROM Context c "
            "LEFT JOIN ParentContext pc ON pc.context_id = c.id "
            "LEFT JOIN Context p ON p.id = pc.parent_context_id AND p.type_id = ? "
            "WHERE c.type_id = ? AND c.name IN ({ids}) GROUP BY c.name", list(run_ids),
            before=(pipeline_type, run_type))
        return {name: pipeline for name, pipeline in rows}
