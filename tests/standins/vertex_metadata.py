"""A Vertex AI REST API (v1) stand-in for reading a pipeline run's lineage: pipelineJobs.get with its job detail, and
Vertex ML Metadata's contexts.queryContextLineageSubgraph, executions.list (paged, `in_context(...)` filter) and
executions.queryExecutionInputsAndOutputs. It extends the submission stand-in (tests/standins/vertex.py), so
`submit --vertex --wait --check` submits, follows and reads one job on one endpoint.

Runs are written the way Vertex AI Pipelines records them (see docs/vertex-lineage.md): a `system.PipelineRun`
context named after the job, a `system.Run` root execution whose task is named after the job, `system.DagExecution`
for sub-DAGs, `input:<name>` / `output:<name>` execution metadata, events without path keys, and the input and
output names of every artifact in the job's task details. Like Vertex AI, the lineage subgraph query refuses a
context with more than `subgraph_limit` artifacts, executions or events (FAILED_PRECONDITION).

Point google-cloud-aiplatform at it with `client_options={"api_endpoint": url}`, `transport="rest"` and
AnonymousCredentials.
"""

from __future__ import annotations

import datetime
import itertools
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from tests.standins.server import HttpError, Reply, Request
from tests.standins.vertex import VertexStandIn

_PARENT = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
_STORE = _PARENT + r"/metadataStores/(?P<store>[^/:]+)"
START = datetime.datetime(2026, 12, 1, 10, 0, 0, tzinfo=datetime.timezone.utc)
NewArtifact = Tuple[str, Dict[str, Any]]  # (schema title, metadata)


def timestamp(seconds: float) -> str:
    """RFC 3339, as Vertex AI writes times: START plus `seconds`."""
    moment = START + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}Z"


class VertexMetadataStandIn(VertexStandIn):
    """Vertex AI Pipelines and Vertex ML Metadata (the `default` metadata store) of one project and region."""

    name = "Vertex ML Metadata stand-in"

    def __init__(self, project: str = "test-project", location: str = "us-central1",
                 project_number: str = "123456789012", subgraph_limit: int = 1000) -> None:
        super().__init__(project=project, location=location, project_number=project_number)
        self.metadata_store = f"{self.parent}/metadataStores/default"
        self.subgraph_limit = subgraph_limit
        # Whether top-level tasks name the root task as their parent (the API reference also allows no parent).
        self.top_level_parent_ids = True
        self.recorded_jobs: Dict[str, Dict[str, Any]] = {}  # job name -> the job as its run recorded it
        self.artifacts: Dict[str, Dict[str, Any]] = {}
        self.executions: Dict[str, Dict[str, Any]] = {}
        self.events: List[Dict[str, Any]] = []
        self.context_members: Dict[str, List[str]] = {}  # context name -> execution and artifact names
        self._ids = itertools.count(4_611_686_018_427_387_904)  # Vertex ML Metadata ids are large numbers
        self.route("GET", _STORE + r"/contexts/(?P<context>[^/:]+):queryContextLineageSubgraph", self._query_context)
        self.route("GET", _STORE + r"/executions", self._list_executions)
        self.route("GET", _STORE + r"/executions/(?P<execution>[^/:]+):queryExecutionInputsAndOutputs",
                   self._query_execution)

    def new_id(self) -> str:
        return str(next(self._ids))

    def add_run(self, job_id: str, pipeline: str, parameters: Optional[Mapping[str, Any]] = None,
                state: str = "PIPELINE_STATE_SUCCEEDED", root_state: str = "COMPLETE") -> "VertexRunBuilder":
        """A pipeline job with its contexts and its root task (a system.Run execution)."""
        with self._lock:
            return VertexRunBuilder(self, job_id, pipeline, dict(parameters or {}), state, root_state)

    def remove_event(self, execution: str, artifact: str, kind: str) -> None:
        """Drops one event (as if Vertex AI had not recorded it); execution and artifact are resource names."""
        with self._lock:
            before = len(self.events)
            self.events = [e for e in self.events
                           if (e["execution"], e["artifact"], e["type"]) != (execution, artifact, kind)]
            assert len(self.events) == before - 1, "no such event"

    # --- routes --------------------------------------------------------------------------------------------------

    def _get_pipeline_job(self, request: Request, project: str, location: str, job: str) -> Reply:
        self._check_parent(project, location, "aiplatform.pipelineJobs.get")
        name = f"{self.parent}/pipelineJobs/{job}"
        recorded = self.recorded_jobs.get(name)
        if name in self.pipeline_jobs:  # submitted through this stand-in: it moves through its states
            reply = super()._get_pipeline_job(request, project, location, job)
            if recorded is not None:
                reply.body = {**reply.body, "jobDetail": recorded["jobDetail"]}
            return reply
        if recorded is None:
            raise HttpError(404, f"The PipelineJob \"{name}\" does not exist.")
        return Reply(200, recorded)

    def _query_context(self, request: Request, project: str, location: str, store: str, context: str) -> Reply:
        self._check_parent(project, location, "aiplatform.contexts.queryContextLineageSubgraph")
        name = f"{self.parent}/metadataStores/{store}/contexts/{context}"
        if name not in self.context_members:
            raise HttpError(404, f"Context {name} does not exist.")
        members = set(self.context_members[name])
        executions = [self.executions[n] for n in self.context_members[name] if n in self.executions]
        artifacts = [self.artifacts[n] for n in self.context_members[name] if n in self.artifacts]
        events = [e for e in self.events if e["execution"] in members and e["artifact"] in members]
        if max(len(executions), len(artifacts), len(events)) > self.subgraph_limit:
            return Reply(400, {"error": {
                "code": 400, "status": "FAILED_PRECONDITION",
                "message": f"Context {name} has too many Artifacts, Executions or Events "
                           f"(more than {self.subgraph_limit}) to return as a LineageSubgraph."}})
        return Reply(200, _subgraph(artifacts, executions, events))

    def _list_executions(self, request: Request, project: str, location: str, store: str) -> Reply:
        self._check_parent(project, location, "aiplatform.executions.list")
        match = re.fullmatch(r'in_context\("(?P<context>[^"]+)"\)', request.query.get("filter", ""))
        if not match:
            raise HttpError(400, f"This stand-in filters executions by in_context(\"CONTEXT\") only, "
                                 f"got {request.query.get('filter')!r}.")
        page_size = int(request.query.get("pageSize") or 100)
        if not 1 <= page_size <= 1000:
            raise HttpError(400, "page_size must be in range 1-1000, inclusive.")
        offset = int(request.query.get("pageToken") or 0)
        found = [self.executions[n] for n in self.context_members.get(match["context"], []) if n in self.executions]
        page = found[offset:offset + page_size]
        body: Dict[str, Any] = {"executions": page} if page else {}
        if offset + page_size < len(found):
            body["nextPageToken"] = str(offset + page_size)
        return Reply(200, body)

    def _query_execution(self, request: Request, project: str, location: str, store: str, execution: str) -> Reply:
        self._check_parent(project, location, "aiplatform.executions.queryExecutionInputsAndOutputs")
        name = f"{self.parent}/metadataStores/{store}/executions/{execution}"
        if name not in self.executions:
            raise HttpError(404, f"Execution {name} does not exist.")
        events = [e for e in self.events if e["execution"] == name]
        artifacts = [self.artifacts[n] for n in dict.fromkeys(e["artifact"] for e in events)]
        return Reply(200, _subgraph(artifacts, [self.executions[name]], events))


def _subgraph(artifacts: Sequence[Dict[str, Any]], executions: Sequence[Dict[str, Any]],
              events: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    body = {"artifacts": list(artifacts), "executions": list(executions), "events": list(events)}
    return {key: value for key, value in body.items() if value}  # proto3 JSON leaves empty lists out


class VertexRunBuilder:
    """Adds tasks to one pipeline job, recording each as Vertex AI does: a task detail, an execution in the run's
    context, its new output artifacts, and an INPUT or OUTPUT event per artifact (no path keys on events)."""

    def __init__(self, standin: VertexMetadataStandIn, job_id: str, pipeline: str, parameters: Dict[str, Any],
                 state: str, root_state: str):
        self.standin = standin
        self.job_id = job_id
        self.clock = itertools.count(0, 5)
        self.run_context = f"{standin.metadata_store}/contexts/{job_id}"
        self.pipeline_context = f"{standin.metadata_store}/contexts/{pipeline}"
        self.name = f"{standin.parent}/pipelineJobs/{job_id}"
        created = timestamp(next(self.clock))
        contexts = {
            name: {"name": name, "displayName": display, "schemaTitle": schema, "schemaVersion": "0.0.1",
                   "createTime": created, "updateTime": created, "etag": "1"}
            for name, display, schema in ((self.pipeline_context, pipeline, "system.Pipeline"),
                                          (self.run_context, job_id, "system.PipelineRun"))
        }
        standin.context_members[self.run_context] = []
        self.job: Dict[str, Any] = {
            "name": self.name, "displayName": pipeline, "state": state, "createTime": created,
            "startTime": created, "updateTime": created, "endTime": created,
            "pipelineSpec": {"pipelineInfo": {"name": pipeline}, "schemaVersion": "2.1.0", "sdkVersion": "kfp-2.13.0"},
            "runtimeConfig": {"gcsOutputDirectory": f"gs://pipelines-bucket/root",
                              "parameterValues": dict(parameters)},
            "jobDetail": {"pipelineContext": contexts[self.pipeline_context],
                          "pipelineRunContext": contexts[self.run_context], "taskDetails": []},
        }
        standin.recorded_jobs[self.name] = self.job
        self.root = self._task(job_id, "system.Run", None, root_state,
                               {f"input:{k}": v for k, v in parameters.items()}, display_name=job_id)

    def _task(self, task_name: str, schema: Optional[str], parent: Optional[Dict[str, Any]], state: str,
              metadata: Dict[str, Any], display_name: str = "", task_state: str = "") -> Dict[str, Any]:
        start, end = timestamp(next(self.clock)), timestamp(next(self.clock))
        task: Dict[str, Any] = {
            "taskId": self.standin.new_id(), "taskName": task_name, "createTime": start, "startTime": start,
            "endTime": end, "state": task_state or _TASK_STATE[state], "inputs": {}, "outputs": {},
            "taskUniqueName": task_name if parent is None or parent is self.root
            else f"{parent['taskUniqueName']}.{task_name}",
        }
        if parent is not None and (self.standin.top_level_parent_ids or parent is not self.root):
            task["parentTaskId"] = parent["taskId"]
        if schema is not None:
            name = f"{self.standin.metadata_store}/executions/{self.standin.new_id()}"
            execution = {"name": name, "displayName": display_name or task_name, "state": state,
                         "schemaTitle": schema, "schemaVersion": "0.0.1", "metadata": metadata,
                         "createTime": start, "updateTime": end, "etag": "1"}
            self.standin.executions[name] = execution
            self.standin.context_members[self.run_context].append(name)
            task["execution"] = execution
        self.job["jobDetail"]["taskDetails"].append(task)
        self.job["endTime"] = self.job["updateTime"] = end
        if parent is not None and "execution" in self.root:
            self.root["execution"]["updateTime"] = end
        return task

    def task(self, task_name: str, inputs: Mapping[str, Union[str, Sequence[str]]] = (),
             outputs: Mapping[str, NewArtifact] = (), *, schema: str = "system.ContainerExecution",
             parent: Optional[Dict[str, Any]] = None, state: str = "COMPLETE", task_state: str = "",
             parameters: Optional[Dict[str, Any]] = None, output_parameters: Optional[Dict[str, Any]] = None,
             execution: bool = True, display_name: str = "") -> Dict[str, Any]:
        """A task (container by default; schema="system.DagExecution" for a sub-DAG) under `parent` (the root
        when None). `inputs`: name -> artifact resource name(s); `outputs`: key -> (schema title, metadata) of a
        new artifact. `execution=False` leaves the task without an execution (a task Vertex did not start)."""
        metadata = {f"input:{k}": v for k, v in (parameters or {}).items()}
        metadata.update({f"output:{k}": v for k, v in (output_parameters or {}).items()})
        task = self._task(task_name, schema if execution else None, parent or self.root, state, metadata,
                          display_name=display_name, task_state=task_state)
        for key, names in dict(inputs).items():
            for name in [names] if isinstance(names, str) else names:
                task["inputs"].setdefault(key, {"artifacts": []})["artifacts"].append(self.standin.artifacts[name])
                if execution:
                    self._event(task, name, "INPUT")
        for key, (schema_title, artifact_metadata) in dict(outputs).items():
            name = f"{self.standin.metadata_store}/artifacts/{self.standin.new_id()}"
            when = task["endTime"]
            artifact = {"name": name, "displayName": key, "state": "LIVE", "schemaTitle": schema_title,
                        "schemaVersion": "0.0.1", "metadata": artifact_metadata, "createTime": when,
                        "updateTime": when, "etag": "1",
                        "uri": f"gs://pipelines-bucket/root/{self.standin.project_number}/{self.job_id}/"
                               f"{task_name}_{task['taskId']}/{key}"}
            self.standin.artifacts[name] = artifact
            self.standin.context_members[self.run_context].append(name)
            task["outputs"][key] = {"artifacts": [artifact]}
            if execution:
                self._event(task, name, "OUTPUT")
        return task

    def output(self, task: Dict[str, Any], key: str) -> str:
        """The resource name of a task's output artifact."""
        return task["outputs"][key]["artifacts"][0]["name"]

    def _event(self, task: Dict[str, Any], artifact: str, kind: str) -> None:
        if artifact not in self.standin.context_members[self.run_context]:
            self.standin.context_members[self.run_context].append(artifact)
        self.standin.events.append({"artifact": artifact, "execution": task["execution"]["name"],
                                    "eventTime": task["endTime"] if kind == "OUTPUT" else task["startTime"],
                                    "type": kind})


_TASK_STATE = {"COMPLETE": "SUCCEEDED", "FAILED": "FAILED", "CACHED": "SKIPPED", "CANCELLED": "CANCELLED",
               "RUNNING": "RUNNING", "NEW": "PENDING"}


def add_training_run(standin: VertexMetadataStandIn, job_id: str = "training-20261201100000") -> VertexRunBuilder:
    """One run of specs/training.yaml with its default arguments, as Vertex AI Pipelines records it: the model
    passes the threshold and is deployed by deploy-local; the Vertex AI branch (condition-4) is not triggered."""
    parameters = {"code_version": "abc123", "deploy_target": "local", "threshold": 0.9,
                  "source_uri": "gs://data-bucket/breast_cancer.csv", "label_column": "label"}
    run = standin.add_run(job_id, "training", parameters)
    run.task("check-deploy-settings", parameters={"deploy_target": "local", "project": ""})
    dataset = {"source_uri": "gs://data-bucket/breast_cancer.csv", "rows": 426, "columns": 31,
               "schema": {"label": "int64"}, "sha256": "e16ef1790232" + "0" * 52, "label_column": "label",
               "seed": 42, "class_counts": {"0": 159, "1": 267}}
    ingest = run.task("ingest", outputs={
        "train": ("system.Dataset", {**dataset, "split": "train"}),
        "test": ("system.Dataset", {**dataset, "split": "test", "rows": 143}),
    }, parameters={"source_uri": "gs://data-bucket/breast_cancer.csv", "label_column": "label"})
    train = run.task("train", {"train_data": run.output(ingest, "train")}, {
        "model": ("system.Model", {"framework": "scikit-learn", "framework_version": "1.5.2",
                                   "model_class": "RandomForestClassifier",
                                   "hyperparameters": {"n_estimators": 100, "max_depth": 5},
                                   "sha256": "9940075c6f63" + "0" * 52, "code_version": "abc123",
                                   "training_data_sha256": "e16ef1790232" + "0" * 52,
                                   "training_data_uri": run.standin.artifacts[run.output(ingest, "train")]["uri"],
                                   "feature_columns": ["radius", "texture"], "classes": [0, 1]}),
        "metrics": ("system.Metrics", {"train_accuracy": 1.0, "train_rows": 426}),
    }, parameters={"code_version": "abc123", "label_column": "label"})
    model = run.output(train, "model")
    run.task("evaluate", {"model": model, "test_data": run.output(ingest, "test")}, {
        "metrics": ("system.Metrics", {"accuracy": 0.972, "f1": 0.9608, "roc_auc": 0.9954, "test_rows": 143,
                                       "threshold": 0.9}),
        "classification_metrics": ("system.ClassificationMetrics", {"confusionMatrix": {"rows": []},
                                                                    "confidenceMetrics": []}),
    }, parameters={"label_column": "label", "threshold": 0.9}, output_parameters={"passed": True})
    channel = {"pipelinechannel--train-model": model}
    condition = run.task("condition-1", channel, schema="system.DagExecution",
                         parameters={"pipelinechannel--evaluate-passed": True})
    branches = run.task("condition-branches-2", channel, schema="system.DagExecution", parent=condition)
    local = run.task("condition-3", channel, schema="system.DagExecution", parent=branches)
    # Inputs are resolved before a condition is evaluated, so the skipped branch has its INPUT event too.
    run.task("condition-4", channel, schema="system.DagExecution", parent=branches, state="CANCELLED",
             task_state="NOT_TRIGGERED")
    run.task("deploy-local", {"model": model}, {
        "endpoint": ("system.Artifact", {"endpoint_uri": "file:///registry/breast-cancer-classifier/v1/model.joblib",
                                         "model_version": 1, "registry_path": "/registry/breast-cancer-classifier/v1",
                                         "model_sha256": "9940075c6f63" + "0" * 52,
                                         "deployed_by": "https://ci.example/build/7",
                                         "deployed_at": "2026-12-01T10:01:30Z"}),
    }, parent=local, parameters={"model_name": "breast-cancer-classifier"})
    return run
