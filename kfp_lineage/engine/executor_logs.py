"""The `executor-logs` artifacts of a container task, as the KFP 2.17 launcher publishes them (PUBLISH_LOGS, on by
default): each launched attempt's output, in `<task dir>/executor-logs-<retry index>` beside the task's other
outputs, recorded as a system.Artifact with an OUTPUT event `executor-logs`, failed attempts included (driver.go
provisionOutputs, launcher_v2.go qualifyExecutorLogsURI / uploadOutputArtifacts). A task killed because the run
was stopped publishes none, as a terminated pod's launcher publishes nothing.

The task's whole log (`<run root>/logs/<task path>.log`, every attempt) stays where it was; each attempt's part of
it is copied when the attempt ends, with the task's secret values scrubbed.
"""

from __future__ import annotations

import os
from typing import Dict, List, Sequence

from kfp_lineage import digests
from kfp_lineage import redaction
from kfp_lineage.mlmd import recorder
from kfp_lineage.mlmd import vocabulary


class AttemptLogs:
    """The executor-logs artifacts of one container task, one per attempt that ended."""

    def __init__(self, log_path: str, task_dir: str):
        """`log_path` is the task's log (appended to by every attempt); `task_dir` is `<run root>/<task name>/<uuid>`,
        where the task's output artifacts go too."""
        self._log_path = log_path
        self._task_dir = task_dir
        self._start = _size(log_path)
        self._artifacts: List[recorder.OutputArtifact] = []

    def attempt_started(self) -> None:
        """Marks where the next attempt's output begins in the task's log."""
        self._start = _size(self._log_path)

    def attempt_ended(self, retry_index: int, secret_values: Sequence[str]) -> None:
        """Copies what the attempt wrote to the log to `executor-logs-<retry_index>` (0 for the first attempt)."""
        try:
            with open(self._log_path, "rb") as log:
                log.seek(self._start)
                text = log.read().decode("utf-8", errors="surrogateescape")
        except OSError:
            return  # no log to publish, as the launcher skips a log file that was never created
        os.makedirs(self._task_dir, exist_ok=True)
        path = os.path.join(self._task_dir, f"{vocabulary.EXECUTOR_LOGS}-{retry_index}")
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(redaction.scrub(text, secret_values) if secret_values else text)
        self._artifacts.append(recorder.OutputArtifact(
            schema_title=vocabulary.GENERIC_ARTIFACT_TYPE, uri=path, metadata=digests.with_content_digest({}, path),
            display_name=vocabulary.EXECUTOR_LOGS))

    def outputs(self) -> Dict[str, List[recorder.OutputArtifact]]:
        """The artifacts to publish with the task's execution: {"executor-logs": [one per attempt]}, or {}."""
        return {vocabulary.EXECUTOR_LOGS: list(self._artifacts)} if self._artifacts else {}


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
