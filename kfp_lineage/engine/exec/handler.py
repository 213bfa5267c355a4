"""The task-handler interface: how the scheduler has one container task run, whatever runs it.

A handler is a way of running a task: every task a fresh subprocess (subprocess_handler.py), or Python tasks forked
from a warm server per environment (fork_handler.py); next, a container runtime. Which environment a task runs in
(the runner's own, or an isolated one built for its requirements) was decided and prepared before the run: it
comes with the launch (TaskLaunch.environment and a PATH whose `python3` is that environment's). The scheduler makes
one handler per run through factory.create_handler, calls `run` once per task attempt from its worker threads,
and `close` once at the end. Handlers know nothing of MLMD, caching, retries or the DAG.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import signal
import sys
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage.ir import dataflow

ContainerSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec


class TaskProcess(Protocol):
    """A started task process, as subprocess.Popen and forkserver.ForkedProcess both are: the leader of its own
    process group (session), waitable."""

    pid: int

    def wait(self, timeout: Optional[float] = None) -> int:
        """The exit code (negative: killed by that signal). Raises subprocess.TimeoutExpired after `timeout`."""


class RunningProcesses:
    """The live task processes of one run: the run's cancellation switch.

    A handler adds every process it starts and discards it once it ended. `cancel_all` (the run was interrupted)
    kills every process group added so far and any added later; `canceled` then stays True for the run.
    Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: set = set()
        self.canceled = False

    def add(self, process: TaskProcess) -> bool:
        """Tracks a started process; False (and the process group is killed) when the run was already canceled."""
        with self._lock:
            if not self.canceled:
                self._processes.add(process)
                return True
        signal_group(process, signal.SIGKILL)
        return False

    def discard(self, process: TaskProcess) -> None:
        with self._lock:
            self._processes.discard(process)

    def cancel_all(self) -> None:
        """Kills every tracked process group; processes started later are killed as they are added."""
        with self._lock:
            self.canceled = True
            processes = list(self._processes)
        for process in processes:
            signal_group(process, signal.SIGKILL)


def signal_group(process: TaskProcess, signal_number: int) -> None:
    """Sends a signal to the process group a task process leads; a group already gone is not an error."""
    try:
        os.killpg(process.pid, signal_number)
    except (ProcessLookupError, PermissionError):
        pass


@dataclasses.dataclass(frozen=True)
class TaskEnvironment:
    """The environment the tasks of one executor run in, decided (environment_plan.py) and prepared
    (environments.py) before the run: the runner's own, or an isolated one built for the task's requirements.

    Attributes:
        isolated: True for an isolated environment, False for the runner's own.
        reason: why, as the plan put it (`needs kfpl-probe==1.0 (not installed)`).
        python: the full Python version tasks run on (`3.12.1`).
        packages: `name==version` lines: everything installed, for an isolated environment; for the runner's, the
            task's requirements as installed there.
        digest: the isolated environment's name in the cache ("" for the runner's).
        path: the isolated environment's directory, a virtual environment ("" for the runner's).
        source_dir: for an image run from the directory it is built from (--image-source), that directory: first
            on the task's PYTHONPATH, as the image's working directory is.
        source_digest: the sha256 of that directory's files, part of the cache fingerprint.
        arguments: added after the task's command (`--component_module_path FILE` for such an image).
    """

    isolated: bool
    reason: str
    python: str
    packages: Tuple[str, ...] = ()
    digest: str = ""
    path: str = ""
    source_dir: str = ""
    source_digest: str = ""
    arguments: Tuple[str, ...] = ()

    @property
    def python_path(self) -> str:
        """The interpreter to run the task's Python with: the environment's, or the runner's."""
        return os.path.join(self.path, "bin", "python") if self.isolated else sys.executable

    @property
    def bin_dir(self) -> str:
        """The environment's `bin` (its `python3` and console scripts), first on an isolated task's PATH."""
        return os.path.join(self.path, "bin") if self.isolated else ""

    def identity(self) -> Optional[Dict[str, Any]]:
        """What the cache fingerprint holds of an isolated environment (its digest, Python and installed versions,
        so an upgraded package is a cache miss); None for the runner's own, whose tasks keep the backend's key."""
        if not self.isolated:
            return None
        found = {"digest": self.digest, "python": self.python, "packages": sorted(self.packages)}
        if self.source_digest:
            found["source"] = self.source_digest
        return found

    def describe(self) -> List[str]:
        """The lines a task's log starts with: which environment, why, and what is installed."""
        where = f"task environment {self.digest}" if self.isolated else "the runner's environment"
        lines = [f"kfp-lineage: {where} (Python {self.python}; {self.reason})"]
        if self.source_dir:
            lines.append(f"kfp-lineage: code from {self.source_dir} (sha256 {self.source_digest[:12]}), first on "
                         "PYTHONPATH")
        if self.packages:
            lines.append(f"kfp-lineage: installed: {', '.join(self.packages)}")
        return lines


@dataclasses.dataclass(frozen=True)
class TaskLaunch:
    """One attempt of one container task, fully resolved by the scheduler: what to run, with which inputs, where
    its outputs and log go, and in which directory and environment."""

    label: str  # the task's path in the run, e.g. `for-loop-2/iteration-0/train`
    component_spec: pipeline_spec_pb2.ComponentSpec
    container: ContainerSpec  # image, command and args as compiled (placeholders unresolved, pip prefix included)
    parameters: Mapping[str, Any]  # input parameters, final values
    artifacts: Mapping[str, Sequence[dataflow.InputArtifact]]  # input artifacts by input name
    output_uris: Mapping[str, str]  # where each output artifact goes (a path under the run's directory)
    scratch_dir: str  # private to this task: executor output file, output parameter files, program files
    log_path: str  # stdout and stderr go here (appended: a retry adds to the log of the attempt before)
    pipeline_name: str
    run_id: str
    pipeline_root: str
    cwd: str
    env: Mapping[str, str]  # the whole environment; the first `python3` on PATH is the task environment's
    timeout: Optional[float] = None  # seconds; None: no limit
    secret_values: Tuple[str, ...] = ()  # values to scrub from the log once the task ended
    environment: Optional[TaskEnvironment] = None  # None: the runner's own, as for a container component
    # Called (from the thread running the task) once its process has started and was added to the run's
    # processes, and possibly once before, when its start is certain (a fork server has the request); the runner
    # records the task's execution meanwhile. A handler that never calls it still works: the runner then records
    # after the attempt returns.
    on_started: Optional[Callable[[], None]] = None


@dataclasses.dataclass
class TaskOutcome:
    """What a task did: its outputs when it succeeded, and a one-line error when it did not."""

    succeeded: bool
    parameters: Dict[str, Any]
    artifacts: Dict[str, List[pipeline_spec_pb2.RuntimeArtifact]]
    duration: float
    error: str = ""
    returncode: Optional[int] = None
    canceled: bool = False


@dataclasses.dataclass(frozen=True)
class HandlerContext:
    """What a handler gets when the run makes it."""

    env: Mapping[str, str]  # the run's task environment, before each task's own variables are added
    scratch_root: str  # a directory private to this run, for a handler's own files (environments, sockets)
    processes: RunningProcesses  # add every process started here; the run cancels through it


class TaskHandler(abc.ABC):
    """Runs container tasks for one run. Implement `run`, and `close` if the handler holds anything.

    A handler is made once per run, with a HandlerContext, by factory.create_handler; to add one, write a module
    with a TaskHandler subclass whose constructor takes the HandlerContext, and add its name to factory.HANDLERS.

    `run(launch)` is called once per attempt, from several worker threads at once (up to --max-parallel), so it
    must be thread-safe. It gets a TaskLaunch and must:
      - start the task with launch.cwd and launch.env, its stdin empty and its stdout and stderr appended to
        launch.log_path, in a process group of its own (its session leader's pid is the group id);
      - run its Python on its environment's interpreter: launch.env's PATH does that for a command started as it
        is; a handler that starts Python itself uses launch.environment.python_path (the runner's when None);
      - add that process to context.processes before waiting, and discard it after; then call
        launch.on_started, when given, before waiting (it may be called once earlier too, when the start is
        certain);
      - kill the task's process group after launch.timeout seconds and report `timed out after N s`;
      - scrub launch.secret_values from the log once the task ended (supervision.scrub_log);
      - on exit code 0, read the outputs as the backend's launcher does (outputs.collect_outputs) and return
        TaskOutcome(succeeded=True, ...);
      - return TaskOutcome(succeeded=False, error=<one line>) for anything the task did wrong: it could not start,
        exited non-zero, was killed, timed out, wrote unreadable outputs.
    supervision.run_process_task does all of that given a function that starts the process: most handlers only
    decide how a task's process is started.

    It must never:
      - raise for a task failure (an exception is read as a bug in the handler: the task is FAILED with
        `could not run the task: ...` and the traceback goes to its log);
      - write to the metadata store, retry, or look at other tasks;
      - leave a process running when it returns, or anything running after `close` (the run waits for every `run`
        call to return before it calls `close`).

    Cancellation: on an interrupt the run calls context.processes.cancel_all(), which kills every process group
    added so far and any added later; `run` then returns TaskOutcome(succeeded=False, canceled=True,
    error="canceled") as soon as its process is gone.
    """

    @abc.abstractmethod
    def run(self, launch: TaskLaunch) -> TaskOutcome:
        """Runs one attempt of a task to its end; see the class docstring for the contract."""

    def close(self) -> None:
        """Releases what the handler holds (servers, temporary environments); called once, after the last `run`."""
