"""A Kubeflow Pipelines REST API (v2beta1) stand-in: healthz, experiments, pipeline upload, runs create/get.

Point `kfp.Client(host=<url>)` at it. Runs move through `run_states` one step per GET, like a cluster running them.
"""

from __future__ import annotations

import itertools
import json
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Dict, List, Optional

import yaml

from tests.standins.server import GOOGLE_STATUS, HttpError, Reply, Request, StandInServer

_API = "/apis/v2beta1"
CREATED_AT = "2026-01-02T03:04:05Z"
TERMINAL_STATES = ("SUCCEEDED", "SKIPPED", "FAILED", "CANCELED")
# google.rpc.Code numbers, which grpc-gateway puts in KFP's error bodies.
_RPC_CODES = {"INVALID_ARGUMENT": 3, "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7,
              "RESOURCE_EXHAUSTED": 8, "INTERNAL": 13, "UNAVAILABLE": 14, "UNAUTHENTICATED": 16}


class KfpApiStandIn(StandInServer):
    """One single-user KFP deployment (namespace-less), with experiments, pipelines and runs in memory."""

    name = "KFP API stand-in"

    def __init__(self) -> None:
        super().__init__()
        self.experiments: Dict[str, Dict[str, Any]] = {}
        self.pipelines: Dict[str, Dict[str, Any]] = {}
        self.versions: Dict[str, Dict[str, Any]] = {}
        self.uploaded_specs: Dict[str, Dict[str, Any]] = {}  # version id -> the uploaded pipeline spec
        self.runs: Dict[str, Dict[str, Any]] = {}
        # The states a new run goes through, one per GET; the last one sticks.
        self.run_states: List[str] = ["RUNNING", "SUCCEEDED"]
        self.run_error: Dict[str, Any] = {"code": 2, "message": "1 tasks failed: task 'train' exited with code 1"}
        self._run_script: Dict[str, List[str]] = {}
        self._ids = itertools.count(1)
        self.route("GET", _API + "/healthz", self._healthz)
        self.route("GET", _API + "/experiments", self._list_experiments)
        self.route("POST", _API + "/experiments", self._create_experiment)
        self.route("GET", _API + "/pipelines", self._list_pipelines)
        self.route("POST", _API + "/pipelines/upload", self._upload_pipeline)
        self.route("POST", _API + "/pipelines/upload_version", self._upload_version)
        self.route("GET", _API + "/pipelines/(?P<pipeline_id>[^/]+)/versions", self._list_versions)
        self.route("POST", _API + "/runs", self._create_run)
        self.route("GET", _API + "/runs/(?P<run_id>[^/:]+)", self._get_run)

    def error_body(self, status: int, message: str) -> Any:
        """grpc-gateway's error format, which the KFP API server answers with."""
        code = _RPC_CODES.get(GOOGLE_STATUS.get(status, ""), 2)
        return {"error": message, "code": code, "message": message, "details": []}

    def add_experiment(self, name: str) -> str:
        with self._lock:
            experiment_id = f"exp-{next(self._ids)}"
            self.experiments[experiment_id] = {"experiment_id": experiment_id, "display_name": name,
                                               "created_at": CREATED_AT, "storage_state": "AVAILABLE"}
            return experiment_id

    def _id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    # --- health, experiments -------------------------------------------------------------------------------

    def _healthz(self, request: Request) -> Reply:
        return Reply(200, {"multi_user": False})

    def _list_experiments(self, request: Request) -> Reply:
        wanted = _display_name_filter(request.query.get("filter", ""))
        found = [e for e in self.experiments.values() if wanted is None or e["display_name"] == wanted]
        return Reply(200, {"experiments": found, "total_size": len(found)} if found else {})

    def _create_experiment(self, request: Request) -> Reply:
        body = request.body or {}
        experiment_id = self.add_experiment(body.get("display_name", ""))
        return Reply(200, self.experiments[experiment_id])

    # --- pipelines -----------------------------------------------------------------------------------------

    def _list_pipelines(self, request: Request) -> Reply:
        wanted = _display_name_filter(request.query.get("filter", ""))
        found = [p for p in self.pipelines.values() if wanted is None or p["display_name"] == wanted]
        return Reply(200, {"pipelines": found, "total_size": len(found)} if found else {})

    def _new_version(self, pipeline_id: str, name: str, request: Request) -> Dict[str, Any]:
        version_id = self._id("version")
        self.uploaded_specs[version_id] = _uploaded_spec(request)
        version = {"pipeline_id": pipeline_id, "pipeline_version_id": version_id, "display_name": name,
                   "created_at": CREATED_AT}
        self.versions[version_id] = version
        return version

    def _upload_pipeline(self, request: Request) -> Reply:
        name = request.query.get("name", "")
        if any(p["display_name"] == name for p in self.pipelines.values()):
            raise HttpError(409, f"Failed to create a pipeline: pipeline with name {name!r} already exists")
        pipeline_id = self._id("pipeline")
        self.pipelines[pipeline_id] = {"pipeline_id": pipeline_id, "display_name": name,
                                       "description": request.query.get("description", ""), "created_at": CREATED_AT}
        self._new_version(pipeline_id, name, request)
        return Reply(200, self.pipelines[pipeline_id])

    def _upload_version(self, request: Request) -> Reply:
        pipeline_id = request.query.get("pipelineid", "")
        if pipeline_id not in self.pipelines:
            raise HttpError(404, f"Pipeline {pipeline_id} not found")
        return Reply(200, self._new_version(pipeline_id, request.query.get("name", ""), request))

    def _list_versions(self, request: Request, pipeline_id: str) -> Reply:
        found = [v for v in self.versions.values() if v["pipeline_id"] == pipeline_id]
        if request.query.get("sort_by") == "created_at desc":
            found.reverse()
        return Reply(200, {"pipeline_versions": found, "total_size": len(found)} if found else {})

    # --- runs ----------------------------------------------------------------------------------------------

    def _create_run(self, request: Request) -> Reply:
        body = dict(request.body or {})
        if body.get("experiment_id") not in self.experiments:
            raise HttpError(404, f"Experiment {body.get('experiment_id')} not found")
        run_id = self._id("run")
        body.update(run_id=run_id, created_at=CREATED_AT, state="PENDING", storage_state="AVAILABLE")
        self.runs[run_id] = body
        self._run_script[run_id] = list(self.run_states)
        return Reply(200, body)

    def _get_run(self, request: Request, run_id: str) -> Reply:
        if run_id not in self.runs:
            raise HttpError(404, f"Run {run_id} not found")
        run, script = self.runs[run_id], self._run_script[run_id]
        if script:
            run["state"] = script.pop(0) if len(script) > 1 else script[0]
            if run["state"] in TERMINAL_STATES:
                run["finished_at"] = CREATED_AT
            if run["state"] in ("FAILED", "CANCELED"):
                run["error"] = self.run_error
        return Reply(200, run)


def _display_name_filter(text: str) -> Optional[str]:
    """The string value of an EQUALS display_name predicate, as kfp.Client sends it; None for no filter."""
    if not text:
        return None
    predicates = json.loads(text).get("predicates", [])
    for predicate in predicates:
        if predicate.get("key") == "display_name" and predicate.get("operation") in ("EQUALS", 1):
            return predicate.get("string_value", predicate.get("stringValue"))
    raise HttpError(400, f"filter {text!r} is not supported by this stand-in")


def _uploaded_spec(request: Request) -> Dict[str, Any]:
    """The pipeline spec in the `uploadfile` field of a multipart/form-data upload."""
    header = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(header + request.raw)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "uploadfile":
            return yaml.safe_load(part.get_payload(decode=True))
    raise HttpError(400, "the upload has no uploadfile field")
