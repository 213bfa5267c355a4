"""Running one task as a local process, whatever starts it: prepare its directories, build its command, wait
under the timeout, turn its exit into an outcome, read its outputs.

Handlers differ only in how the process is started; they pass that as `start` to run_process_task.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from typing import BinaryIO, Callable, List, Sequence

from google.protobuf import json_format

from kfp_lineage import redaction
from kfp_lineage.engine.exec import command
from kfp_lineage.engine.exec import handler
from kfp_lineage.engine.exec import outputs
from kfp_lineage.engine.exec import reaper

# start(argv, launch, log) -> a started process: argv resolved (pip prefix removed), log open for appending.
StartProcess = Callable[[List[str], handler.TaskLaunch, BinaryIO], handler.TaskProcess]


class ReapedProcesses(handler.RunningProcesses):
    """The run's RunningProcesses, whose every task process group a reaper process kills if the runner dies
    without ending it (reaper.py): no task outlives its runner, whichever handler started it. A process that
    says it `dies_with_runner` (a fork server's child: the server kills it) is left to that; the reaper, which
    costs a process start, starts only for the others. Close at the end of the run, once every task ended."""

    def __init__(self) -> None:
        super().__init__()
        self._reaper = reaper.Reaper()

    def add(self, process: handler.TaskProcess) -> bool:
        added = super().add(process)
        if added and not getattr(process, "dies_with_runner", False):
            self._reaper.watch(process.pid)
        return added

    def discard(self, process: handler.TaskProcess) -> None:
        super().discard(process)
        if not getattr(process, "dies_with_runner", False):
            self._reaper.unwatch(process.pid)

    def close(self) -> None:
        """Lets the reaper exit."""
        self._reaper.close()


def run_process_task(launch: handler.TaskLaunch, processes: handler.RunningProcesses,
                     start: StartProcess) -> handler.TaskOutcome:
    """Runs the task in the process `start` makes, its stdout and stderr going to launch.log_path, and collects
    its outputs.

    Never raises for a task failure: a failed task gives TaskOutcome(succeeded=False, error=...). `start` may
    raise OSError when the process cannot start, which is such a failure. `start` creates the task's directories
    (task_directories) before the task runs, or has the task's process create them first.
    """
    started = time.monotonic()
    os.makedirs(os.path.dirname(launch.log_path), exist_ok=True)
    argv, executor_input = command.build_command(launch)
    program = shutil.which(argv[0], path=launch.env.get("PATH")) if argv else None
    if program is None:
        return handler.TaskOutcome(
            succeeded=False,
            parameters={},
            artifacts={},
            duration=time.monotonic() - started,
            error=f"image {launch.container.image!r}: program {argv[0] if argv else '(empty command)'!r} "
            "is not available on this machine",
        )
    with open(launch.log_path, "ab") as log:
        try:
            process = start(argv, launch, log)
        except OSError as e:
            return handler.TaskOutcome(False, {}, {}, time.monotonic() - started,
                                       error=f"cannot start {argv[0]}: {e}")
        processes.add(process)
        try:
            if launch.on_started is not None:
                launch.on_started()
            returncode = process.wait(timeout=launch.timeout)
            # What the task left running in its group dies with it, as a container's processes die with its main
            # process. The group's id stays reserved while any member lives, so this cannot reach anyone else.
            handler.signal_group(process, signal.SIGKILL)
        except subprocess.TimeoutExpired:
            _kill_process_group(process)
            return handler.TaskOutcome(
                False, {}, {}, time.monotonic() - started, error=f"timed out after {launch.timeout:g} s"
            )
        except BaseException:
            _kill_process_group(process)
            raise
        finally:
            processes.discard(process)
        if processes.canceled:
            return handler.TaskOutcome(False, {}, {}, time.monotonic() - started, error="canceled", canceled=True)
    duration = time.monotonic() - started
    if launch.secret_values:
        scrub_log(launch.log_path, launch.secret_values)
    if returncode != 0:
        last_line = _last_error_line(launch.log_path)
        return handler.TaskOutcome(False, {}, {}, duration, returncode=returncode,
                                   error=describe_exit(returncode) + (f": {last_line}" if last_line else ""))
    try:
        parameters, artifacts = outputs.collect_outputs(executor_input, launch.component_spec)
    except (ValueError, json_format.ParseError) as e:
        return handler.TaskOutcome(False, {}, {}, duration, error=f"its outputs cannot be read: {e}", returncode=0)
    return handler.TaskOutcome(True, parameters, artifacts, duration, returncode=0)


def task_directories(launch: handler.TaskLaunch) -> List[str]:
    """The directories a task's outputs go in, which must exist when it starts (the backend's launcher makes
    them): its output parameter files' and each output artifact's parent directory."""
    return [os.path.join(launch.scratch_dir, "outputs"), *(os.path.dirname(uri) for uri in launch.output_uris.values())]


def start_subprocess(argv: List[str], launch: handler.TaskLaunch, log: BinaryIO) -> subprocess.Popen:
    """Creates the task's directories, then starts argv as a fresh process in a session of its own, stdin empty,
    output to `log`.

    Raises:
        OSError: the program cannot be executed.
    """
    for directory in task_directories(launch):
        os.makedirs(directory, exist_ok=True)
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=launch.cwd,
        env=dict(launch.env),
        start_new_session=True,
    )


def describe_exit(returncode: int) -> str:
    """A non-zero exit code in words: `exited with code 3`, `killed by signal 9`."""
    if returncode < 0:
        return f"killed by signal {-returncode}"
    if 128 < returncode <= 128 + 64:  # the task's shell reports a child killed by signal N as 128 + N
        return f"killed by signal {returncode - 128} (exit code {returncode})"
    return f"exited with code {returncode}"


def scrub_log(log_path: str, values: Sequence[str]) -> None:
    """Replaces secret values in a finished task's log (the KFP executor logs its whole input) in place."""
    try:
        with open(log_path, "r", encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
        cleaned = redaction.scrub(text, values)
        if cleaned != text:
            with open(log_path + ".tmp", "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(cleaned)
            os.replace(log_path + ".tmp", log_path)
    except OSError:
        pass


def _kill_process_group(process: handler.TaskProcess) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def _last_error_line(log_path: str) -> str:
    """The last non-blank line of the task log (for Python tasks, the exception line), or "" when it says nothing
    (a task that exits quietly leaves the end of the executor input's JSON there, e.g. `}`)."""
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return ""
    if not lines or not any(c.isalpha() for c in lines[-1]):
        return ""
    return lines[-1][:300]
