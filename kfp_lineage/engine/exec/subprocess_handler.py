"""The subprocess handler: every task a fresh process, as kfp.local's SubprocessRunner runs it."""

from __future__ import annotations

from kfp_lineage.engine.exec import handler
from kfp_lineage.engine.exec import supervision


class SubprocessHandler(handler.TaskHandler):
    """Runs each task's resolved command as a new process in this machine's environment (`--launcher
    subprocess`): the slowest way for Python tasks (each imports kfp afresh), the plainest to debug."""

    def __init__(self, context: handler.HandlerContext):
        self._processes = context.processes

    def run(self, launch: handler.TaskLaunch) -> handler.TaskOutcome:
        return supervision.run_process_task(launch, self._processes, supervision.start_subprocess)
