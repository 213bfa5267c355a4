"""A Vertex AI REST API (v1) stand-in: pipelineJobs create/get, models upload/get, endpoints
create/list/get/deployModel, and the long-running operations the SDK polls.

Point google-cloud-aiplatform at it with `aiplatform.init(api_endpoint=<url>, api_transport="rest",
credentials=AnonymousCredentials())`. Like Vertex AI, it names resources with the project *number*, answers
creates and deploys with an unfinished operation that is done at the first poll, and moves each pipeline job
through `job_states` one step per GET.
"""

from __future__ import annotations

import itertools
import urllib.parse
from typing import Any, Dict, List, Optional

from tests.standins.server import HttpError, Reply, Request, StandInServer

_PARENT = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
_TYPE = "type.googleapis.com/google.cloud.aiplatform.v1."
CREATE_TIME = "2026-01-02T03:04:05.000000Z"
TERMINAL_STATES = ("PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED")


class VertexStandIn(StandInServer):
    """Vertex AI for one project (ID and number) and one region."""

    name = "Vertex AI stand-in"

    def __init__(
        self, project: str = "test-project", location: str = "us-central1", project_number: str = "123456789012"
    ) -> None:
        super().__init__()
        self.project, self.location, self.project_number = project, location, project_number
        self.parent = f"projects/{project_number}/locations/{location}"
        self.pipeline_jobs: Dict[str, Dict[str, Any]] = {}
        self.models: Dict[str, Dict[str, Any]] = {}
        self.endpoints: Dict[str, Dict[str, Any]] = {}
        self.operations: Dict[str, Dict[str, Any]] = {}
        # The states a new pipeline job goes through after creation, one per GET; the last one sticks.
        self.job_states: List[str] = ["PIPELINE_STATE_RUNNING", "PIPELINE_STATE_SUCCEEDED"]
        self.job_error: Dict[str, Any] = {"code": 9, "message": "The DAG failed because some tasks failed."}
        self._job_script: Dict[str, List[str]] = {}
        self._ids = itertools.count(1001)
        self.route("POST", _PARENT + r"/pipelineJobs", self._create_pipeline_job)
        self.route("GET", _PARENT + r"/pipelineJobs/(?P<job>[^/:]+)", self._get_pipeline_job)
        self.route("POST", _PARENT + r"/models:upload", self._upload_model)
        self.route("GET", _PARENT + r"/models/(?P<model>[^/:]+)", self._get_model)
        self.route("GET", _PARENT + r"/endpoints", self._list_endpoints)
        self.route("POST", _PARENT + r"/endpoints", self._create_endpoint)
        self.route("GET", _PARENT + r"/endpoints/(?P<endpoint>[^/:]+)", self._get_endpoint)
        self.route("POST", _PARENT + r"/endpoints/(?P<endpoint>[^/:]+):deployModel", self._deploy_model)
        self.route("GET", r"/(?:v1|ui)/(?P<name>projects/[^:]+/operations/[^/:]+)", self._get_operation)

    # --- set-up helpers for tests --------------------------------------------------------------------------

    def add_endpoint(self, display_name: str, create_time: str = CREATE_TIME) -> str:
        """An endpoint that already exists; returns its resource name."""
        with self._lock:
            name = f"{self.parent}/endpoints/{next(self._ids)}"
            self.endpoints[name] = {"name": name, "displayName": display_name, "createTime": create_time,
                                    "updateTime": create_time, "etag": "AMEw9yN=", "labels": {}}
            return name

    # --- helpers -------------------------------------------------------------------------------------------

    def _check_parent(self, project: str, location: str, permission: str) -> None:
        if project not in (self.project, self.project_number):
            raise HttpError(
                403,
                f"Permission '{permission}' denied on resource "
                f"'//aiplatform.googleapis.com/projects/{project}/locations/{location}' (or it may not exist).",
            )
        if location != self.location:
            raise HttpError(404, f"Location {location} is not found or not supported by this stand-in.")

    def _operation(self, resource: str, metadata_type: str, response: Dict[str, Any]) -> Reply:
        name = f"{resource}/operations/{next(self._ids)}"
        metadata = {"@type": _TYPE + metadata_type,
                    "genericMetadata": {"createTime": CREATE_TIME, "updateTime": CREATE_TIME}}
        self.operations[name] = {"name": name, "metadata": metadata, "done": True, "response": response}
        return Reply(200, {"name": name, "metadata": metadata})  # not done yet: the SDK polls it

    # --- pipeline jobs -------------------------------------------------------------------------------------

    def _create_pipeline_job(self, request: Request, project: str, location: str) -> Reply:
        self._check_parent(project, location, "aiplatform.pipelineJobs.create")
        job_id = request.query.get("pipelineJobId") or f"job-{next(self._ids)}"
        name = f"{self.parent}/pipelineJobs/{job_id}"
        if name in self.pipeline_jobs:
            raise HttpError(409, f"PipelineJob {name} already exists.")
        job = dict(request.body or {})
        job.update(name=name, createTime=CREATE_TIME, updateTime=CREATE_TIME, state="PIPELINE_STATE_PENDING")
        self.pipeline_jobs[name] = job
        self._job_script[name] = list(self.job_states)
        return Reply(200, job)

    def _get_pipeline_job(self, request: Request, project: str, location: str, job: str) -> Reply:
        self._check_parent(project, location, "aiplatform.pipelineJobs.get")
        name = f"{self.parent}/pipelineJobs/{job}"
        if name not in self.pipeline_jobs:
            raise HttpError(404, f"PipelineJob {name} does not exist.")
        script = self._job_script[name]
        record = self.pipeline_jobs[name]
        if script:
            record["state"] = script.pop(0) if len(script) > 1 else script[0]
            if record["state"] in TERMINAL_STATES:
                record["endTime"] = CREATE_TIME
            if record["state"] in ("PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"):
                record["error"] = self.job_error
        return Reply(200, record)

    # --- models --------------------------------------------------------------------------------------------

    def _upload_model(self, request: Request, project: str, location: str) -> Reply:
        self._check_parent(project, location, "aiplatform.models.upload")
        body = request.body or {}
        name = f"{self.parent}/models/{next(self._ids)}"
        model = dict(body.get("model", {}))
        # A model with its own serving container is deployed on dedicated machines, as Vertex AI says.
        model.update(name=name, versionId="1", versionAliases=["default"], createTime=CREATE_TIME,
                     updateTime=CREATE_TIME, etag="AMEw9yN=", supportedDeploymentResourcesTypes=["DEDICATED_RESOURCES"])
        self.models[name] = model
        response = {"@type": _TYPE + "UploadModelResponse", "model": name, "modelVersionId": "1"}
        return self._operation(name, "UploadModelOperationMetadata", response)

    def _get_model(self, request: Request, project: str, location: str, model: str) -> Reply:
        self._check_parent(project, location, "aiplatform.models.get")
        # Newer google-api-core sends `models/1001%401` for the version `1001@1`; Vertex AI decodes it.
        name = f"{self.parent}/models/{urllib.parse.unquote(model).partition('@')[0]}"
        if name not in self.models:
            raise HttpError(404, f"Model {name} does not exist.")
        return Reply(200, self.models[name])

    # --- endpoints -----------------------------------------------------------------------------------------

    def _list_endpoints(self, request: Request, project: str, location: str) -> Reply:
        self._check_parent(project, location, "aiplatform.endpoints.list")
        wanted = _display_name_filter(request.query.get("filter", ""))
        found = [e for e in self.endpoints.values() if wanted is None or e["displayName"] == wanted]
        return Reply(200, {"endpoints": found} if found else {})

    def _create_endpoint(self, request: Request, project: str, location: str) -> Reply:
        self._check_parent(project, location, "aiplatform.endpoints.create")
        name = f"{self.parent}/endpoints/{request.query.get('endpointId') or next(self._ids)}"
        endpoint = dict(request.body or {})
        endpoint.update(name=name, createTime=CREATE_TIME, updateTime=CREATE_TIME, etag="AMEw9yN=")
        self.endpoints[name] = endpoint
        return self._operation(name, "CreateEndpointOperationMetadata", {"@type": _TYPE + "Endpoint", **endpoint})

    def _get_endpoint(self, request: Request, project: str, location: str, endpoint: str) -> Reply:
        self._check_parent(project, location, "aiplatform.endpoints.get")
        name = f"{self.parent}/endpoints/{endpoint}"
        if name not in self.endpoints:
            raise HttpError(404, f"Endpoint {name} does not exist.")
        return Reply(200, self.endpoints[name])

    def _deploy_model(self, request: Request, project: str, location: str, endpoint: str) -> Reply:
        self._check_parent(project, location, "aiplatform.endpoints.deploy")
        name = f"{self.parent}/endpoints/{endpoint}"
        if name not in self.endpoints:
            raise HttpError(404, f"Endpoint {name} does not exist.")
        body = request.body or {}
        deployed = dict(body.get("deployedModel", {}))
        if deployed.get("model", "").split("@")[0] not in self.models:
            raise HttpError(404, f"Model {deployed.get('model')} does not exist.")
        deployed.update(id=str(next(self._ids)), createTime=CREATE_TIME)
        record = self.endpoints[name]
        record["deployedModels"] = record.get("deployedModels", []) + [deployed]
        split = dict(body.get("trafficSplit", {}))
        if "0" in split:
            split[deployed["id"]] = split.pop("0")
        record["trafficSplit"] = split
        response = {"@type": _TYPE + "DeployModelResponse", "deployedModel": deployed}
        return self._operation(name, "DeployModelOperationMetadata", response)

    # --- operations ----------------------------------------------------------------------------------------

    def _get_operation(self, request: Request, name: str) -> Reply:
        operation: Optional[Dict[str, Any]] = self.operations.get(name)
        if operation is None:
            raise HttpError(404, f"Operation {name} does not exist.")
        return Reply(200, operation)


def _display_name_filter(text: str) -> Optional[str]:
    """The value of a `display_name="..."` filter (what our deploy code sends), None for no filter."""
    if not text:
        return None
    prefix = 'display_name="'
    if not (text.startswith(prefix) and text.endswith('"')):
        raise HttpError(400, f"filter {text!r} is not supported by this stand-in")
    return text[len(prefix):-1].replace('\\"', '"').replace("\\\\", "\\")
