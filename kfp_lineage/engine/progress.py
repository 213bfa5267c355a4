"""Progress reporting while a run goes: one status line per task event, then a summary."""

from __future__ import annotations

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

    def _line(self, text: str) -> None:
        with self._lock:
            self.stream.write(f"[{time.monotonic() - self.started:7.1f}s] {text}\n")
            self.stream.flush()

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
