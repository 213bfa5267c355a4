"""Expected lineage: comparing a recorded run with a lineage spec (`check`) and writing a spec from a run (`expect`).

Specs are loaded by spec.py, runs read by record.py; this module only compares and reports.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence, Union

from ml_metadata.metadata_store import metadata_store

from kfp_lineage.expect import record
from kfp_lineage.expect import spec as spec_module

MISSING_TASK = "missing task"
UNEXPECTED_TASK = "unexpected task"
WRONG_EXECUTION_TYPE = "wrong execution type"
WRONG_STATE = "wrong state"
MISSING_EVENT = "missing event"
UNEXPECTED_EVENT = "unexpected event"
WRONG_ARTIFACT_TYPE = "wrong artifact type"
WRONG_PRODUCER = "wrong producer"
MISSING_METADATA_KEY = "missing metadata key"
KINDS = (MISSING_TASK, UNEXPECTED_TASK, WRONG_EXECUTION_TYPE, WRONG_STATE, MISSING_EVENT, UNEXPECTED_EVENT,
         WRONG_ARTIFACT_TYPE, WRONG_PRODUCER, MISSING_METADATA_KEY)


@dataclasses.dataclass(frozen=True)
class Difference:
    """One way the recorded lineage differs from the spec; `line` is the spec line it concerns."""

    task: str
    kind: str
    detail: str
    line: int

    def to_json(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class CheckResult:
    """The outcome of checking one run against one spec."""

    spec: spec_module.LineageSpec
    run: record.RecordedRun
    differences: List[Difference]

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_text(self) -> str:
        """A passing line, or the differences then the recorded lineage of every task they involve."""
        spec, run = self.spec, self.run
        if self.ok:
            return (f"OK run {run.run_id} of pipeline {run.pipeline} matches {spec.source}: "
                    f"{len(spec.tasks)} tasks, {spec.event_count()} events")
        count = len(self.differences)
        lines = [f"FAIL run {run.run_id} of pipeline {run.pipeline} does not match {spec.source}: "
                 f"{count} difference{'s' if count != 1 else ''}"]
        for difference in self.differences:
            lines.append(f"  {spec.source}:{difference.line}: {difference.task}: {difference.kind}: {difference.detail}")
        involved = [run.tasks[d.task] for d in self.differences if d.task in run.tasks]
        if involved:
            lines.append("recorded lineage of the tasks involved:")
            for task in dict.fromkeys(t.path for t in involved):
                lines.extend("  " + line for line in record.describe_task(run.tasks[task]))
        return "\n".join(lines)

    def to_json(self) -> Dict[str, Any]:
        return {
            "ok": self.ok,
            "run_id": self.run.run_id,
            "pipeline": self.run.pipeline,
            "spec": self.spec.source,
            "differences": [d.to_json() for d in self.differences],
        }


def check_lineage(
    store: metadata_store.MetadataStore,
    spec: Union[str, os.PathLike, spec_module.LineageSpec],
    run_id: Optional[str] = None,
    store_label: str = "",
) -> CheckResult:
    """Checks the lineage a run recorded against a lineage spec.

    Args:
        store: the MLMD store holding the run (written by kfp-lineage or the KFP backend).
        spec: a `.lineage.yaml` path or a loaded spec.
        run_id: the run to check; None means the newest run of the spec's pipeline, `latest` the newest run.

    Returns:
        The result; `result.ok` is False when any difference was found (differences do not raise).

    Raises:
        LineageSpecError: the spec file is invalid.
        InvalidInputError: no such run, or the run belongs to another pipeline.
    """
    loaded = spec if isinstance(spec, spec_module.LineageSpec) else spec_module.load_lineage_spec(spec)
    run = record.read_run(store, run_id, pipeline=loaded.pipeline, store_label=store_label)
    return CheckResult(spec=loaded, run=run, differences=compare_lineage(loaded, run))


def compare_lineage(spec: spec_module.LineageSpec, run: record.RecordedRun) -> List[Difference]:
    """Every difference between a spec and a recorded run, in spec order, then unexpected tasks.

    Args:
        spec: the expected lineage.
        run: the recorded lineage.

    Returns:
        The differences; empty when the run matches.
    """
    differences: List[Difference] = []
    for path, expected in spec.tasks.items():
        recorded = run.tasks.get(path)
        if recorded is None:
            close = run.closest_task(path)
            hint = f"; did you mean {close}?" if close and close not in spec.tasks else ""
            differences.append(Difference(
                path, MISSING_TASK,
                f"expected a {expected.execution_type} {'/'.join(expected.states)}; the run recorded no such task{hint}",
                expected.line,
            ))
            continue
        differences.extend(_compare_task(expected, recorded))
    if not spec.allow_extra_tasks:
        for path, recorded in run.tasks.items():
            if path not in spec.tasks:
                differences.append(Difference(
                    path, UNEXPECTED_TASK,
                    f"recorded a {recorded.execution_type} {recorded.state} that the spec does not list; "
                    "add it to tasks: or set allow_extra_tasks: true",
                    spec.tasks_line,
                ))
    return differences


def _compare_task(expected: spec_module.TaskSpec, recorded: record.RecordedTask) -> List[Difference]:
    path = expected.path
    differences: List[Difference] = []
    if recorded.execution_type != expected.execution_type:
        differences.append(Difference(
            path, WRONG_EXECUTION_TYPE, f"recorded {recorded.execution_type}, expected {expected.execution_type}",
            expected.line,
        ))
    if recorded.state not in expected.states:
        differences.append(Difference(
            path, WRONG_STATE, f"recorded {recorded.state}, expected {' or '.join(expected.states)}", expected.line
        ))
    for expected_events, recorded_events in ((expected.inputs, recorded.inputs), (expected.outputs, recorded.outputs)):
        for key, event in expected_events.items():
            differences.extend(_compare_event(path, event, recorded_events.get(key, [])))
        if not expected.allow_extra_events:
            for key in sorted(set(recorded_events) - set(expected_events)):
                for event in recorded_events[key]:
                    differences.append(Difference(
                        path, UNEXPECTED_EVENT,
                        f"{event.describe()} is recorded but not in the spec; "
                        "add it or set allow_extra_events: true on the task",
                        expected.line,
                    ))
    return differences


def _compare_event(
    path: str, expected: spec_module.EventSpec, recorded: Sequence[record.RecordedEvent]
) -> List[Difference]:
    if not recorded:
        return [Difference(path, MISSING_EVENT, f"{expected.describe()} is not recorded", expected.line)]
    differences: List[Difference] = []
    if len(recorded) != expected.count:
        kind = MISSING_EVENT if len(recorded) < expected.count else UNEXPECTED_EVENT
        differences.append(Difference(
            path, kind,
            f"{expected.direction} {expected.key} is recorded {_times(len(recorded))}, expected {_times(expected.count)}",
            expected.line,
        ))
    where = f"{expected.direction} {expected.key}"
    for event in recorded:
        if event.artifact_type != expected.artifact_type:
            differences.append(Difference(
                path, WRONG_ARTIFACT_TYPE,
                f"{where} is a {event.artifact_type} (artifact {event.artifact_id}), expected {expected.artifact_type}",
                expected.line,
            ))
        if expected.producer and event.producer != expected.producer:
            source = event.producer or "no task of this run"
            differences.append(Difference(
                path, WRONG_PRODUCER,
                f"{where} comes from {source} (artifact {event.artifact_id}), expected {expected.producer}",
                expected.line,
            ))
        missing = [k for k in expected.metadata if k not in event.metadata]
        if missing:
            differences.append(Difference(
                path, MISSING_METADATA_KEY,
                f"{where} (artifact {event.artifact_id}) has no metadata key{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}",
                expected.line,
            ))
    return differences


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def expect_lineage(run: record.RecordedRun, metadata: bool = True) -> spec_module.LineageSpec:
    """The lineage spec a recorded run satisfies: every task, state and event as recorded.

    Args:
        run: the recorded run.
        metadata: whether to list each artifact's metadata keys, on the event that produced it (inputs list
            them only when no task of the run produced the artifact); the backend's own `display_name` and
            `store_session_info` are never listed.

    Returns:
        A spec that compare_lineage finds no difference with; tidy it before committing it.
    """
    tasks = {}
    for path, task in run.tasks.items():
        events: Dict[str, Dict[str, spec_module.EventSpec]] = {"inputs": {}, "outputs": {}}
        for name, group in (("inputs", task.inputs), ("outputs", task.outputs)):
            for key in sorted(group):
                recorded = group[key]
                producers = {e.producer for e in recorded}
                keys = sorted(set.intersection(*(set(e.metadata) for e in recorded)) - set(record.BOOKKEEPING_KEYS))
                events[name][key] = spec_module.EventSpec(
                    direction=recorded[0].direction,
                    key=key,
                    artifact_type=recorded[0].artifact_type,
                    producer=recorded[0].producer if len(producers) == 1 else None,
                    # An input's metadata is its producer's output metadata: listed once, on the output.
                    metadata=tuple(keys) if metadata and (name == "outputs" or len(producers - {None}) == 0) else (),
                    count=len(recorded),
                )
        tasks[path] = spec_module.TaskSpec(
            path=path,
            execution_type=task.execution_type,
            states=(task.state,),
            inputs=events["inputs"],
            outputs=events["outputs"],
        )
    return spec_module.LineageSpec(pipeline=run.pipeline, tasks=tasks)
