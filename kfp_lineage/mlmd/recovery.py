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
from kfp_lineage.mlmd import recorder

FAILURE_REASON_PROPERTY = "failure_reason"


@dataclasses.dataclass(frozen=True)
class RecoveredRun:
    """A dead run that was closed, and how many of its executions were marked FAILED."""

    run_id: str
    runner: str
    executions_failed: int


def _runner_is_dead(runner: str) -> bool:
    host, _, rest = runner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine's runner: we cannot tell, so we leave it alone
    return recorder.runner_identity(int(pid_text)) != runner


def find_dead_runs(store: metadata_store.MetadataStore,
                   runs: Optional[List[mlmd_pb.Context]] = None) -> List[mlmd_pb.Context]:
    """Run contexts whose runner state is RUNNING and whose runner process on this host no longer exists."""
    candidates = runs if runs is not None else store.get_contexts_by_type(recorder.RUN_CONTEXT_TYPE)
    dead = []
    for context in candidates:
        props = context.custom_properties
        if props.get(recorder.RUNNER_STATE_PROPERTY) is None or (
            props[recorder.RUNNER_STATE_PROPERTY].string_value != "RUNNING"
        ):
            continue
        if _runner_is_dead(props[recorder.RUNNER_PROPERTY].string_value):
            dead.append(context)
    return dead


def close_run(store: metadata_store.MetadataStore, run: mlmd_pb.Context, reason: str) -> RecoveredRun:
    """Marks every RUNNING execution of `run` FAILED with `failure_reason`, then the run context FAILED.

    Events are left as they are: a killed task never published, so it has INPUT events and no OUTPUT events.
    """
    executions = [e for e in store.get_executions_by_context(run.id)
                  if e.last_known_state in (mlmd_pb.Execution.RUNNING, mlmd_pb.Execution.NEW)]
    for execution in executions:
        execution.last_known_state = mlmd_pb.Execution.FAILED
        execution.custom_properties[FAILURE_REASON_PROPERTY].string_value = reason
    if executions:
        store.put_executions(executions)
    run.custom_properties[recorder.RUNNER_STATE_PROPERTY].string_value = "FAILED"
    store.put_contexts([run])
    return RecoveredRun(run.name, run.custom_properties[recorder.RUNNER_PROPERTY].string_value, len(executions))


def recover(store: metadata_store.MetadataStore, run_id: Optional[str] = None,
            pipeline_context: Optional[mlmd_pb.Context] = None) -> List[RecoveredRun]:
    """Closes dead runs: one named run (which must be dead), the runs of one pipeline, or every run in the store.

    Raises:
        InvalidInputError: `run_id` does not exist, or its runner is still alive (or on another host).
    """
    if run_id is not None:
        run = store.get_context_by_type_and_name(recorder.RUN_CONTEXT_TYPE, run_id)
        if run is None:
            raise errors.InvalidInputError(f"no run {run_id!r} in this store")
        if not find_dead_runs(store, [run]):
            state = run.custom_properties[recorder.RUNNER_STATE_PROPERTY].string_value if (
                recorder.RUNNER_STATE_PROPERTY in run.custom_properties) else "unknown"
            raise errors.InvalidInputError(
                f"run {run_id!r} is not a dead run on this host (runner state {state}); nothing to recover"
            )
        candidates = [run]
    elif pipeline_context is not None:
        candidates = find_dead_runs(store, store.get_children_contexts_by_context(pipeline_context.id))
    else:
        candidates = find_dead_runs(store)
    return [
        close_run(store, run, f"the runner ({run.custom_properties[recorder.RUNNER_PROPERTY].string_value}) "
                              "stopped without finishing the run")
        for run in candidates
    ]
