"""The fork handler: lightweight Python tasks fork from a warm server, one per environment; any other task is a
fresh process."""

from __future__ import annotations

import os
import threading
from typing import BinaryIO, Dict, List, Optional, Set

from kfp_lineage.engine.exec import forkserver
from kfp_lineage.engine.exec import handler
from kfp_lineage.engine.exec import supervision


class ForkHandler(handler.TaskHandler):
    """Runs compiled lightweight Python components in children forked from a warm server, and container components
    and other programs as subprocesses, as SubprocessHandler starts them. The default (`--launcher fork`).

    A task in the runner's environment forks from the run's server (started at the first such task, with the
    run's task environment); a task in an isolated environment forks from that environment's server, started at its
    first task with its interpreter, so a task in a cached environment costs a fork too.
    """

    def __init__(self, context: handler.HandlerContext):
        self._env = context.env
        self._scratch_root = context.scratch_root
        self._processes = context.processes
        self._lock = threading.Lock()
        self._servers: Dict[str, forkserver.ForkServer] = {}  # by interpreter; "" is the runner's
        self._broken: Set[str] = set()  # servers that ended before running any task
        self._closed = False

    def run(self, launch: handler.TaskLaunch) -> handler.TaskOutcome:
        return supervision.run_process_task(launch, self._processes, self._start)

    def _start(self, argv: List[str], launch: handler.TaskLaunch, log: BinaryIO) -> handler.TaskProcess:
        arguments = forkserver.python_task_arguments(argv)
        server = self._get_server(launch.environment) if arguments is not None else None
        if server is None:
            return supervision.start_subprocess(argv, launch, log)
        try:
            # The task is as good as started once the server has it: the runner records it while it forks.
            # The child makes the task's directories, and shares one copy of each program (and its bytecode) per
            # run, so a task's start creates no file in the runner's time.
            return server.spawn(arguments, log_path=launch.log_path, cwd=launch.cwd, env=launch.env,
                                program_dir=os.path.join(self._scratch_root, "programs"), requested=launch.on_started,
                                directories=supervision.task_directories(launch))
        except forkserver.ServerGone:
            if server.started_a_task:
                raise  # it ran tasks and died: a task may have started, so it is not run a second time
            # It never ran one: its interpreter cannot serve (no kfp executor to import). The task runs as the
            # compiled command would, and its log shows why, as on a cluster; so do the environment's next tasks.
            with self._lock:
                self._broken.add(self._key(launch.environment))
            return supervision.start_subprocess(argv, launch, log)

    @staticmethod
    def _key(environment: Optional[handler.TaskEnvironment]) -> str:
        return environment.python_path if environment is not None and environment.isolated else ""

    def _get_server(self, environment: Optional[handler.TaskEnvironment]) -> Optional[forkserver.ForkServer]:
        """The server of the task's environment, started by its first Python task; None when it could not serve.

        Raises:
            OSError: the handler was closed.
        """
        isolated = environment is not None and environment.isolated
        key = self._key(environment)
        with self._lock:
            if self._closed:
                raise OSError("the run's fork server was closed")
            if key in self._broken:
                return None
            server = self._servers.get(key)
            if server is None:
                env = dict(self._env)
                if isolated:
                    env["PATH"] = environment.bin_dir + os.pathsep + env.get("PATH", os.defpath)
                    env["VIRTUAL_ENV"] = environment.path
                server = self._servers[key] = forkserver.ForkServer(env=env, python=key or None)
            return server

    def close(self) -> None:
        with self._lock:
            self._closed = True
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()
