"""The fork handler: lightweight Python tasks fork from a warm server; any other task is a fresh process."""

from __future__ import annotations

import threading
from typing import BinaryIO, List, Optional

from kfp_lineage.engine.exec import forkserver
from kfp_lineage.engine.exec import handler
from kfp_lineage.engine.exec import supervision


class ForkHandler(handler.TaskHandler):
    """Runs compiled lightweight Python components in children forked from one warm server per run (started at
    the first such task, with the run's task environment); container components and other programs start as
    subprocesses, as SubprocessHandler starts them. The default (`--launcher fork`)."""

    def __init__(self, context: handler.HandlerContext):
        self._env = context.env
        self._processes = context.processes
        self._lock = threading.Lock()
        self._server: Optional[forkserver.ForkServer] = None
        self._closed = False

    def run(self, launch: handler.TaskLaunch) -> handler.TaskOutcome:
        return supervision.run_process_task(launch, self._processes, self._start)

    def _start(self, argv: List[str], launch: handler.TaskLaunch, log: BinaryIO) -> handler.TaskProcess:
        arguments = forkserver.python_task_arguments(argv)
        if arguments is None:
            return supervision.start_subprocess(argv, launch, log)
        return self._get_server().spawn(arguments, log_path=launch.log_path, cwd=launch.cwd, env=launch.env,
                                        scratch_dir=launch.scratch_dir)

    def _get_server(self) -> forkserver.ForkServer:
        """The run's fork server, started by the first Python task.

        Raises:
            OSError: the handler was closed.
        """
        with self._lock:
            if self._closed:
                raise OSError("the run's fork server was closed")
            if self._server is None:
                self._server = forkserver.ForkServer(env=self._env)
            return self._server

    def close(self) -> None:
        with self._lock:
            self._closed = True
            server, self._server = self._server, None
        if server is not None:
            server.close()
