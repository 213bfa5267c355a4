"""A Vertex AI pipeline run, as read from Vertex ML Metadata, written into a scratch ml-metadata store in the KFP
backend's vocabulary, so trace, impact, show, expect and check read it as they read a local or a KFP run.

The mapping (docs/vertex-lineage.md has the table and the reasons):

- contexts: `system.Pipeline` named after the pipeline (pipelineInfo.name), parent of `system.PipelineRun` named
  after the job ID.
- executions: one per task of the job. The `system.Run` root becomes the root `system.DAGExecution` named
  `run/<job ID>`; `system.DagExecution` becomes `system.DAGExecution`; other schema titles are kept. Custom
  properties `task_name` (the task detail's name; "" on the root), `display_name`, `parent_dag_id` (from
  parent_task_id), `inputs` / `outputs` (from the `input:<name>` / `output:<name>` metadata); every other
  metadata key is kept. States are ml-metadata's (CANCELLED is spelled CANCELED). A task without an execution
  (not triggered, or still pending) gets one in the state of its task (NOT_TRIGGERED: CANCELED).
- artifacts: type = schema_title, uri, state, metadata as custom properties, `display_name`.
- events: INPUT and OUTPUT, each with one path step: the input or output name under which the task details list
  the artifact. OUTPUT events of DAG executions are left out, as the KFP backend records none.
- Vertex resource names are kept as each node's external_id; create and update times are Vertex's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import tempfile
import weakref
from typing import Any, Dict, Iterable, List, Optional, Tuple

from google.protobuf import json_format, struct_pb2
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage.mlmd import vocabulary

# The KFP backend's names, which the scratch store is written in (mlmd/vocabulary.py).
PIPELINE_CONTEXT_TYPE = vocabulary.PIPELINE_CONTEXT_TYPE
RUN_CONTEXT_TYPE = vocabulary.RUN_CONTEXT_TYPE
DAG_EXECUTION_TYPE = vocabulary.DAG_EXECUTION_TYPE
CONTAINER_EXECUTION_TYPE = vocabulary.CONTAINER_EXECUTION_TYPE
# Vertex AI's spellings.
VERTEX_ROOT_TYPE = vocabulary.VERTEX_ROOT_EXECUTION_TYPE
VERTEX_DAG_TYPES = vocabulary.DAG_EXECUTION_TYPES
INPUT_PREFIX, OUTPUT_PREFIX = "input:", "output:"

_EXECUTION_STATES = {"NEW": mlmd_pb.Execution.NEW, "RUNNING": mlmd_pb.Execution.RUNNING,
                     "COMPLETE": mlmd_pb.Execution.COMPLETE, "FAILED": mlmd_pb.Execution.FAILED,
                     "CACHED": mlmd_pb.Execution.CACHED, "CANCELLED": mlmd_pb.Execution.CANCELED}
# The state of a task that has no execution, from the task detail's state.
_TASK_STATES = {"PENDING": mlmd_pb.Execution.NEW, "RUNNING": mlmd_pb.Execution.RUNNING,
                "SUCCEEDED": mlmd_pb.Execution.COMPLETE, "FAILED": mlmd_pb.Execution.FAILED,
                "SKIPPED": mlmd_pb.Execution.CACHED, "NOT_TRIGGERED": mlmd_pb.Execution.CANCELED,
                "CANCELLED": mlmd_pb.Execution.CANCELED, "CANCEL_PENDING": mlmd_pb.Execution.RUNNING,
                "CANCELLING": mlmd_pb.Execution.RUNNING}
_ARTIFACT_STATES = {"LIVE": mlmd_pb.Artifact.LIVE, "PENDING": mlmd_pb.Artifact.PENDING}
_EVENT_TYPES = {"INPUT": mlmd_pb.Event.INPUT, "OUTPUT": mlmd_pb.Event.OUTPUT}



@dataclasses.dataclass
class VertexRun:
    """What Vertex AI holds about one pipeline job: the job itself and its context's lineage subgraph.

    Values are google-cloud-aiplatform v1 messages; artifacts and executions are keyed by resource name.
    """

    job: Any  # aiplatform_v1.PipelineJob, with job_detail
    artifacts: Dict[str, Any]
    executions: Dict[str, Any]
    events: List[Any]
    paged: bool = False  # True when the subgraph was too large for one query and was read execution by execution


def load_vertex_run(run: VertexRun) -> metadata_store.MetadataStore:
    """Writes the run into a new scratch SQLite store (removed when the store object is) and returns it.

    Returns:
        An ml-metadata store holding one system.PipelineRun (the job ID), its system.Pipeline, and the run's
        executions, artifacts and events in the KFP backend's vocabulary.
    """
    directory = tempfile.mkdtemp(prefix="kfp-lineage-vertex-")
    path = os.path.join(directory, "mlmd.sqlite")
    config = mlmd_pb.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = mlmd_pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = metadata_store.MetadataStore(config)
    weakref.finalize(store, shutil.rmtree, directory, True)
    times = _Writer(store, run).write()
    _set_times(path, times)
    return store


class _Writer:
    """Writes one VertexRun into an empty store; remembers the Vertex times of what it wrote."""

    def __init__(self, store: metadata_store.MetadataStore, run: VertexRun):
        self.store = store
        self.run = run
        self.job = run.job
        self.job_id = run.job.name.rsplit("/", 1)[-1]
        self._types: Dict[Tuple[str, str], int] = {}
        self.times: Dict[str, List[Tuple[int, int, int]]] = {"Artifact": [], "Execution": [], "Context": []}
        # (Vertex execution name, artifact name, INPUT/OUTPUT) -> the input or output name the task details give it
        self._task_keys: Dict[Tuple[str, str, str], str] = {}

    def write(self) -> Dict[str, List[Tuple[int, int, int]]]:
        contexts = self._contexts()
        artifact_ids = self._artifacts()
        execution_ids, dags = self._executions()
        events = self._events(artifact_ids, execution_ids, dags)
        if events:
            self.store.put_events(events)
        executions = [node_id for node_id, _, _ in self.times["Execution"]]  # tasks without a Vertex execution too
        self.store.put_attributions_and_associations(
            [mlmd_pb.Attribution(artifact_id=a, context_id=c) for a in artifact_ids.values() for c in contexts],
            [mlmd_pb.Association(execution_id=e, context_id=c) for e in executions for c in contexts])
        return self.times

    def _type_id(self, kind: str, name: str) -> int:
        if (kind, name) not in self._types:
            put, message = {"artifact": (self.store.put_artifact_type, mlmd_pb.ArtifactType),
                            "execution": (self.store.put_execution_type, mlmd_pb.ExecutionType),
                            "context": (self.store.put_context_type, mlmd_pb.ContextType)}[kind]
            self._types[(kind, name)] = put(message(name=name))
        return self._types[(kind, name)]

    def _contexts(self) -> List[int]:
        detail = self.job.job_detail
        pipeline = mlmd_pb.Context(type_id=self._type_id("context", PIPELINE_CONTEXT_TYPE),
                                   name=self._pipeline_name())
        if detail.pipeline_context.name:
            pipeline.external_id = detail.pipeline_context.name
        run = mlmd_pb.Context(type_id=self._type_id("context", RUN_CONTEXT_TYPE), name=self.job_id,
                              external_id=detail.pipeline_run_context.name)
        _set_properties(run, {"resource_name": self.job.name,
                              "pipeline_root": self.job.runtime_config.gcs_output_directory})
        pipeline_id, run_id = self.store.put_contexts([pipeline, run])
        self.store.put_parent_contexts([mlmd_pb.ParentContext(child_id=run_id, parent_id=pipeline_id)])
        created = _millis(self.job.create_time)
        self.times["Context"] += [(run_id, created, _millis(self.job.update_time) or created)]
        return [pipeline_id, run_id]

    def _pipeline_name(self) -> str:
        job = _raw(self.job)
        spec = json_format.MessageToDict(job.pipeline_spec) if job.HasField("pipeline_spec") else {}
        name = spec.get("pipelineInfo", {}).get("name")
        context = self.job.job_detail.pipeline_context
        return str(name or context.display_name or context.name.rsplit("/", 1)[-1] or self.job.display_name)

    def _artifacts(self) -> Dict[str, int]:
        names = sorted(self.run.artifacts, key=lambda n: (_millis(self.run.artifacts[n].create_time), n))
        artifacts = []
        for name in names:
            vertex = self.run.artifacts[name]
            artifact = mlmd_pb.Artifact(
                type_id=self._type_id("artifact", vertex.schema_title or vocabulary.GENERIC_ARTIFACT_TYPE), uri=vertex.uri,
                state=_ARTIFACT_STATES.get(vertex.state.name, mlmd_pb.Artifact.UNKNOWN), external_id=name)
            properties = _struct(_raw(vertex).metadata)
            if vertex.display_name:
                properties.setdefault("display_name", vertex.display_name)
            _set_properties(artifact, properties)
            artifacts.append(artifact)
        ids = dict(zip(names, self.store.put_artifacts(artifacts))) if artifacts else {}
        for name, artifact_id in ids.items():
            vertex = self.run.artifacts[name]
            self.times["Artifact"].append((artifact_id, _millis(vertex.create_time), _millis(vertex.update_time)))
        return ids

    def _executions(self) -> Tuple[Dict[str, int], set]:
        """Writes one execution per task, parents first. Returns Vertex execution name -> id, and the DAG ids."""
        tasks = {t.task_id: t for t in self.job.job_detail.task_details}
        root = _root_task(tasks.values(), self.run.executions)
        ids: Dict[str, int] = {}
        dags = set()
        local_of_task: Dict[int, int] = {}
        for task in sorted(tasks.values(), key=lambda t: (t is not root, _depth(t, tasks), t.task_id)):
            vertex = self.run.executions.get(task.execution.name) if task.execution.name else None
            vertex = vertex or (task.execution if task.execution.name else None)
            # A top-level task's parent is the root task; the API reference allows it to leave parent_task_id empty.
            parent = local_of_task.get(task.parent_task_id) or (
                local_of_task.get(root.task_id) if root is not None and task is not root else None)
            execution = self._execution(task, vertex, is_root=task is root, parent=parent)
            [execution_id] = self.store.put_executions([execution])
            local_of_task[task.task_id] = execution_id
            if vertex is not None:
                ids[vertex.name] = execution_id
            if execution.type_id == self._type_id("execution", DAG_EXECUTION_TYPE):
                dags.add(execution_id)
            start = _millis(vertex.create_time) if vertex is not None else _millis(task.create_time)
            end = _millis(vertex.update_time) if vertex is not None else _millis(task.end_time)
            self.times["Execution"].append((execution_id, start, end or start))
        self._task_keys = {
            (task.execution.name, artifact.name, direction): key
            for task in tasks.values() if task.execution.name
            for direction, groups in (("INPUT", task.inputs), ("OUTPUT", task.outputs))
            for key, listed in groups.items() for artifact in listed.artifacts
        }
        return ids, dags

    def _execution(self, task: Any, vertex: Optional[Any], is_root: bool, parent: Optional[int]
                   ) -> mlmd_pb.Execution:
        schema = (vertex.schema_title if vertex is not None else "") or (
            VERTEX_ROOT_TYPE if is_root else CONTAINER_EXECUTION_TYPE)
        type_name = DAG_EXECUTION_TYPE if is_root or schema in VERTEX_DAG_TYPES else schema
        if vertex is not None and vertex.state.name in _EXECUTION_STATES:
            state = _EXECUTION_STATES[vertex.state.name]
        else:
            state = _TASK_STATES.get(task.state.name, mlmd_pb.Execution.UNKNOWN)
        execution = mlmd_pb.Execution(type_id=self._type_id("execution", type_name), last_known_state=state)
        if vertex is not None:
            execution.external_id = vertex.name
        metadata = _struct(_raw(vertex).metadata) if vertex is not None else {}
        inputs = {k[len(INPUT_PREFIX):]: v for k, v in metadata.items() if k.startswith(INPUT_PREFIX)}
        outputs = {k[len(OUTPUT_PREFIX):]: v for k, v in metadata.items() if k.startswith(OUTPUT_PREFIX)}
        properties = {k: v for k, v in metadata.items() if not k.startswith((INPUT_PREFIX, OUTPUT_PREFIX))}
        if is_root:
            execution.name = f"run/{self.job_id}"
            properties.update(task_name="", display_name="")
        else:
            properties.update(task_name=task.task_name,
                              display_name=(vertex.display_name if vertex is not None else "") or task.task_name)
            if parent is not None:
                properties["parent_dag_id"] = parent
        properties["inputs"] = inputs
        if outputs:
            properties["outputs"] = outputs
        _set_properties(execution, properties)
        return execution

    def _events(self, artifact_ids: Dict[str, int], execution_ids: Dict[str, int], dags: set) -> List[mlmd_pb.Event]:
        events = []
        for vertex in sorted(self.run.events, key=lambda e: (e.execution, e.artifact, int(e.type_))):
            kind = vertex.type_.name
            artifact_id, execution_id = artifact_ids.get(vertex.artifact), execution_ids.get(vertex.execution)
            if kind not in _EVENT_TYPES or artifact_id is None or execution_id is None:
                continue
            if kind == "OUTPUT" and execution_id in dags:
                continue  # a DAG's output is its producing task's: the backend records no OUTPUT event for it
            event = mlmd_pb.Event(type=_EVENT_TYPES[kind], artifact_id=artifact_id, execution_id=execution_id,
                                  milliseconds_since_epoch=_millis(vertex.event_time))
            key = self._task_keys.get((vertex.execution, vertex.artifact, kind))
            if not key and kind == "OUTPUT":  # Vertex AI names an output artifact after its output key
                key = self.run.artifacts[vertex.artifact].display_name
            if key:
                event.path.steps.add().key = key
            events.append(event)
        return events


def _root_task(tasks: Iterable[Any], executions: Dict[str, Any]) -> Optional[Any]:
    """The job's root task: the one whose execution is a system.Run, else the one without a parent."""
    tasks = list(tasks)
    for task in tasks:
        execution = executions.get(task.execution.name) or task.execution
        if execution.schema_title == VERTEX_ROOT_TYPE:
            return task
    parentless = [t for t in tasks if not t.parent_task_id]
    return min(parentless, key=lambda t: t.task_id) if parentless else None


def _depth(task: Any, tasks: Dict[int, Any]) -> int:
    depth, seen = 0, set()
    while task.parent_task_id in tasks and task.task_id not in seen:
        seen.add(task.task_id)
        task = tasks[task.parent_task_id]
        depth += 1
    return depth


def _raw(message: Any) -> Any:
    """The protobuf message under a google-cloud-aiplatform (proto-plus) message."""
    return type(message).pb(message)


def _struct(struct: struct_pb2.Struct) -> Dict[str, Any]:
    return json_format.MessageToDict(struct) if struct is not None else {}


def _set_properties(node: Any, values: Dict[str, Any]) -> None:
    """Custom properties as the KFP backend writes them: strings, doubles for numbers, 0/1 for booleans, structs for
    objects and {"list": [...]} for lists; None is left out."""
    for key, value in values.items():
        if value is None:
            continue
        target = node.custom_properties[key]
        if isinstance(value, bool):
            target.int_value = int(value)
        elif isinstance(value, int) and key == "parent_dag_id":
            target.int_value = value
        elif isinstance(value, (int, float)):
            target.double_value = float(value)
        elif isinstance(value, str):
            target.string_value = value
        elif isinstance(value, (dict, list)):
            target.struct_value.SetInParent()  # an empty struct is still a struct value
            target.struct_value.update(value if isinstance(value, dict) else {"list": value})
        else:
            target.string_value = json.dumps(value)


def _millis(timestamp: Any) -> int:
    """A protobuf Timestamp / datetime from the client library as milliseconds since the epoch (0 when unset)."""
    if timestamp is None:
        return 0
    if hasattr(timestamp, "timestamp"):
        return int(round(timestamp.timestamp() * 1000))
    return int(timestamp.seconds * 1000 + timestamp.nanos // 1_000_000)


def _set_times(path: str, times: Dict[str, List[Tuple[int, int, int]]]) -> None:
    """Gives the scratch store Vertex's create and update times, which ml-metadata sets itself on every put.

    Writes ml-metadata's SQLite schema directly, in this private file only; when the schema is not the expected
    one the times stay those of the read, and only durations and run times are affected.
    """
    try:
        with sqlite3.connect(path) as connection:
            for table, rows in times.items():
                connection.executemany(
                    f"UPDATE {table} SET create_time_since_epoch = ?, last_update_time_since_epoch = ? WHERE id = ?",
                    [(created, updated or created, node_id) for node_id, created, updated in rows if created])
        connection.close()
    except sqlite3.Error:
        pass
