"""Finding runs whose runner died (SIGKILL, power loss) and closing them: RUNNING executions become FAILED.

A runner that is killed cannot publish; its executions would stay RUNNING forever and every reader would think
the run is still going. A live runner holds an advisory lock (flock) on `<run root>/.kfp-lineage/runner.lock`
for the whole run; the kernel releases it when the runner's process ends, however it ends. So a run whose
runner_state is still RUNNING is dead when its lock file exists and the lock is free. That holds across
containers that share a hostname but not a PID namespace, and on macOS (no /proc). A run whose directory is
visible but holds no lock file (recorded before lock files) is judged by its `runner` = `host:pid:start`; a run
whose directory is not visible here (another machine, a container's own filesystem) is left alone.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import socket
from typing import List, Optional

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are judged by their runner identity alone
    fcntl = None  # type: ignore[assignment]

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage import errors
from kfp_lineage.mlmd import store as store_module
from kfp_lineage.mlmd import vocabulary

FAILURE_REASON_PROPERTY = vocabulary.FAILURE_REASON
# Where a live runner's lock is, relative to the run's directory (the run context's pipeline_root).
RUNNER_LOCK_FILE = os.path.join(".kfp-lineage", "runner.lock")


@dataclasses.dataclass(frozen=True)
class RecoveredRun:
    """A dead run that was closed, and how many of its executions were marked FAILED."""

    run_id: str
    runner: str
    executions_failed: int


class RunnerLock:
    """The lock a live runner holds on its run's directory; release it once the run is final in the store."""

    def __init__(self, path: str, fd: Optional[int], created: List[str]):
        self.path = path
        self._fd = fd
        self._created = created  # the lock file, then the directories made for it, deepest first; if new

    def release(self) -> None:
        """Frees the lock (closing the file frees it); the file stays, so the run can be judged later."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def discard(self) -> None:
        """Frees the lock and removes the file and the directories made for it: the run was never recorded."""
        self.release()
        for path in self._created:
            try:
                if path == self.path:
                    os.unlink(path)
                else:
                    os.rmdir(path)
            except OSError:
                break


def hold_runner_lock(run_root: str) -> RunnerLock:
    """Creates `<run_root>/.kfp-lineage/runner.lock` and takes its lock for this process (not inherited by the
    processes it starts), so recover can tell this run is alive.

    Raises:
        InvalidInputError: another live runner holds it (a second run with the same id and pipeline root), or
            the directory cannot be created.
    """
    path = os.path.join(run_root, RUNNER_LOCK_FILE)
    if fcntl is None:
        return RunnerLock(path, None, [])
    created = []
    directory = os.path.dirname(path)
    while directory and not os.path.isdir(directory):
        created.append(directory)
        directory = os.path.dirname(directory)
    existed = os.path.exists(path)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise errors.InvalidInputError(
            f"cannot create the run's directory {run_root}: {e.strerror or e}: pass a writable --pipeline-root"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise errors.InvalidInputError(
                f"{run_root} is in use by a live run with the same run id: pass a new --run-id or leave it out"
            ) from None
        raise
    return RunnerLock(path, fd, [] if existed else [path, *created])


def _lock_is_free(path: str) -> Optional[bool]:
    """Whether nobody holds the runner lock at `path`; None when there is no lock file to ask."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held: the runner lives
    finally:
        os.close(fd)  # frees it again, if we got it
    return True


def _runner_is_dead(run: mlmd_pb.Context) -> bool:
    run_root = str(vocabulary.custom_property(run, vocabulary.PIPELINE_ROOT, ""))
    if not run_root or not os.path.isdir(run_root):
        return False  # the run's directory is not here: another machine or container, we cannot tell
    free = _lock_is_free(os.path.join(run_root, RUNNER_LOCK_FILE))
    if free is not None:
        return free
    # A run recorded before runner locks: its runner's process on this host.
    runner = _runner(run)
    host, pid = vocabulary.parse_runner(runner)
    if host != socket.gethostname() or pid is None:
        return False
    if runner.endswith(":"):  # recorded without a process start time (no /proc): ask whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return vocabulary.runner_identity(pid) != runner


def _runner_state(run: mlmd_pb.Context) -> Optional[str]:
    return vocabulary.custom_property(run, vocabulary.RUNNER_STATE)


def _runner(run: mlmd_pb.Context) -> str:
    return str(vocabulary.custom_property(run, vocabulary.RUNNER, ""))


def find_dead_runs(store: metadata_store.MetadataStore,
                   runs: Optional[List[mlmd_pb.Context]] = None) -> List[mlmd_pb.Context]:
    """Run contexts whose runner state is RUNNING and whose runner is known to be gone (see the module doc)."""
    candidates = runs if runs is not None else store.get_contexts_by_type(vocabulary.RUN_CONTEXT_TYPE)
    return [context for context in candidates
            if _runner_state(context) == vocabulary.RUNNER_RUNNING and _runner_is_dead(context)]


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
