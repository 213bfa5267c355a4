"""A run's recorded lineage read through `kfp-lineage show RUN --json`, and the fluent assertions about it.

The same tasks, events and failure messages as kfp_lineage.expect (record.py, pytest_plugin.py), computed from the
lineage JSON contract (docs/lineage-json.md in kfp-lineage) instead of ml-metadata calls; tests in kfp-lineage run
both on the same runs and compare.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from pytest_kfp_lineage import cli

INPUT, OUTPUT = "INPUT", "OUTPUT"
EXECUTOR_LOGS = "executor-logs"  # kfp_lineage.mlmd.vocabulary.EXECUTOR_LOGS (this plugin imports nothing of it)
# Properties kfp-lineage's recorder adds to every artifact; not part of what a component declares.
BOOKKEEPING_KEYS = ("display_name", "store_session_info", "content_sha256")


@dataclasses.dataclass(frozen=True)
class RecordedEvent:
    """One INPUT or OUTPUT event of a task, with what a spec compares: the artifact's type and producer."""

    direction: str
    key: str
    artifact_id: int
    artifact_type: str
    producer: Optional[str]
    metadata: Tuple[str, ...]


@dataclasses.dataclass
class RecordedTask:
    """One execution of the run, keyed by its task path."""

    path: str
    execution_id: int
    execution_type: str
    state: str
    display_name: str
    inputs: Dict[str, List[RecordedEvent]] = dataclasses.field(default_factory=dict)
    outputs: Dict[str, List[RecordedEvent]] = dataclasses.field(default_factory=dict)

    def events(self) -> List[RecordedEvent]:
        """Inputs then outputs, each sorted by key."""
        return [e for group in (self.inputs, self.outputs) for key in sorted(group) for e in group[key]]


@dataclasses.dataclass
class RecordedRun:
    """A run's tasks (the root DAG excluded), in the order they were created."""

    run_id: str
    pipeline: str
    store: str
    tasks: Dict[str, RecordedTask]

    def find_task(self, path: str) -> Optional[RecordedTask]:
        """The task at `path`, or the only task whose last path segment is `path` (`deploy-local`)."""
        if path in self.tasks:
            return self.tasks[path]
        matches = [t for p, t in self.tasks.items() if p.rsplit("/", 1)[-1] == path]
        return matches[0] if len(matches) == 1 else None

    def closest_task(self, path: str) -> Optional[str]:
        """The recorded task path most like `path`, for "did you mean" hints."""
        close = difflib.get_close_matches(path, list(self.tasks), n=1, cutoff=0.6)
        return close[0] if close else None


def read_run(run_id: str, store: str) -> RecordedRun:
    """Reads one run (`latest` for the newest) with `kfp-lineage show RUN_ID --store STORE --json`.

    Raises:
        KfpLineageError: no such run or store, or two executions share a task path.
    """
    graph = json.loads(cli.invoke(["show", run_id, "--store", store, "--json"]).stdout)
    return recorded_run(graph, store)


def recorded_run(graph: Mapping[str, Any], store: str = "") -> RecordedRun:
    """The RecordedRun of a `show RUN_ID --json` graph (its `run` view)."""
    run_id = graph["run_id"]
    pipeline = next((r.get("pipeline") or "" for r in graph["runs"] if r["run_id"] == run_id), "")
    executions = sorted(graph["executions"], key=lambda e: e["id"])
    paths = _task_paths(executions)
    tasks: Dict[str, RecordedTask] = {}
    for execution in executions:
        path = paths.get(execution["id"])
        if path is None:  # the root DAG
            continue
        if path in tasks:
            raise cli.KfpLineageError(
                f"run {run_id} has two executions for task {path} (ids {tasks[path].execution_id} and "
                f"{execution['id']}), so a lineage spec cannot tell them apart: check a run with one execution per task"
            )
        tasks[path] = RecordedTask(path=path, execution_id=execution["id"], execution_type=execution["type"],
                                   state=execution["state"], display_name=execution.get("display_name") or "")
    _add_events(graph, executions, paths, tasks)
    return RecordedRun(run_id=run_id, pipeline=pipeline, store=store, tasks=tasks)


def _task_paths(executions: Sequence[Mapping[str, Any]]) -> Dict[int, str]:
    """Execution id -> task path: task_name joined up the parent_dag_id chain; a loop iteration is `iteration-<i>`."""
    by_id = {e["id"]: e for e in executions}
    paths: Dict[int, str] = {}
    for execution in executions:
        if execution.get("parent_dag_id") is None:
            continue
        parts = []
        node: Optional[Mapping[str, Any]] = execution
        seen = set()
        while node is not None and node.get("parent_dag_id") is not None and node["id"] not in seen:
            seen.add(node["id"])
            index = node.get("iteration_index")
            parts.append(f"iteration-{index}" if index is not None else node.get("task_name") or "")
            node = by_id.get(node["parent_dag_id"])
        paths[execution["id"]] = "/".join(reversed(parts))
    return paths


def _add_events(graph: Mapping[str, Any], executions: Sequence[Mapping[str, Any]], paths: Dict[int, str],
                tasks: Dict[str, RecordedTask]) -> None:
    artifacts = {a["id"]: a for a in graph["artifacts"]}
    states = {e["id"]: e["state"] for e in executions}
    events = [e for e in graph["events"] if e["execution_id"] in states]
    producers: Dict[int, Tuple[bool, int, str]] = {}
    for event in events:
        if event["type"] == OUTPUT and event["execution_id"] in paths:
            # An original producer wins over a cache hit that points at its artifact; then the first execution.
            rank = (states[event["execution_id"]] == "CACHED", event["execution_id"],
                    f"{paths[event['execution_id']]}.{event['key']}")
            if event["artifact_id"] not in producers or rank < producers[event["artifact_id"]]:
                producers[event["artifact_id"]] = rank
    for event in sorted(events, key=lambda e: (e["execution_id"], e["key"], e["artifact_id"])):
        path = paths.get(event["execution_id"])
        if path is None or event["type"] not in (INPUT, OUTPUT):
            continue
        if event["type"] == OUTPUT and event["key"] == EXECUTOR_LOGS:
            continue  # the task's log (KFP 2.17 publishes one per container), not its lineage
        artifact = artifacts.get(event["artifact_id"])
        direction = event["type"]
        recorded = RecordedEvent(
            direction=direction,
            key=event["key"],
            artifact_id=event["artifact_id"],
            artifact_type=artifact["type"] if artifact else "?",
            producer=producers[event["artifact_id"]][2] if direction == INPUT and event["artifact_id"] in producers
            else None,
            metadata=tuple(sorted(artifact.get("properties") or {})) if artifact else (),
        )
        group = tasks[path].inputs if direction == INPUT else tasks[path].outputs
        group.setdefault(recorded.key, []).append(recorded)


def describe_task(task: RecordedTask) -> List[str]:
    """The task's recorded lineage as text lines: a heading, then one line per event (as kfp-lineage prints it)."""
    lines = [f"{task.path}  {task.execution_type}  {task.state}  (execution {task.execution_id})"]
    events = task.events()
    if not events:
        lines.append("  (no events)")
    width_key = max((len(e.key) for e in events), default=0)
    width_type = max((len(e.artifact_type) for e in events), default=0)
    for event in events:
        extra = f"from {event.producer}" if event.producer else (
            "from no task of this run" if event.direction == INPUT else ""
        )
        keys = [k for k in event.metadata if k not in BOOKKEEPING_KEYS]
        if event.direction == OUTPUT:
            extra = f"metadata: {', '.join(keys)}" if keys else "no metadata"
        lines.append(f"  {event.direction:<7} {event.key:<{width_key}}  {event.artifact_type:<{width_type}}  {extra}"
                     .rstrip())
    return lines


def assert_lineage(run: Any, store: Optional[str] = None) -> "LineageAssertion":
    """Starts assertions about the lineage a run recorded.

    Args:
        run: a RunResult, or a run id (`latest` for the newest run).
        store: the store URL; None means the store the RunResult names.

    Returns:
        A LineageAssertion; its methods raise AssertionError showing the recorded lineage of the task involved.
    """
    run_id = run if isinstance(run, str) else run.run_id
    return LineageAssertion(read_run(run_id, store if store is not None else run.store))


class LineageAssertion:
    """Assertions about one recorded run; `task()` narrows to one task."""

    def __init__(self, recorded: RecordedRun):
        self.recorded = recorded

    def task(self, path: str) -> "TaskAssertion":
        """The task at `path` (or just the last segment when it is unique); fails when the run has no such task."""
        __tracebackhide__ = True
        found = self.recorded.find_task(path)
        if found is None:
            close = self.recorded.closest_task(path)
            hint = f" (did you mean {close}?)" if close else ""
            raise AssertionError(f"run {self.recorded.run_id} recorded no task {path!r}{hint}; recorded tasks: "
                                 + ", ".join(self.recorded.tasks))
        return TaskAssertion(self, found)

    def matches(self, spec: Union[str, os.PathLike]) -> "LineageAssertion":
        """Checks the whole run against a lineage spec file with `kfp-lineage check`; fails listing every
        difference and the recorded lineage of the tasks involved."""
        __tracebackhide__ = True
        import yaml

        path = os.fspath(spec)
        try:
            with open(path, encoding="utf-8") as f:
                document = yaml.safe_load(f)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            document = None  # `kfp-lineage check` says what is wrong with it
        pipeline = document.get("pipeline") if isinstance(document, dict) else None
        if pipeline is not None and pipeline != self.recorded.pipeline:
            raise AssertionError(f"lineage spec {path} is for pipeline {pipeline!r}, but run "
                                 f"{self.recorded.run_id} is a run of {self.recorded.pipeline!r}")
        completed = cli.invoke(["check", path, "--run", self.recorded.run_id, "--store", self.recorded.store],
                               ok_codes=(0, 1))
        if completed.returncode == 1:
            raise AssertionError(completed.stdout.rstrip("\n"))
        return self


class TaskAssertion:
    """Assertions about one task of a run; every method returns the assertion, so calls chain."""

    def __init__(self, run: LineageAssertion, recorded: RecordedTask):
        self.run = run
        self.recorded = recorded

    def task(self, path: str) -> "TaskAssertion":
        """Moves on to another task of the same run."""
        __tracebackhide__ = True
        return self.run.task(path)

    def state(self, *states: str) -> "TaskAssertion":
        """The task ended in one of `states` (COMPLETE, FAILED, CANCELED, CACHED)."""
        __tracebackhide__ = True
        if self.recorded.state not in states:
            self._fail(f"task {self.recorded.path} ended {self.recorded.state}, expected {' or '.join(states)}")
        return self

    def consumed(self, producer: str, key: Optional[str] = None, artifact_type: Optional[str] = None) -> "TaskAssertion":
        """The task has an INPUT event for an artifact that `producer` (`TASK.OUTPUT`, e.g. `ingest.train`) made,
        under input `key` and of `artifact_type` when given."""
        __tracebackhide__ = True
        candidates = [e for e in self._events(INPUT, key) if _same_producer(e.producer, producer)]
        what = f"{producer}" + (f" as input {key!r}" if key else "")
        if not candidates:
            self._fail(f"task {self.recorded.path} did not consume {what}")
        if artifact_type and not any(e.artifact_type == artifact_type for e in candidates):
            found = ", ".join(sorted({e.artifact_type for e in candidates}))
            self._fail(f"task {self.recorded.path} consumed {what} as {found}, expected {artifact_type}")
        return self

    def produced(self, key: str, artifact_type: Optional[str] = None, metadata: Sequence[str] = ()) -> "TaskAssertion":
        """The task has an OUTPUT event under `key`, of `artifact_type`, whose artifact has the `metadata` keys."""
        __tracebackhide__ = True
        events = self._events(OUTPUT, key)
        if not events:
            self._fail(f"task {self.recorded.path} recorded no output {key!r}")
        if artifact_type and not any(e.artifact_type == artifact_type for e in events):
            found = ", ".join(sorted({e.artifact_type for e in events}))
            self._fail(f"output {key!r} of task {self.recorded.path} is a {found}, expected {artifact_type}")
        missing = [m for m in metadata if not all(m in e.metadata for e in events)]
        if missing:
            self._fail(f"output {key!r} of task {self.recorded.path} has no metadata {', '.join(missing)}")
        return self

    def did_not_consume(self, producer: str) -> "TaskAssertion":
        """The task has no INPUT event for an artifact that `producer` (`TASK.OUTPUT`) made."""
        __tracebackhide__ = True
        if any(_same_producer(e.producer, producer) for e in self._events(INPUT, None)):
            self._fail(f"task {self.recorded.path} consumed {producer}, expected it not to")
        return self

    def _events(self, direction: str, key: Optional[str]) -> List[RecordedEvent]:
        group = self.recorded.inputs if direction == INPUT else self.recorded.outputs
        return [e for k, events in group.items() if key is None or k == key for e in events]

    def _fail(self, message: str) -> None:
        __tracebackhide__ = True
        _fail(message, [self.recorded])


def _same_producer(recorded: Optional[str], wanted: str) -> bool:
    if recorded is None:
        return False
    if recorded == wanted:
        return True
    task, _, output = recorded.rpartition(".")
    wanted_task, _, wanted_output = wanted.rpartition(".")
    return output == wanted_output and task.rsplit("/", 1)[-1] == wanted_task


def _fail(message: str, tasks: Iterable[RecordedTask]) -> None:
    __tracebackhide__ = True
    lines = [message, "recorded lineage:"]
    for task in tasks:
        lines.extend("  " + line for line in describe_task(task))
    raise AssertionError("\n".join(lines))
