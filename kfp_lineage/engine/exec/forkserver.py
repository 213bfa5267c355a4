"""A warm fork server for lightweight Python component tasks.

A fresh interpreter that imports kfp costs tens of milliseconds per task; most of it is the same work every time.
The server starts once per run and environment, imports the KFP executor once, and forks a child per task. The child is a real,
isolated process: its own session (so it can be killed as a group), working directory, environment, and stdout /
stderr going to the task's log. It then does exactly what the compiled command would have done: write the
component's source to a file and run `kfp.dsl.executor_main` on it.

Tasks of any other shape (container components) are launched as plain subprocesses by fork_handler.py, which owns
the run's servers: one in the runner's environment, and one in each isolated task environment a task runs in. A
server runs this file by its path (`<interpreter> .../forkserver.py`) with the interpreter of its environment, where
kfp-lineage is not installed: the module uses the standard library only, and imports kfp only in the server. The
protocol is one JSON object per line: requests on stdin, replies (`{"id", "pid"}` when a child started,
`{"id", "returncode"}` when it ended) on stdout.
"""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import traceback
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

# The marker the compiled lightweight-component program carries; see kfp/dsl/component_factory.py.
_PROGRAM_MARKERS = ("kfp.dsl.executor_main", "ephemeral_component.py", "--component_module_path")


def python_task_arguments(argv: Sequence[str]) -> Optional[List[str]]:
    """For a compiled lightweight component's command (pip prefix already removed), its source and executor
    arguments, i.e. `[source, "--executor_input", ..., "--function_to_execute", name]`; None for anything else."""
    if len(argv) < 4 or list(argv[:2]) != ["sh", "-ec"]:
        return None
    if not all(marker in argv[2] for marker in _PROGRAM_MARKERS):
        return None
    return list(argv[3:])


# Server side -------------------------------------------------------------------------------------------------------


def _parent_death_signal() -> Optional[Callable[[int], int]]:
    """Linux's prctl(PR_SET_PDEATHSIG, signal) as a function of the signal, loaded once by the server so that a
    child only calls it; None elsewhere (macOS) or when libc cannot be loaded."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda signal_number: prctl(_PR_SET_PDEATHSIG, signal_number, 0, 0, 0)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _run_child(request: Mapping[str, Any], protocol_fds: Sequence[int], ready_fd: int,
               die_with_server: Optional[Callable[[int], int]], server_pid: int) -> None:
    """In the forked child: become the task, run the component, and never return. Closing `ready_fd` tells the
    server the child leads its own session (and process group). On Linux the child is SIGKILLed if the server
    dies (the server kills whole task groups when the runner dies; this covers the server dying abruptly)."""
    code = 1
    try:
        os.setsid()
        if die_with_server is not None:
            die_with_server(signal.SIGKILL)
            if os.getppid() != server_pid:  # the server died before the call took effect
                os._exit(1)
        os.close(ready_fd)
        signal.set_wakeup_fd(-1)
        for fd in protocol_fds:
            os.close(fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        log_fd = os.open(request["log_path"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        os.close(null_fd)
        for directory in request.get("directories", ()):
            os.makedirs(directory, exist_ok=True)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["_KFP_RUNTIME"] = "true"
        source, *arguments = request["arguments"]
        module_path = _program_file(source, request["program_dir"])
        sys.argv = ["executor_main", "--component_module_path", module_path, *arguments]
        from kfp.dsl import executor_main

        try:
            executor_main.executor_main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _program_file(source: str, program_dir: str) -> str:
    """The path of a file holding the component's source, as the compiled command writes it
    (`ephemeral_component.py`), under `program_dir`, named by the source's digest and written only by the first
    task that runs it (a whole file appears at once: written aside, then renamed)."""
    directory = os.path.join(program_dir, hashlib.sha256(source.encode()).hexdigest()[:32])
    path = os.path.join(directory, "ephemeral_component.py")
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        partial = f"{path}.{os.getpid()}.tmp"
        with open(partial, "w") as f:
            f.write(source)
        os.replace(partial, path)
    return path


def _warm_executor_startup() -> None:
    """Does once, in the server, the first-use work every task's executor_main would otherwise repeat after the
    fork: argparse imports shutil (and with it bz2 and lzma) and gettext (locale) and compiles its patterns the
    first time a parser is built. That halved a trivial task's time in its child (about 10 ms to 5 ms here).
    Nothing here has an effect a task could see: no logging set up, nothing written.

    Then the server's objects are frozen out of the garbage collector's reach, so a child's collections do not
    walk (and copy, page by page) everything the server imported."""
    import argparse
    import gc

    parser = argparse.ArgumentParser(description="warm-up")
    parser.add_argument("--component_module_path", type=str, help="warm-up")
    parser.parse_known_args(["--component_module_path", "warm-up"])
    gc.freeze()


def serve() -> None:
    """The server loop: fork a child per request line, report pids and exit codes, stop at end of input.

    End of input with children still running means the runner died (a runner closes the server only once its
    tasks ended): the server kills each child's process group, reaps them and exits, so no task outlives its
    runner. The pipe's write end lives only in the runner, so this holds however the runner died.
    """
    os.environ["_KFP_RUNTIME"] = "true"  # import kfp the light way, as a task does
    from kfp.dsl import executor_main  # noqa: F401  (warm the import once; children inherit it)

    _warm_executor_startup()
    die_with_server = _parent_death_signal()
    server_pid = os.getpid()

    requests_in = sys.stdin.buffer
    replies_fd = os.dup(1)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: Dict[int, Any] = {}
    selector = selectors.DefaultSelector()
    selector.register(requests_in, selectors.EVENT_READ, "request")
    selector.register(wake_read, selectors.EVENT_READ, "child")
    pending = b""
    open_input = True

    def reply(message: Mapping[str, Any]) -> None:
        try:
            os.write(replies_fd, (json.dumps(message) + "\n").encode())
        except BrokenPipeError:  # the runner is gone; its children are being killed
            pass

    while open_input or children:
        for key, _ in selector.select(timeout=1.0):
            if key.data == "request":
                chunk = os.read(requests_in.fileno(), 65536)
                if not chunk:
                    open_input = False
                    selector.unregister(requests_in)
                    for pid in children:  # each child leads its task's process group
                        try:
                            os.killpg(pid, signal.SIGKILL)
                        except (ProcessLookupError, PermissionError):
                            pass
                    continue
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    request = json.loads(line)
                    sys.stdout.flush()
                    sys.stderr.flush()
                    ready_read, ready_write = os.pipe()
                    pid = os.fork()
                    if pid == 0:
                        _run_child(request, (replies_fd, wake_read, wake_write, ready_read), ready_write,
                                   die_with_server, server_pid)
                    os.close(ready_write)
                    # Reply only once the child has its own process group: killing the group at once (a run
                    # interrupted as the task starts, a short timeout) would otherwise miss it.
                    os.read(ready_read, 1)
                    os.close(ready_read)
                    children[pid] = request["id"]
                    reply({"id": request["id"], "pid": pid})
            else:
                try:
                    os.read(wake_read, 4096)
                except BlockingIOError:
                    pass
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            request_id = children.pop(pid, None)
            if request_id is not None:
                reply({"id": request_id, "returncode": os.waitstatus_to_exitcode(status)})


# Client side -------------------------------------------------------------------------------------------------------


class ServerGone(OSError):
    """The server process has ended (or could not start: its interpreter cannot import kfp's executor)."""


class ForkedProcess:
    """A task process forked by the server; quacks like subprocess.Popen for wait() and pid."""

    # The server kills its children's groups when the runner dies (see serve): no reaper needed for them.
    dies_with_runner = True

    def __init__(self, command: List[str]):
        self.args = command
        self.pid = 0
        self.returncode: Optional[int] = None
        self._started = threading.Event()
        self._ended = threading.Event()

    def wait(self, timeout: Optional[float] = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode  # type: ignore[return-value]


class ForkServer:
    """The client of one server process; thread-safe; start lazily, close at the end of the run."""

    def __init__(self, env: Mapping[str, str], python: Optional[str] = None):
        """Starts a server with the environment `env`, on `python` (an environment's interpreter; default the
        runner's), which must have kfp installed."""
        self._process = subprocess.Popen(
            [python or sys.executable, os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=dict(env),
            start_new_session=True,
        )
        self._lock = threading.Lock()
        self._next_id = 0
        self._processes: Dict[int, ForkedProcess] = {}
        self.started_a_task = False  # whether a child was ever forked: a server gone before that never ran one
        self._reader = threading.Thread(target=self._read_replies, name="kfp-lineage-forkserver", daemon=True)
        self._reader.start()

    def spawn(self, arguments: List[str], *, log_path: str, cwd: str, env: Mapping[str, str],
              program_dir: str, requested: Optional[Callable[[], None]] = None, directories: Sequence[str] = ()
              ) -> ForkedProcess:
        """Starts a task; returns once the child exists (its pid is known). `requested`, when given, is called as
        soon as the server has the request, before the child exists. The child creates `directories` first. The
        component's source goes to `program_dir/<its sha256>/` (written once, shared by the tasks that run the
        same source, so its bytecode is compiled once too).

        Raises:
            ServerGone: the server is gone, before or while this task was asked for.
            OSError: the server did not answer within 30 s.
        """
        process = ForkedProcess(["forkserver", *arguments[1:]])
        with self._lock:
            self._next_id += 1
            request_id = self._next_id
            self._processes[request_id] = process
            line = json.dumps({"id": request_id, "arguments": arguments, "log_path": log_path, "cwd": cwd,
                               "env": dict(env), "directories": list(directories),
                               "program_dir": program_dir})
            try:
                self._process.stdin.write(line.encode() + b"\n")
                self._process.stdin.flush()
            except (BrokenPipeError, ValueError) as e:
                raise ServerGone(f"the fork server stopped: {e}") from None
        if requested is not None:
            requested()
        if not process._started.wait(timeout=30):
            raise OSError("the fork server did not start the task within 30 s")
        if process.pid <= 0:
            raise ServerGone("the fork server stopped before starting the task")
        return process

    def _read_replies(self) -> None:
        for line in self._process.stdout:
            message = json.loads(line)
            with self._lock:
                process = self._processes.get(message["id"])
            if process is None:
                continue
            if "pid" in message:
                self.started_a_task = True
                process.pid = message["pid"]
                process._started.set()
            else:
                process.returncode = message["returncode"]
                with self._lock:
                    self._processes.pop(message["id"], None)
                process._ended.set()
        # The server is gone: every waiter learns it, none hangs.
        with self._lock:
            orphans = list(self._processes.values())
            self._processes.clear()
        for process in orphans:
            process.returncode = process.returncode if process.returncode is not None else -signal.SIGKILL
            process._started.set()
            process._ended.set()

    def close(self) -> None:
        """Stops the server. Call it when no task is running: the run has waited for every task by then, and a
        clean interpreter shutdown of the server would only add tens of milliseconds to every run."""
        try:
            self._process.stdin.close()
        except OSError:
            pass
        self._process.kill()
        self._process.wait()
        self._reader.join(timeout=5)


if __name__ == "__main__":
    # Started by path, Python put this file's directory first on sys.path, where its sibling modules could shadow
    # a task's imports: the working directory takes its place, as for the compiled `python3 -m ...` command.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path[0] = os.getcwd()
    serve()
