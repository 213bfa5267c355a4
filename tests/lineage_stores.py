"""Small MLMD stores written with plain ml-metadata calls the way the KFP v2 backend writes them, for the lineage
query, render and CLI tests: branches, loops, cache hits, failures, cycles, and artifacts used by many runs."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage.mlmd import recorder
from kfp_lineage.mlmd import vocabulary

COMPLETE, FAILED, CACHED, CANCELED, RUNNING = (mlmd_pb.Execution.COMPLETE, mlmd_pb.Execution.FAILED,
                                               mlmd_pb.Execution.CACHED, mlmd_pb.Execution.CANCELED,
                                               mlmd_pb.Execution.RUNNING)
NewArtifact = Tuple[str, Dict[str, Any]]  # (type name, metadata)


class Builder:
    """Writes runs into an ml-metadata store, one put_execution per task as the backend does."""

    def __init__(self, store: metadata_store.MetadataStore, dag_type: str = vocabulary.DAG_EXECUTION_TYPE,
                 root_type: Optional[str] = None):
        self.store = store
        self.dag_type = dag_type
        self.root_type = root_type or dag_type
        self._types: Dict[Tuple[str, str], int] = {}

    def type_id(self, kind: str, name: str) -> int:
        if (kind, name) not in self._types:
            put = {"artifact": (self.store.put_artifact_type, mlmd_pb.ArtifactType),
                   "execution": (self.store.put_execution_type, mlmd_pb.ExecutionType),
                   "context": (self.store.put_context_type, mlmd_pb.ContextType)}[kind]
            self._types[(kind, name)] = put[0](put[1](name=name))
        return self._types[(kind, name)]

    def run(self, run_id: str, pipeline: str = "training", root_name: Optional[str] = None,
            root_state: int = COMPLETE) -> "RunBuilder":
        """Creates the pipeline and run contexts and the root DAG execution (`run/<run id>`)."""
        pipeline_context = self.store.get_context_by_type_and_name(vocabulary.PIPELINE_CONTEXT_TYPE, pipeline)
        if pipeline_context is None:
            pipeline_context = mlmd_pb.Context(type_id=self.type_id("context", vocabulary.PIPELINE_CONTEXT_TYPE),
                                               name=pipeline)
            [pipeline_context.id] = self.store.put_contexts([pipeline_context])
        run_context = mlmd_pb.Context(type_id=self.type_id("context", vocabulary.RUN_CONTEXT_TYPE), name=run_id)
        recorder.set_custom_properties(run_context, {"namespace": "kubeflow", "resource_name": "run-resource"})
        [run_context.id] = self.store.put_contexts([run_context])
        self.store.put_parent_contexts([mlmd_pb.ParentContext(child_id=run_context.id,
                                                              parent_id=pipeline_context.id)])
        run = RunBuilder(self, run_id, pipeline, [pipeline_context, run_context])
        run.root = run._put(self.root_type, root_state, {"display_name": "", "task_name": "", "inputs": {}},
                            [], name=root_name if root_name is not None else f"run/{run_id}")
        return run

    def artifact(self, type_name: str, uri: str, metadata: Optional[Dict[str, Any]] = None,
                 name: Optional[str] = None) -> int:
        """An artifact with no producer (imported data)."""
        artifact = mlmd_pb.Artifact(type_id=self.type_id("artifact", type_name), uri=uri,
                                    state=mlmd_pb.Artifact.LIVE)
        recorder.set_custom_properties(artifact, {**(metadata or {}), **({"display_name": name} if name else {})})
        [artifact_id] = self.store.put_artifacts([artifact])
        return artifact_id


class RunBuilder:
    """Adds tasks to one run."""

    def __init__(self, builder: Builder, run_id: str, pipeline: str, contexts: List[mlmd_pb.Context]):
        self.builder = builder
        self.run_id = run_id
        self.pipeline = pipeline
        self.contexts = contexts
        self.root = 0
        self.outputs: Dict[Tuple[str, str], int] = {}  # (task, output key) -> artifact id
        self.executions: Dict[str, int] = {}  # task -> execution id (the last one of that name)

    def _put(self, type_name: str, state: int, properties: Dict[str, Any],
             pairs: Sequence[Tuple[Optional[mlmd_pb.Artifact], mlmd_pb.Event]], name: str = "") -> int:
        execution = mlmd_pb.Execution(type_id=self.builder.type_id("execution", type_name), last_known_state=state)
        if name:
            execution.name = name
        recorder.set_custom_properties(execution, properties)
        execution_id, _, _ = self.builder.store.put_execution(execution, list(pairs), self.contexts,
                                                              reuse_context_if_already_exist=True)
        return execution_id

    def dag(self, task: str, parent: Optional[int] = None, state: int = COMPLETE,
            iteration_index: Optional[int] = None, inputs: Mapping[str, Union[int, Sequence[int]]] = (),
            **properties: Any) -> int:
        """A DAG execution (sub-pipeline, condition, loop, or one loop iteration)."""
        props = {"display_name": task, "task_name": task, "parent_dag_id": parent or self.root, "inputs": {},
                 **properties}
        if iteration_index is not None:
            props["iteration_index"] = iteration_index
        return self._put(self.builder.dag_type, state, props, _input_pairs(inputs))

    def task(self, task: str, inputs: Mapping[str, Union[int, Sequence[int]]] = (),
             outputs: Mapping[str, Union[NewArtifact, int]] = (), state: int = COMPLETE,
             parent: Optional[int] = None, parameters: Optional[Dict[str, Any]] = None,
             **properties: Any) -> Tuple[int, Dict[str, int]]:
        """A container task: INPUT events for `inputs` (name -> artifact id or ids) and OUTPUT events for
        `outputs` (key -> (type, metadata) for a new artifact, or an existing artifact id for a cache hit).

        Returns:
            (execution id, {output key: artifact id}).
        """
        pairs = _input_pairs(inputs)
        keys = []
        for key, output in dict(outputs).items():
            event = mlmd_pb.Event(type=mlmd_pb.Event.OUTPUT)
            event.path.steps.add().key = key
            if isinstance(output, int):
                event.artifact_id = output
                pairs.append((None, event))
            else:
                type_name, metadata = output
                artifact = mlmd_pb.Artifact(
                    type_id=self.builder.type_id("artifact", type_name), state=mlmd_pb.Artifact.LIVE,
                    uri=f"/root/{self.pipeline}/{self.run_id}/{task}/{len(self.outputs)}/{key}")
                recorder.set_custom_properties(artifact, {**metadata, "display_name": key})
                pairs.append((artifact, event))
            keys.append(key)
        props = {"display_name": task, "task_name": task, "parent_dag_id": parent or self.root,
                 "inputs": parameters or {}, "image": "python:3.11-slim", **properties}
        execution_id = self._put(vocabulary.CONTAINER_EXECUTION_TYPE, state, props, pairs)
        self.executions[task] = execution_id
        made = {}
        events = self.builder.store.get_events_by_execution_ids([execution_id])
        for event in events:
            if event.type == mlmd_pb.Event.OUTPUT:
                made[event.path.steps[0].key] = event.artifact_id
        for key in keys:
            self.outputs[(task, key)] = made[key]
        return execution_id, made


def _input_pairs(inputs: Mapping[str, Union[int, Sequence[int]]]) -> List[Tuple[None, mlmd_pb.Event]]:
    pairs: List[Tuple[None, mlmd_pb.Event]] = []
    for key, ids in dict(inputs).items():
        for artifact_id in ([ids] if isinstance(ids, int) else ids):
            event = mlmd_pb.Event(type=mlmd_pb.Event.INPUT, artifact_id=artifact_id)
            event.path.steps.add().key = key
            pairs.append((None, event))
    return pairs


def training_run(builder: Builder, run_id: str, source: int, pipeline: str = "training", deploy: bool = True,
                 evaluate_state: int = COMPLETE) -> RunBuilder:
    """ingest(source) -> train -> evaluate and, inside condition-1, deploy: the shape of specs/training.yaml."""
    run = builder.run(run_id, pipeline, root_state=FAILED if evaluate_state == FAILED else COMPLETE)
    _, ingested = run.task("ingest", {"source": source}, {
        "train": ("system.Dataset", {"rows": 426.0, "sha256": "e16ef1790232" + "0" * 52,
                                     "source_uri": "bq://project.data.events"}),
        "test": ("system.Dataset", {"rows": 143.0}),
    }, parameters={"source_uri": "bq://project.data.events"})
    _, trained = run.task("train", {"train_data": ingested["train"]}, {
        "model": ("system.Model", {"framework": "scikit-learn", "sha256": "9940075c6f63" + "0" * 52,
                                   "code_version": "abc123"}),
    }, parameters={"code_version": "abc123", "n_estimators": 100.0})
    _, evaluated = run.task("evaluate", {"model": trained["model"], "test_data": ingested["test"]},
                            {} if evaluate_state == FAILED else {
                                "metrics": ("system.Metrics", {"accuracy": 0.972, "f1": 0.9608})},
                            state=evaluate_state)
    if deploy and evaluate_state != FAILED:
        condition = run.dag("condition-1", inputs={"pipelinechannel--train-model": trained["model"]},
                            total_dag_tasks=1)
        run.task("deploy", {"model": trained["model"]}, {
            "endpoint": ("system.Artifact", {"endpoint_uri": f"https://endpoints.example/{run_id}",
                                             "deployed_by": "https://ci.example/build/7",
                                             "deployed_at": "2026-11-26T05:56:48Z"}),
        }, parent=condition)
    elif evaluate_state != FAILED:
        run.dag("condition-1", state=CANCELED, total_dag_tasks=1)
    return run
