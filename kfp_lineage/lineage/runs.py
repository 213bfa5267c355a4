"""Listing runs, newest first, each summarized: pipeline, state, start, end, duration, task counts."""

from __future__ import annotations

import collections
from typing import List, Optional, Sequence

from kfp_lineage import errors
from kfp_lineage.lineage import graph as lineage_graph
from kfp_lineage.lineage import placement
from kfp_lineage.lineage import reader as lineage_reader

DEFAULT_RUN_LIMIT = 20
_UNFINISHED_STATES = frozenset({"RUNNING", "NEW", "UNKNOWN"})


def list_runs(store: lineage_reader.Store, pipeline: Optional[str] = None,
              limit: int = DEFAULT_RUN_LIMIT, *, sql: bool = True) -> List[lineage_graph.Run]:
    """The newest runs, newest first, each summarized: pipeline, state, start, end, duration, task counts.

    Args:
        store: an open ml-metadata store, or a Reader.
        pipeline: only runs of this pipeline (its `pipelineInfo.name`).
        limit: at most this many runs.
        sql: allow the read-only SQL reader on SQLite stores.

    Returns:
        The runs with their summary fields filled.

    Raises:
        InvalidInputError: the store has no runs, or no pipeline of that name.
    """
    reader = lineage_reader.reader_for(store, sql)
    runs = reader.runs(limit, pipeline)
    if runs is None:
        known = ", ".join(reader.pipelines()) or "none"
        raise errors.InvalidInputError(f"no pipeline {pipeline!r} in this store: its pipelines are {known}")
    if not runs and pipeline is None:
        raise errors.InvalidInputError("the store has no pipeline runs yet: run one with `kfp-lineage run`")
    for run in runs:
        summarize_run(run, reader.run_executions(run.context_id, placement.PLACE_PROPERTIES))
    return runs


def summarize_run(run: lineage_graph.Run, executions: Sequence[lineage_graph.Execution]) -> None:
    """Fills a run's state, start, end and task counts from its executions.

    The state is the root DAG's. A root left RUNNING (the KFP backend never closes it) is read from the tasks:
    RUNNING while one runs, else FAILED when one failed, else COMPLETE.
    """
    roots = sorted((e for e in executions if e.parent_dag_id is None), key=lambda e: (not e.name, e.id))
    root = roots[0] if roots else None
    tasks = [e for e in executions if e is not root]
    run.task_states = dict(collections.Counter(e.state for e in tasks))
    run.start_time = min((e.create_time for e in executions if e.create_time), default=run.create_time or None)
    run.end_time = max((e.update_time for e in executions if e.update_time), default=None)
    if root is not None and root.state not in _UNFINISHED_STATES:
        run.state = root.state
    elif any(e.state in _UNFINISHED_STATES for e in tasks) or not tasks:
        run.state = "RUNNING"
    elif "FAILED" in run.task_states:
        run.state = "FAILED"
    else:
        run.state = "COMPLETE"
