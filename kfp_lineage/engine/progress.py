"""Progress reporting while a run goes: one status line per task event, then a summary."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import IO, Optional


class Reporter:
    """Receives run events; the base class ignores them (library use without output)."""

    def run_started(self, pipeline_name: str, run_id: str, store: str, run_root: str) -> None:
        """The run's contexts exist; tasks are about to start."""

    def task_started(self, key: str) -> None:
        """A container task's process is starting."""

    def task_finished(self, key: str, state: str, duration: float, error: str = "", log_path: str = "") -> None:
        """A task (container or DAG) reached a final state."""

    def warn(self, message: str) -> None:
        """Something the user should know that does not stop the run."""

    def note(self, message: str) -> None:
        """A step before the run starts, e.g. building a task environment ("preparing environment for train: ...")."""

    def run_finished(self, state: str, duration: float, counts: dict) -> None:
        """The root DAG is final."""


class TextReporter(Reporter):
    """Writes human-readable progress lines (to stderr by default), with time since the run started."""

    _MARKS = {"COMPLETE": "ok", "FAILED": "FAILED", "CANCELED": "skipped", "CACHED": "cached"}

    def __init__(self, stream: Optional[IO[str]] = None):
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._reader_gone = False

    def _line(self, text: str) -> None:
        """Writes one line. When the reader went away (`2>&1 | head -5`, a closed terminal) the run goes on
        quietly: nothing more is written, and the stream is pointed at /dev/null so no later write or flush
        (Python's at exit included) fails on it."""
        with self._lock:
            if self._reader_gone:
                return
            try:
                self.stream.write(f"[{time.monotonic() - self.started:7.1f}s] {text}\n")
                self.stream.flush()
            except (OSError, ValueError):  # BrokenPipeError, EIO, a closed file
                self._reader_gone = True
                _point_at_devnull(self.stream)

    def run_started(self, pipeline_name: str, run_id: str, store: str, run_root: str) -> None:
        self.started = time.monotonic()
        self._line(f"run {run_id} of pipeline {pipeline_name}")
        self._line(f"  store: {store}")
        self._line(f"  outputs and logs: {run_root}")

    def task_started(self, key: str) -> None:
        self._line(f"  start  {key}")

    def task_finished(self, key: str, state: str, duration: float, error: str = "", log_path: str = "") -> None:
        mark = self._MARKS.get(state, state)
        detail = f" ({duration:.1f} s)" if state in ("COMPLETE", "FAILED") else ""
        self._line(f"  {mark:<6} {key}{detail}")
        if error:
            self._line(f"         {error}")
        if state == "FAILED" and log_path:
            self._line(f"         log: {log_path}")

    def warn(self, message: str) -> None:
        self._line(f"warning: {message}")

    def note(self, message: str) -> None:
        self._line(message)

    def run_finished(self, state: str, duration: float, counts: dict) -> None:
        summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()) if n)
        self._line(f"run {state} in {duration:.1f} s: {summary or 'no tasks'}")


def _point_at_devnull(stream: IO[str]) -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (a StringIO): dropping the writes is enough
        pass
