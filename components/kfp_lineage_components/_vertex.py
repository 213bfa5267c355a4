"""Vertex AI deployment behind the deploy_vertex component.

Request construction (init arguments, upload arguments, labels, the endpoint choice, resource URIs, error
messages) is pure and unit-tested; `deploy` is the only function that talks to Vertex AI, and it imports
google-cloud-aiplatform lazily so the rest of this module stays cheap to import. tests/pipelines/test_vertex_deploy.py
runs `deploy` with the real client libraries against loopback stand-ins of Vertex AI and Cloud Storage.
"""

import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Sequence, Tuple, TypeVar

from kfp_lineage_components import _registry, _shared

_LABEL_MAX = 63
# Seconds a single request (not the operation it starts) may take.
REQUEST_TIMEOUT = 60.0
# 429 (quota) and 503 (unavailable) answers are retried: at most this many attempts, waits doubling from 1 s.
RETRY_ATTEMPTS = 5
RETRY_INITIAL_DELAY = 1.0
RETRY_MAX_DELAY = 16.0
_RETRYABLE_CODES = (429, 503)
# The step name of errors Cloud Storage answers while Model.upload copies a local model directory.
STAGING_STEP = "model upload (staging the model in Cloud Storage)"
T = TypeVar("T")
_LOCATION = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
_PROJECT = re.compile(r"^[a-z0-9.:-]+$")


def check_target(project: str, location: str) -> None:
    """Raise a one-line ValueError unless project and location look like a Vertex AI project ID and region."""
    if not project.strip():
        raise ValueError(
            "project is empty: set the pipeline parameter project to your Google Cloud project ID"
            " to deploy to Vertex AI"
        )
    if not _PROJECT.match(project):
        raise ValueError(
            f"project {project!r} is not a Google Cloud project ID:"
            " use the ID (e.g. my-project-123), not the display name"
        )
    if not location.strip():
        raise ValueError(
            "location is empty: set the pipeline parameter location to a Vertex AI region, e.g. us-central1"
        )
    if not _LOCATION.match(location):
        raise ValueError(f"location {location!r} is not a Vertex AI region: use e.g. us-central1 or europe-west4")


def sanitize_label_value(text: str) -> str:
    """Fit text to GCP label value rules: at most 63 of lowercase letters, digits, '_' and '-'."""
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-")[:_LABEL_MAX]


def sanitize_label_key(text: str) -> str:
    """Fit text to GCP label key rules: like a value, but non-empty and starting with a lowercase letter."""
    key = sanitize_label_value(text)
    if not key[:1].isalpha():
        key = ("k-" + key)[:_LABEL_MAX].rstrip("-") or "k"
    return key


def build_labels(
    pipeline_job_name: str, model_sha256: str, extra: Optional[Mapping[str, str]] = None
) -> Dict[str, str]:
    """Labels tying Vertex resources to the run: managed-by, pipeline-job (when known), model-sha256-prefix.

    Label values hold at most 63 characters, so only a 16-hex-digit prefix of the digest fits as a
    label; the full digest goes into the model description and the output artifact's metadata.
    """
    labels = {"managed-by": "kfp-lineage", "model-sha256-prefix": model_sha256[:16]}
    run = sanitize_label_value(_shared.resolved_placeholder(pipeline_job_name))
    if run:
        labels["pipeline-job"] = run
    for key, value in (extra or {}).items():
        labels[sanitize_label_key(key)] = sanitize_label_value(value)
    return labels


def init_kwargs(project: str, location: str, api_endpoint: str = "", staging_bucket: str = "") -> Dict[str, Any]:
    """Arguments for aiplatform.init: always the REST transport and an explicit endpoint.

    REST with or without a custom endpoint (a private endpoint, a stand-in), so the tested path is the path
    that runs; the endpoint is always passed because aiplatform.init keeps an earlier call's when given None.
    """
    kwargs: Dict[str, Any] = {
        "project": project,
        "location": location,
        "api_endpoint": api_endpoint or f"{location}-aiplatform.googleapis.com",
        "api_transport": "rest",
    }
    if staging_bucket:
        if not staging_bucket.startswith("gs://"):
            raise ValueError(f"staging_bucket {staging_bucket!r} is not a gs:// URI: use e.g. gs://my-bucket/staging")
        kwargs["staging_bucket"] = staging_bucket
    return kwargs


def uses_anonymous_credentials(api_endpoint: str) -> bool:
    """True for a plain http:// endpoint (an emulator or stand-in): a token is never sent unencrypted."""
    return api_endpoint.startswith("http://")


def build_upload_request(
    display_name: str,
    artifact_uri: str,
    serving_image: str,
    labels: Mapping[str, str],
    model_sha256: str,
    source_model_uri: str,
) -> Dict[str, Any]:
    """Keyword arguments for aiplatform.Model.upload."""
    if not display_name.strip():
        raise ValueError(
            "model_display_name is empty: pass a name for the Vertex AI model, e.g. the pipeline's model_name"
        )
    if not serving_image.strip():
        raise ValueError(
            "serving_image is empty: pass a serving container image URI, e.g. a Vertex AI prebuilt scikit-learn image"
        )
    return {
        "display_name": display_name,
        "artifact_uri": artifact_uri,
        "serving_container_image_uri": serving_image,
        "labels": dict(labels),
        "description": f"Uploaded by kfp-lineage from {source_model_uri} (sha256 {model_sha256}).",
        "sync": True,
    }


class EndpointCandidate(NamedTuple):
    """The fields of an existing Vertex AI endpoint that the reuse decision looks at."""

    resource_name: str
    display_name: str
    create_time: str  # any sortable rendering, e.g. ISO-8601; "" when unknown


def choose_endpoint(candidates: Sequence[EndpointCandidate], display_name: str) -> Optional[str]:
    """Resource name of the endpoint to reuse, or None to create one.

    Only exact display-name matches count (a list filter is not trusted to be exact); among several,
    the newest wins, ties broken by resource name, so the choice is deterministic.
    """
    matches = [c for c in candidates if c.display_name == display_name]
    if not matches:
        return None
    return max(matches, key=lambda c: (c.create_time, c.resource_name)).resource_name


def endpoint_list_filter(display_name: str) -> str:
    """Server-side filter for endpoints with this display name."""
    escaped = display_name.replace("\\", "\\\\").replace('"', '\\"')
    return f'display_name="{escaped}"'


def resource_uri(resource_name: str, location: str, api_endpoint: str = "") -> str:
    """The https URI GCPC artifacts use for a Vertex AI resource (e.g. projects/p/locations/l/models/1)."""
    host = api_endpoint or f"{location}-aiplatform.googleapis.com"
    if "://" not in host:
        host = f"https://{host}"
    return f"{host.rstrip('/')}/v1/{resource_name}"


@dataclass(frozen=True)
class VertexDeployment:
    """Metadata for the vertex_model and vertex_endpoint outputs, and their URIs."""

    model_uri: str
    model_metadata: Dict[str, Any]
    endpoint_uri: str
    endpoint_metadata: Dict[str, Any]


def stage_model(model_file: str, model_metadata: Mapping[str, Any], serving_dir: str) -> Path:
    """Copy the verified model to <serving_dir>/model.joblib, the file name prebuilt serving images load.

    Model.upload with a prebuilt image insists on a directory holding such a file; the train
    component's output is a single file named after the output ("model"), so it cannot be used as is.
    """
    destination = Path(serving_dir) / _registry.MODEL_FILE
    _shared.copy_verified(model_file, destination, model_metadata.get("sha256"), "model")
    return destination


def _credentials(api_endpoint: str) -> Any:
    if uses_anonymous_credentials(api_endpoint):
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    import google.auth
    from google.auth import exceptions

    try:
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        return credentials
    except exceptions.DefaultCredentialsError:
        raise RuntimeError(
            "no Google Cloud credentials found:"
            " run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from None


def retry_delays(attempts: int = RETRY_ATTEMPTS) -> Sequence[float]:
    """The waits before the 2nd, 3rd, ... attempt: doubling from RETRY_INITIAL_DELAY, capped, jittered down."""
    return [
        min(RETRY_INITIAL_DELAY * 2**n, RETRY_MAX_DELAY) * random.uniform(0.5, 1.0) for n in range(attempts - 1)
    ]


def call_with_retry(
    call: Callable[[], T], is_retryable: Callable[[BaseException], bool], sleep: Callable[[float], None] = time.sleep
) -> T:
    """Call, retrying while it raises a retryable error, at most RETRY_ATTEMPTS times; then re-raise."""
    for delay in retry_delays():
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - is_retryable decides
            if not is_retryable(exc):
                raise
        sleep(delay)
    return call()


def describe_api_error(
    step: str, code: Optional[int], status: str, message: str, project: str, location: str, staging_bucket: str = ""
) -> str:
    """One line for a failed Vertex AI (or Cloud Storage) call: the step, the server's answer, and the fix."""
    answer = " ".join(str(part) for part in (code, status) if part)
    if step == STAGING_STEP:
        bucket = staging_bucket or "the staging bucket"
        staging_hints = {
            403: f"check that the account deploying may create objects in {bucket} (roles/storage.objectCreator)",
            404: f"{bucket} does not exist: create it, or pass another staging_bucket",
        }
        hint = staging_hints.get(code or 0, f"check {bucket} and STORAGE_EMULATOR_HOST, then retry")
        return f"Vertex AI {step} failed ({answer}: {message}): {hint}"
    hints = {
        401: "the credentials were refused: run `gcloud auth application-default login`"
        " or set GOOGLE_APPLICATION_CREDENTIALS",
        403: f"check that project {project!r} is right and that the account deploying has the Vertex AI User"
        " role (roles/aiplatform.user) there",
        404: f"check project {project!r}, location {location!r} and api_endpoint",
        429: f"still rate-limited after {RETRY_ATTEMPTS} attempts: retry later or ask for more quota",
        503: f"Vertex AI was unavailable for {RETRY_ATTEMPTS} attempts: retry later",
    }
    hint = hints.get(code or 0, f"check project {project!r}, location {location!r}, api_endpoint and permissions")
    return f"Vertex AI {step} failed ({answer}: {message}): {hint}"


def _api_error_parts(exc: Any) -> Tuple[Optional[int], str, str]:
    """HTTP code, status name and server message of a google-api-core error (REST or gRPC)."""
    code = getattr(exc, "code", None)
    status = exc.grpc_status_code.name if getattr(exc, "grpc_status_code", None) is not None else ""
    message = getattr(exc, "message", "") or str(exc)
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            error = response.json()["error"]
            status, message = error.get("status") or status, error.get("message") or message
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    text = str(message).strip()
    # int(): on Python 3.10 an HTTPStatus formats as "HTTPStatus.NOT_FOUND", not "404".
    return (int(code) if isinstance(code, int) else None), status, (text.splitlines()[0] if text else type(exc).__name__)


def _request_url(exc: Any) -> str:
    """The URL of the HTTP request an API error answered ("" for gRPC errors)."""
    request = getattr(getattr(exc, "response", None), "request", None)
    return str(getattr(request, "url", "") or "")


def deploy(
    model_file: str,
    model_metadata: Mapping[str, Any],
    model_uri: str,
    serving_dir: str,
    serving_dir_uri: str,
    project: str,
    location: str,
    model_display_name: str,
    endpoint_display_name: str,
    serving_image: str,
    machine_type: str,
    api_endpoint: str,
    deployed_by: str,
    pipeline_job_name: str = "",
    staging_bucket: str = "",
) -> VertexDeployment:
    """Upload the model to Vertex AI, create or reuse the endpoint by display name, and route 100% traffic to it.

    `serving_dir`/`serving_dir_uri` are the local path and URI of a directory this task owns (the
    vertex_model output's location); the model is copied there as model.joblib and uploaded from it.
    When that URI is not gs:// (a local pipeline root), the SDK first copies the directory to
    `staging_bucket` with the Cloud Storage client, which honours STORAGE_EMULATOR_HOST; without one, the
    SDK creates a new bucket gs://<project>-vertex-staging-<location>-<random> in the project each time.
    A 429 or 503 answer is retried with backoff (RETRY_ATTEMPTS in all); any other error is one line.
    """
    check_target(project, location)
    if not endpoint_display_name.strip():
        raise ValueError("endpoint_display_name is empty: pass a name for the Vertex AI endpoint")
    sha256 = str(model_metadata.get("sha256", ""))
    labels = build_labels(pipeline_job_name, sha256)
    request = build_upload_request(model_display_name, serving_dir_uri, serving_image, labels, sha256, model_uri)
    settings = init_kwargs(project, location, api_endpoint, staging_bucket)
    stage_model(model_file, model_metadata, serving_dir)

    import requests
    from google.api_core import exceptions as gexc
    from google.cloud import aiplatform

    def is_retryable(exc: BaseException) -> bool:
        return isinstance(exc, gexc.GoogleAPICallError) and exc.code in _RETRYABLE_CODES

    step = "init"
    try:
        aiplatform.init(**settings, credentials=_credentials(api_endpoint))
        step = "model upload"
        uploaded = call_with_retry(
            lambda: aiplatform.Model.upload(**request, upload_request_timeout=REQUEST_TIMEOUT), is_retryable
        )
        step = "endpoint lookup"
        existing = call_with_retry(
            lambda: aiplatform.Endpoint.list(filter=endpoint_list_filter(endpoint_display_name)), is_retryable
        )
        candidates = [EndpointCandidate(e.resource_name, e.display_name, str(e.create_time or "")) for e in existing]
        chosen = choose_endpoint(candidates, endpoint_display_name)
        step = "endpoint create"
        endpoint = call_with_retry(
            lambda: aiplatform.Endpoint(chosen)
            if chosen
            else aiplatform.Endpoint.create(
                display_name=endpoint_display_name, labels=labels, sync=True, create_request_timeout=REQUEST_TIMEOUT
            ),
            is_retryable,
        )
        step = "model deploy"
        call_with_retry(
            lambda: endpoint.deploy(
                model=uploaded,
                deployed_model_display_name=model_display_name,
                machine_type=machine_type,
                traffic_percentage=100,
                min_replica_count=1,
                max_replica_count=1,
                sync=True,
                deploy_request_timeout=REQUEST_TIMEOUT,
            ),
            is_retryable,
        )
    except gexc.GoogleAPICallError as exc:  # Vertex AI and Cloud Storage answers alike
        code, status, detail = _api_error_parts(exc)
        if step == "model upload" and "/storage/v1/" in _request_url(exc):
            step = STAGING_STEP
        raise RuntimeError(
            describe_api_error(step, code, status, detail[:300], project, location, staging_bucket)
        ) from None
    except requests.exceptions.RequestException as exc:
        raise RuntimeError(
            f"Vertex AI {step} failed: cannot reach {settings['api_endpoint']} ({type(exc).__name__}):"
            " check api_endpoint and your network"
        ) from None
    except gexc.GoogleAPIError as exc:  # retry timeouts and the like
        raise RuntimeError(
            f"Vertex AI {step} failed ({_shared.first_line(exc)[:300]}):"
            f" check project {project!r}, location {location!r}, api_endpoint and your network"
        ) from None

    deployed_at = _shared.utc_now_iso()
    common = {
        "deployed_by": deployed_by,
        "deployed_at": deployed_at,
        "pipeline_job_name": _shared.resolved_placeholder(pipeline_job_name),
    }
    return VertexDeployment(
        model_uri=resource_uri(uploaded.resource_name, location, api_endpoint),
        model_metadata=_shared.json_ready(
            {
                "resourceName": uploaded.resource_name,
                "displayName": model_display_name,
                "artifact_uri": uploaded.uri or serving_dir_uri,
                "serving_image": serving_image,
                "model_sha256": sha256,
                "labels": labels,
                **common,
            }
        ),
        endpoint_uri=resource_uri(endpoint.resource_name, location, api_endpoint),
        endpoint_metadata=_shared.json_ready(
            {
                "resourceName": endpoint.resource_name,
                "displayName": endpoint_display_name,
                "target": "vertex",
                "endpoint_created": chosen is None,
                "model_resource_name": uploaded.resource_name,
                "machine_type": machine_type,
                "traffic_percentage": 100,
                "model_sha256": sha256,
                **common,
            }
        ),
    )
