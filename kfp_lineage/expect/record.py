"""A run's recorded lineage, read from an MLMD store as the KFP v2 backend writes it: tasks by path, with events.

Reads only what the backend writes too (the system.Pipeline / system.PipelineRun contexts, the executions'
`task_name` / `parent_dag_id` / `display_name` custom properties, events with one path step, artifact types and
custom properties), so it works on a KFP cluster's store as well as on ours. Plain ml-metadata calls only.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Dict, List, Optional, Sequence, Tuple

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage import errors, task_paths
from kfp_lineage.lineage import reader as lineage_reader
from kfp_lineage.lineage import references
from kfp_lineage.mlmd import vocabulary

INPUT, OUTPUT = vocabulary.INPUT_EVENT, vocabulary.OUTPUT_EVENT
LATEST = "latest"
# Properties the recorder adds to every artifact; not part of what a component declares.
BOOKKEEPING_KEYS = vocabulary.ARTIFACT_BOOKKEEPING_PROPERTIES


@dataclasses.dataclass(frozen=True)
class RecordedEvent:
    """One INPUT or OUTPUT event of a task, with what a spec compares: the artifact's type and producer."""

    direction: str
    key: str
    artifact_id: int
    artifact_type: str
    producer: Optional[str]
    metadata: Tuple[str, ...]

    def describe(self) -> str:
        """`INPUT model (system.Model from train.model)`."""
        where = f" from {self.producer}" if self.producer else ""
        return f"{self.direction} {self.key} ({self.artifact_type}{where})"


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
        """The task at `path` (either spelling of a loop iteration), or the only task whose last path segment is
        `path` (`deploy-local`)."""
        path = task_paths.normalize_path(path)
        if path in self.tasks:
            return self.tasks[path]
        matches = [t for p, t in self.tasks.items() if task_paths.last_segment(p) == path]
        return matches[0] if len(matches) == 1 else None

    def closest_task(self, path: str) -> Optional[str]:
        """The recorded task path most like `path`, for "did you mean" hints."""
        close = difflib.get_close_matches(task_paths.normalize_path(path), list(self.tasks), n=1, cutoff=0.6)
        return close[0] if close else None


def find_run(
    store: metadata_store.MetadataStore, run_id: Optional[str] = None, pipeline: Optional[str] = None
) -> Tuple[mlmd_pb.Context, str]:
    """Finds a system.PipelineRun context and the name of its pipeline.

    Args:
        store: the store to read.
        run_id: the run's id; None means the newest finished run of `pipeline`; `latest` the newest finished run
            of any pipeline (lineage.references.latest_finished_run).
        pipeline: the pipeline the run must belong to (None: any).

    Returns:
        The run context and its pipeline's name.

    Raises:
        InvalidInputError: no such run, no (finished) run of that pipeline, or the run belongs to another
            pipeline.
    """
    if run_id in (None, LATEST):
        runs = _pipeline_runs(store, pipeline) if run_id is None and pipeline else store.get_contexts_by_type(
            vocabulary.RUN_CONTEXT_TYPE
        )
        if not runs:
            if run_id is None and pipeline:
                raise errors.InvalidInputError(
                    f"the store has no runs of pipeline {pipeline!r}: run it first (kfp-lineage run ...) or pass --store"
                )
            raise errors.InvalidInputError("the store has no pipeline runs yet: run one with `kfp-lineage run`")
        # the newest that finished, as `latest` everywhere (a run still running is skipped with a note)
        newest = references.latest_finished_run(lineage_reader.reader_for(store), pipeline if run_id is None else None)
        run = store.get_context_by_type_and_name(vocabulary.RUN_CONTEXT_TYPE, newest.run_id)
    else:
        run = store.get_context_by_type_and_name(vocabulary.RUN_CONTEXT_TYPE, run_id)
        if run is None:
            raise errors.InvalidInputError(
                f"no run {run_id!r} in this store: pass a run id from `kfp-lineage run`, or `latest`"
            )
    parents = [c for c in store.get_parent_contexts_by_context(run.id) if _is_type(store, c, vocabulary.PIPELINE_CONTEXT_TYPE)]
    name = parents[0].name if parents else ""
    if pipeline and name != pipeline:
        raise errors.InvalidInputError(
            f"run {run.name} is a run of pipeline {name!r}, not {pipeline!r}: pass a run of {pipeline!r} "
            "or the lineage spec of its pipeline"
        )
    return run, name


def _pipeline_runs(store: metadata_store.MetadataStore, pipeline: str) -> List[mlmd_pb.Context]:
    context = store.get_context_by_type_and_name(vocabulary.PIPELINE_CONTEXT_TYPE, pipeline)
    if context is None:
        return []
    return [c for c in store.get_children_contexts_by_context(context.id) if _is_type(store, c, vocabulary.RUN_CONTEXT_TYPE)]


def _is_type(store: metadata_store.MetadataStore, context: mlmd_pb.Context, type_name: str) -> bool:
    if context.type:
        return context.type == type_name
    return any(t.id == context.type_id and t.name == type_name for t in store.get_context_types())


def read_run(
    store: metadata_store.MetadataStore,
    run_id: Optional[str] = None,
    pipeline: Optional[str] = None,
    store_label: str = "",
) -> RecordedRun:
    """Reads one run's tasks and events.

    Args:
        store: the store to read.
        run_id: see find_run.
        pipeline: see find_run.
        store_label: how reports name the store (a redacted URL).

    Returns:
        The run, tasks keyed by task path (`condition-1/condition-branches-2/condition-3/deploy-local`).

    Raises:
        InvalidInputError: the run is not found (see find_run), or two executions share a task path.
    """
    run, pipeline_name = find_run(store, run_id, pipeline)
    executions = sorted(store.get_executions_by_context(run.id), key=lambda e: e.id)
    execution_types = {t.id: t.name for t in store.get_execution_types()}
    paths = _task_paths(executions)
    tasks: Dict[str, RecordedTask] = {}
    for execution in executions:
        path = paths.get(execution.id)
        if path is None:  # the root DAG
            continue
        if path in tasks:
            raise errors.InvalidInputError(
                f"run {run.name} has two executions for task {path} (ids {tasks[path].execution_id} and "
                f"{execution.id}), so a lineage spec cannot tell them apart: check a run with one execution per task"
            )
        tasks[path] = RecordedTask(
            path=path,
            execution_id=execution.id,
            execution_type=execution_types.get(execution.type_id, execution.type),
            state=vocabulary.execution_state_name(execution.last_known_state),
            display_name=_string_property(execution, vocabulary.DISPLAY_NAME),
        )
    _add_events(store, run, executions, paths, tasks)
    return RecordedRun(run_id=run.name, pipeline=pipeline_name, store=store_label, tasks=tasks)


def _string_property(execution: mlmd_pb.Execution, name: str) -> str:
    value = execution.custom_properties.get(name)
    return value.string_value if value is not None else ""


def _task_paths(executions: Sequence[mlmd_pb.Execution]) -> Dict[int, str]:
    """Execution id -> task path (kfp_lineage.task_paths): task_name joined up the parent_dag_id chain, as the runner
    keys tasks, so a task in a dsl.ParallelFor is `for-loop-2/iteration-0/square`. The root DAG (no parent_dag_id)
    gets no path."""
    nodes = {
        e.id: task_paths.TaskNode(
            vocabulary.int_or_none(vocabulary.custom_property(e, vocabulary.PARENT_DAG_ID)),
            str(vocabulary.custom_property(e, vocabulary.TASK_NAME, "")),
            vocabulary.int_or_none(vocabulary.custom_property(e, vocabulary.ITERATION_INDEX)))
        for e in executions
    }
    return {i: path for i, path in task_paths.paths_of(nodes).items() if nodes[i].parent_id is not None}


def _add_events(
    store: metadata_store.MetadataStore,
    run: mlmd_pb.Context,
    executions: Sequence[mlmd_pb.Execution],
    paths: Dict[int, str],
    tasks: Dict[str, RecordedTask],
) -> None:
    events = store.get_events_by_execution_ids([e.id for e in executions]) if executions else []
    artifact_ids = sorted({e.artifact_id for e in events})
    artifacts = {a.id: a for a in store.get_artifacts_by_id(artifact_ids)} if artifact_ids else {}
    artifact_types = {t.id: t.name for t in store.get_artifact_types()}
    states = {e.id: e.last_known_state for e in executions}
    producers: Dict[int, Tuple[bool, int, str]] = {}
    for event in events:
        if event.type == mlmd_pb.Event.OUTPUT and event.execution_id in paths:
            # An original producer wins over a cache hit that points at its artifact; then the first execution.
            rank = (states[event.execution_id] == mlmd_pb.Execution.CACHED, event.execution_id,
                    f"{paths[event.execution_id]}.{_event_key(event)}")
            if event.artifact_id not in producers or rank < producers[event.artifact_id]:
                producers[event.artifact_id] = rank
    for event in sorted(events, key=lambda e: (e.execution_id, _event_key(e), e.artifact_id)):
        path = paths.get(event.execution_id)
        if path is None or event.type not in (mlmd_pb.Event.INPUT, mlmd_pb.Event.OUTPUT):
            continue
        if event.type == mlmd_pb.Event.OUTPUT and _event_key(event) == vocabulary.EXECUTOR_LOGS:
            continue  # the task's log (KFP 2.17 publishes one per container), not its lineage
        artifact = artifacts.get(event.artifact_id)
        direction = INPUT if event.type == mlmd_pb.Event.INPUT else OUTPUT
        recorded = RecordedEvent(
            direction=direction,
            key=_event_key(event),
            artifact_id=event.artifact_id,
            artifact_type=artifact_types.get(artifact.type_id, artifact.type) if artifact else "?",
            producer=producers[event.artifact_id][2] if direction == INPUT and event.artifact_id in producers else None,
            metadata=tuple(sorted(artifact.custom_properties)) if artifact else (),
        )
        group = tasks[path].inputs if direction == INPUT else tasks[path].outputs
        group.setdefault(recorded.key, []).append(recorded)


def _event_key(event: mlmd_pb.Event) -> str:
    """The event's one path step (`{key: name}`), as the backend writes it; "" when it has none."""
    return event.path.steps[0].key if event.path.steps else ""


def describe_task(task: RecordedTask) -> List[str]:
    """The task's recorded lineage as text lines: a heading, then one line per event.

    Example:
        train  system.ContainerExecution  COMPLETE  (execution 4)
          INPUT   train_data  system.Dataset  from ingest.train
          OUTPUT  model       system.Model    metadata: code_version, framework, sha256
    """
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
