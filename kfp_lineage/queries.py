"""Lineage queries over any MLMD store written by kfp-lineage or the KFP backend: find artifacts, trace upstream.

Plain ml-metadata calls only (no filter_query), batched per level of the walk.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage import errors, recorder

DEFAULT_DEPTH = 20
_ENDPOINT_TYPES = ("google.VertexEndpoint",)


@dataclasses.dataclass
class TaskRef:
    """The execution that produced or used an artifact."""

    execution_id: int
    task_name: str
    display_name: str
    state: str
    parameters: Dict[str, Any]
    outputs: Dict[str, Any]


@dataclasses.dataclass
class ArtifactNode:
    """An artifact and, walking upstream, how it was made."""

    artifact_id: int
    type_name: str
    uri: str
    name: str
    properties: Dict[str, Any]
    producer: Optional[TaskRef] = None
    run_id: Optional[str] = None
    inputs: List["InputEdge"] = dataclasses.field(default_factory=list)
    evaluations: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    deployments: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    truncated: bool = False

    def to_json(self) -> Dict[str, Any]:
        data = {
            "artifact_id": self.artifact_id,
            "type": self.type_name,
            "uri": self.uri,
            "name": self.name,
            "properties": self.properties,
            "run_id": self.run_id,
            "producer": dataclasses.asdict(self.producer) if self.producer else None,
            "inputs": [{"key": e.key, "artifact": e.node.to_json()} for e in self.inputs],
        }
        if self.evaluations:
            data["evaluations"] = self.evaluations
        if self.deployments:
            data["deployments"] = self.deployments
        if self.truncated:
            data["truncated"] = True
        return data


@dataclasses.dataclass
class InputEdge:
    """An input of a producer: the input name and the upstream artifact."""

    key: str
    node: ArtifactNode


def find_artifact(store: metadata_store.MetadataStore, reference: str) -> mlmd_pb.Artifact:
    """Finds one artifact by MLMD id, by URI, or by `RUN_ID/TASK/OUTPUT` (RUN_ID may be `latest`).

    Raises:
        InvalidInputError: nothing matches, or a URI matches several artifacts (their ids are listed).
    """
    if reference.isdigit():
        found = store.get_artifacts_by_id([int(reference)])
        if not found:
            raise errors.InvalidInputError(f"no artifact with id {reference} in this store")
        return found[0]
    if "://" not in reference and not reference.startswith("/") and reference.count("/") >= 2:
        return _find_task_output(store, reference)
    found = store.get_artifacts_by_uri(reference)
    if not found:
        raise errors.InvalidInputError(
            f"no artifact has URI {reference}: pass an artifact id, a URI, or RUN_ID/TASK/OUTPUT"
        )
    if len(found) > 1:
        ids = ", ".join(str(a.id) for a in found)
        raise errors.InvalidInputError(f"{len(found)} artifacts have URI {reference} (ids {ids}): pass one id")
    return found[0]


def latest_run(store: metadata_store.MetadataStore) -> mlmd_pb.Context:
    """The most recently created system.PipelineRun context.

    Raises:
        InvalidInputError: the store has no runs.
    """
    runs = store.get_contexts_by_type(recorder.RUN_CONTEXT_TYPE)
    if not runs:
        raise errors.InvalidInputError("the store has no pipeline runs yet: run one with `kfp-lineage run`")
    return max(runs, key=lambda c: (c.create_time_since_epoch, c.id))


def _find_task_output(store: metadata_store.MetadataStore, reference: str) -> mlmd_pb.Artifact:
    run_id, rest = reference.split("/", 1)
    task_path, output = rest.rsplit("/", 1)
    task_name = task_path.rsplit("/", 1)[-1]
    run = latest_run(store) if run_id == "latest" else store.get_context_by_type_and_name(
        recorder.RUN_CONTEXT_TYPE, run_id
    )
    if run is None:
        raise errors.InvalidInputError(f"no run {run_id!r} in this store: `kfp-lineage runs` lists them")
    executions = [
        e for e in store.get_executions_by_context(run.id)
        if e.custom_properties["task_name"].string_value == task_name
        and e.type != recorder.DAG_EXECUTION_TYPE
    ]
    if not executions:
        raise errors.InvalidInputError(f"run {run.name} has no task {task_name!r}")
    events = store.get_events_by_execution_ids([e.id for e in executions])
    ids = sorted({
        ev.artifact_id for ev in events
        if ev.type == mlmd_pb.Event.OUTPUT and ev.path.steps and ev.path.steps[0].key == output
    })
    if not ids:
        raise errors.InvalidInputError(f"task {task_name!r} of run {run.name} recorded no output {output!r}")
    if len(ids) > 1:
        raise errors.InvalidInputError(
            f"task {task_name!r} of run {run.name} has {len(ids)} outputs {output!r} (ids "
            f"{', '.join(map(str, ids))}): pass one id"
        )
    return store.get_artifacts_by_id(ids)[0]


def trace(store: metadata_store.MetadataStore, artifact: mlmd_pb.Artifact, depth: int = DEFAULT_DEPTH) -> ArtifactNode:
    """The upstream lineage of `artifact`: its producer, the producer's input artifacts, and so on up to `depth`
    levels; plus, for the starting artifact, the evaluations and deployments that consumed it.

    Each level costs a fixed number of batched ml-metadata calls; an artifact already seen is not walked again
    (cycles and diamonds are bounded).
    """
    types = {t.id: t.name for t in store.get_artifact_types()}
    root = _node(artifact, types)
    root.run_id = _run_of(store, artifact.id)
    level = [root]
    seen = {artifact.id}
    for current_depth in range(depth + 1):
        if not level:
            break
        producers = _producers(store, [n.artifact_id for n in level])
        for node in level:
            node.producer = producers.get(node.artifact_id)
        if current_depth == depth:
            for node in level:
                node.truncated = node.producer is not None
            break
        producer_ids = sorted({n.producer.execution_id for n in level if n.producer})
        input_events = [
            e for e in store.get_events_by_execution_ids(producer_ids) if e.type == mlmd_pb.Event.INPUT
        ] if producer_ids else []
        upstream_ids = sorted({e.artifact_id for e in input_events})
        upstream = {a.id: a for a in store.get_artifacts_by_id(upstream_ids)} if upstream_ids else {}
        next_level: List[ArtifactNode] = []
        for node in level:
            if not node.producer:
                continue
            for event in input_events:
                if event.execution_id != node.producer.execution_id or event.artifact_id not in upstream:
                    continue
                child = _node(upstream[event.artifact_id], types)
                node.inputs.append(InputEdge(event.path.steps[0].key if event.path.steps else "", child))
                if event.artifact_id not in seen:
                    seen.add(event.artifact_id)
                    next_level.append(child)
        level = next_level
    _add_consumers(store, root, types)
    return root


def _node(artifact: mlmd_pb.Artifact, types: Dict[int, str]) -> ArtifactNode:
    properties = {k: recorder.value_to_python(v) for k, v in artifact.custom_properties.items()}
    return ArtifactNode(
        artifact_id=artifact.id,
        type_name=types.get(artifact.type_id, artifact.type),
        uri=artifact.uri,
        name=str(properties.get("display_name", artifact.name)),
        properties=properties,
    )


def _task_ref(execution: mlmd_pb.Execution) -> TaskRef:
    props = execution.custom_properties
    return TaskRef(
        execution_id=execution.id,
        task_name=props["task_name"].string_value if "task_name" in props else "",
        display_name=props["display_name"].string_value if "display_name" in props else "",
        state=mlmd_pb.Execution.State.Name(execution.last_known_state),
        parameters=recorder.value_to_python(props["inputs"]) if "inputs" in props else {},
        outputs=recorder.value_to_python(props["outputs"]) if "outputs" in props else {},
    )


def _producers(store: metadata_store.MetadataStore, artifact_ids: Sequence[int]) -> Dict[int, TaskRef]:
    """artifact id -> the execution that made it (an original producer wins over cache hits that re-point)."""
    events = [e for e in store.get_events_by_artifact_ids(list(artifact_ids)) if e.type == mlmd_pb.Event.OUTPUT]
    if not events:
        return {}
    executions = {e.id: e for e in store.get_executions_by_id(sorted({e.execution_id for e in events}))}
    chosen: Dict[int, mlmd_pb.Execution] = {}
    for event in events:
        execution = executions.get(event.execution_id)
        if execution is None:
            continue
        current = chosen.get(event.artifact_id)
        if current is None or (
            current.last_known_state == mlmd_pb.Execution.CACHED
            and execution.last_known_state != mlmd_pb.Execution.CACHED
        ):
            chosen[event.artifact_id] = execution
    return {artifact_id: _task_ref(execution) for artifact_id, execution in chosen.items()}


def _run_of(store: metadata_store.MetadataStore, artifact_id: int) -> Optional[str]:
    runs = [c for c in store.get_contexts_by_artifact(artifact_id) if c.type == recorder.RUN_CONTEXT_TYPE]
    return runs[0].name if runs else None


def _add_consumers(store: metadata_store.MetadataStore, root: ArtifactNode, types: Dict[int, str]) -> None:
    """Records on `root` the executions that consumed it and produced metrics or endpoints."""
    uses = [e for e in store.get_events_by_artifact_ids([root.artifact_id]) if e.type == mlmd_pb.Event.INPUT]
    consumer_ids = sorted({e.execution_id for e in uses})
    if not consumer_ids:
        return
    consumers = {e.id: _task_ref(e) for e in store.get_executions_by_id(consumer_ids)}
    outputs = [e for e in store.get_events_by_execution_ids(consumer_ids) if e.type == mlmd_pb.Event.OUTPUT]
    artifacts = {a.id: a for a in store.get_artifacts_by_id(sorted({e.artifact_id for e in outputs}))}
    for event in outputs:
        artifact = artifacts.get(event.artifact_id)
        if artifact is None:
            continue
        task = consumers[event.execution_id]
        node = _node(artifact, types)
        if node.type_name == "system.Metrics":
            metrics = {k: v for k, v in node.properties.items() if k not in ("display_name", "store_session_info")}
            root.evaluations.append({"task": task.task_name, "artifact_id": node.artifact_id, "metrics": metrics})
        elif node.type_name in _ENDPOINT_TYPES or "endpoint_uri" in node.properties:
            root.deployments.append({
                "task": task.task_name,
                "artifact_id": node.artifact_id,
                "type": node.type_name,
                "endpoint": node.properties.get("endpoint_uri") or node.properties.get("resourceName") or node.uri,
                "deployed_by": node.properties.get("deployed_by"),
                "deployed_at": node.properties.get("deployed_at"),
            })
