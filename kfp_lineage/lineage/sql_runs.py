"""The query for a store's runs that both SQL readers run (sqlite_reader.py, server_reader.py): one statement over
MLMD's schema, written with the reader's parameter placeholder."""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

from kfp_lineage.lineage import graph as lineage_graph


def select_runs(query: Callable[[str, Sequence[Any]], List[tuple]], placeholder: str, run_type: Optional[int],
                pipeline_type: Optional[int], where: str, params: Sequence[Any],
                limit: Optional[int] = None) -> List[lineage_graph.Run]:
    """The runs (system.PipelineRun contexts) that `where` selects, newest first, each with its pipeline's name.

    Args:
        query: runs one statement with its parameters and returns the rows.
        placeholder: the driver's parameter marker (`?` or `%s`), as `where` uses it too.
        run_type, pipeline_type: the type ids of the run and pipeline contexts (None: the store has none).
        where: more conditions on the run context `c`, starting with AND (or "").
        params: the parameters of `where`.
        limit: at most this many runs.
    """
    if run_type is None:
        return []
    sql = ("SELECT c.id, c.name, c.create_time_since_epoch, "
           "(SELECT MIN(p.name) FROM ParentContext pc JOIN Context p ON p.id = pc.parent_context_id "
           f" WHERE pc.context_id = c.id AND p.type_id = {placeholder}) "
           f"FROM Context c WHERE c.type_id = {placeholder} {where} "
           "ORDER BY c.create_time_since_epoch DESC, c.id DESC")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    rows = query(sql, (pipeline_type if pipeline_type is not None else -1, run_type, *params))
    return [lineage_graph.Run(run_id=r[1], pipeline=r[3], context_id=r[0], create_time=r[2] or 0) for r in rows]
