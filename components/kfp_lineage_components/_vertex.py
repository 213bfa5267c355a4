"""Vertex AI deployment behind the deploy_vertex component.

Request construction (init arguments, upload arguments, labels, the endpoint choice, resource URIs)
is pure and unit-tested; `deploy` is the only function that talks to Vertex AI, and it imports
google-cloud-aiplatform lazily so the rest of this module stays cheap to import.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, NamedTuple, Optional, Sequence

from kfp_lineage_components import _registry, _shared

_LABEL_MAX = 63
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
    """Arguments for aiplatform.init; a custom api_endpoint (fake server, private endpoint) implies REST."""
    kwargs: Dict[str, Any] = {"project": project, "location": location}
    if api_endpoint:
        kwargs.update(api_endpoint=api_endpoint, api_transport="rest")
    if staging_bucket:
        if not staging_bucket.startswith("gs://"):
            raise ValueError(f"staging_bucket {staging_bucket!r} is not a gs:// URI: use e.g. gs://my-bucket/staging")
        kwargs["staging_bucket"] = staging_bucket
    return kwargs


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
    import google.auth
    from google.auth import exceptions

    try:
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        return credentials
    except exceptions.DefaultCredentialsError:
        if api_endpoint:  # emulators and fake servers accept unauthenticated calls
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        raise RuntimeError(
            "no Google Cloud credentials found:"
            " run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from None


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
    `staging_bucket` (default: gs://<project>-vertex-staging-<location>, created if missing) with the
    Cloud Storage client, which honours STORAGE_EMULATOR_HOST.
    """
    check_target(project, location)
    if not endpoint_display_name.strip():
        raise ValueError("endpoint_display_name is empty: pass a name for the Vertex AI endpoint")
    sha256 = str(model_metadata.get("sha256", ""))
    labels = build_labels(pipeline_job_name, sha256)
    request = build_upload_request(model_display_name, serving_dir_uri, serving_image, labels, sha256, model_uri)
    settings = init_kwargs(project, location, api_endpoint, staging_bucket)
    stage_model(model_file, model_metadata, serving_dir)

    from google.api_core import exceptions as gexc
    from google.cloud import aiplatform

    step = "init"
    try:
        aiplatform.init(**settings, credentials=_credentials(api_endpoint))
        step = "model upload"
        uploaded = aiplatform.Model.upload(**request)
        step = "endpoint lookup"
        existing = aiplatform.Endpoint.list(filter=endpoint_list_filter(endpoint_display_name))
        candidates = [EndpointCandidate(e.resource_name, e.display_name, str(e.create_time or "")) for e in existing]
        chosen = choose_endpoint(candidates, endpoint_display_name)
        step = "endpoint create"
        endpoint = (
            aiplatform.Endpoint(chosen)
            if chosen
            else aiplatform.Endpoint.create(display_name=endpoint_display_name, labels=labels, sync=True)
        )
        step = "model deploy"
        endpoint.deploy(
            model=uploaded,
            deployed_model_display_name=model_display_name,
            machine_type=machine_type,
            traffic_percentage=100,
            min_replica_count=1,
            max_replica_count=1,
            sync=True,
        )
    except gexc.GoogleAPIError as exc:  # API errors and retry timeouts alike
        detail = _shared.first_line(exc)[:300]
        hint = f"check project {project!r}, location {location!r}, api_endpoint and permissions"
        if step == "model upload" and not serving_dir_uri.startswith("gs://"):
            hint += "; a local model directory is first copied to staging_bucket (or STORAGE_EMULATOR_HOST)"
        raise RuntimeError(f"Vertex AI {step} failed ({detail}): {hint}") from None

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
