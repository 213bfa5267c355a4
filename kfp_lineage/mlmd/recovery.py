"""Finding runs whose runner died (SIGKILL, power loss) and closing them: RUNNING executions become FAILED.

A runner that is killed cannot publish; its executions would stay RUNNING forever and every reader would think
the run is still going. Runs record `runner` = `host:pid:start` on their system.PipelineRun context; a run whose
runner state is still RUNNING but whose process is gone from this host is dead.
"""

from __future__ import annotations

import dataclasses
import socket
from typing import List, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage import errors
from kfp_lineage.mlmd import store as store_module
from kfp_lineage.mlmd import vocabulary

FAILURE_REASON_PROPERTY = vocabulary.FAILURE_REASON


@dataclasses.dataclass(frozen=True)
class RecoveredRun:
    """A dead run that was closed, and how many of its executions were marked FAILED."""

    run_id: str
    runner: str
    executions_failed: int


def _runner_is_dead(runner: str) -> bool:
    host, pid = vocabulary.parse_runner(runner)
    if host != socket.gethostname() or pid is None:
        return False  # another machine's runner: we cannot tell, so we leave it alone
    return vocabulary.runner_identity(pid) != runner


def _runner_state(run: mlmd_pb.Context) -> Optional[str]:
    return vocabulary.custom_property(run, vocabulary.RUNNER_STATE)


def _runner(run: mlmd_pb.Context) -> str:
    return str(vocabulary.custom_property(run, vocabulary.RUNNER, ""))


def find_dead_runs(store: metadata_store.MetadataStore,
                   runs: Optional[List[mlmd_pb.Context]] = None) -> List[mlmd_pb.Context]:
    """Run contexts whose runner state is RUNNING and whose runner process on this host no longer exists."""
    candidates = runs if runs is not None else store.get_contexts_by_type(vocabulary.RUN_CONTEXT_TYPE)
    return [context for context in candidates
            if _runner_state(context) == vocabulary.RUNNER_RUNNING and _runner_is_dead(_runner(context))]


def close_run(store: metadata_store.MetadataStore, run: mlmd_pb.Context, reason: str,
              runner_state: str = vocabulary.RUNNER_FAILED) -> RecoveredRun:
    """Marks every RUNNING execution of `run` FAILED with `failure_reason` (CANCELED when `runner_state` is
    CANCELED: the runner was stopped), then sets the run context's runner_state.

    Events are left as they are: a killed task never published, so it has INPUT events and no OUTPUT events.
    The caller must be the only writer of this run: a dead run's runner is gone; a live runner calls this through
    its Recorder (Recorder.close_run), under the lock its other writes take.
    """
    executions = [e for e in store.get_executions_by_context(run.id)
                  if e.last_known_state in (mlmd_pb.Execution.RUNNING, mlmd_pb.Execution.NEW)]
    closed_state = (mlmd_pb.Execution.CANCELED if runner_state == vocabulary.RUNNER_CANCELED
                    else mlmd_pb.Execution.FAILED)
    for execution in executions:
        execution.last_known_state = closed_state
        execution.custom_properties[vocabulary.FAILURE_REASON].string_value = reason
    if executions:
        store_module.retry_transient(store.put_executions, executions)
    [context] = store.get_contexts_by_id([run.id])  # as stored now, not as the caller last read it
    context.custom_properties[vocabulary.RUNNER_STATE].string_value = runner_state
    store_module.retry_transient(store.put_contexts, [context])
    return RecoveredRun(context.name, _runner(context), len(executions))


def recover(store: metadata_store.MetadataStore, run_id: Optional[str] = None,
            pipeline_context: Optional[mlmd_pb.Context] = None) -> List[RecoveredRun]:
    """Closes dead runs: one named run (which must be dead), the runs of one pipeline, or every run in the store.

    Raises:
        InvalidInputError: `run_id` does not exist, or its runner is still alive (or on another host).
    """
    if run_id is not None:
        run = store.get_context_by_type_and_name(vocabulary.RUN_CONTEXT_TYPE, run_id)
        if run is None:
            raise errors.InvalidInputError(f"no run {run_id!r} in this store")
        if not find_dead_runs(store, [run]):
            state = _runner_state(run) or "unknown"
            raise errors.InvalidInputError(
                f"run {run_id!r} is not a dead run on this host (runner state {state}); nothing to recover"
            )
        candidates = [run]
    elif pipeline_context is not None:
        candidates = find_dead_runs(store, store.get_children_contexts_by_context(pipeline_context.id))
    else:
        candidates = find_dead_runs(store)
    return [
        close_run(store, run, f"the runner ({_runner(run)}) stopped without finishing the run")
        for run in candidates
    ]
