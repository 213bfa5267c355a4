"""Submitting a compiled pipeline to Vertex AI Pipelines as an `aiplatform.PipelineJob`, and following the job.

Everything is checked offline before the first request (`build_pipeline_job` sends none), so a bad parameter
never reaches Vertex AI. The client always uses the REST transport, with or without a custom API endpoint, so
what the tests exercise against the stand-in is exactly what runs against Vertex AI.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
import time
from typing import Any, Callable, Dict, Mapping, Optional, Tuple


from kfp_lineage import errors
from kfp_lineage import run_ids
from kfp_lineage.ir import newer_fields
from kfp_lineage.ir import spec
from kfp_lineage.remote import submission as submit

TERMINAL_STATES = frozenset(
    {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED", "PIPELINE_STATE_PAUSED"}
)
DEFAULT_LABELS = {"submitted-by": "kfp-lineage"}
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"

_PROJECT = re.compile(r"^(?:[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{6,20}|[a-z0-9.-]+:[a-z][a-z0-9-]{4,28}[a-z0-9])$")
_LOCATION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_JOB_ID = re.compile(r"^[a-z][-a-z0-9]{0,127}$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_RETRYABLE_CODES = (429, 503)


@dataclasses.dataclass(frozen=True)
class VertexTarget:
    """Where, and as which service account, a pipeline job runs on Vertex AI."""

    project: str
    location: str
    pipeline_root: str
    api_endpoint: str = ""  # "" means https://<location>-aiplatform.googleapis.com
    service_account: str = ""  # "" means the project's default Compute Engine service account

    @property
    def endpoint_url(self) -> str:
        """The API's base URL, with its scheme."""
        host = self.api_endpoint or f"{self.location}-aiplatform.googleapis.com"
        return (host if "://" in host else f"https://{host}").rstrip("/")

    def console_url(self, job_id: str) -> str:
        """Where the job is shown in the Google Cloud console."""
        return (
            f"https://console.cloud.google.com/vertex-ai/locations/{self.location}/pipelines/runs/{job_id}"
            f"?project={self.project}"
        )


def check_target(target: VertexTarget) -> None:
    """Checks project, location, pipeline root, endpoint and service account offline.

    Raises:
        InvalidInputError: names the bad value and what to pass instead.
    """
    if not target.project:
        raise errors.InvalidInputError(
            "--project is required with --vertex: pass your Google Cloud project ID, e.g. --project my-project"
        )
    if not _PROJECT.match(target.project):
        raise errors.InvalidInputError(
            f"project {target.project!r} is not a Google Cloud project ID: pass the ID (e.g. my-project-123), "
            "not the display name"
        )
    if not _LOCATION.match(target.location):
        raise errors.InvalidInputError(
            f"location {target.location!r} is not a Vertex AI region: pass e.g. --location us-central1"
        )
    if not target.pipeline_root:
        raise errors.InvalidInputError(
            "--pipeline-root is required with --vertex: pass a gs:// directory the job may write, "
            "e.g. --pipeline-root gs://my-bucket/pipeline-root"
        )
    if not target.pipeline_root.startswith("gs://"):
        raise errors.InvalidInputError(
            f"pipeline root {target.pipeline_root!r} is not a gs:// URI: Vertex AI writes artifacts to Cloud Storage, "
            "pass e.g. --pipeline-root gs://my-bucket/pipeline-root"
        )
    bucket = target.pipeline_root[len("gs://"):].split("/", 1)[0]
    if not re.match(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", bucket):
        raise errors.InvalidInputError(
            f"pipeline root {target.pipeline_root!r} does not start with a bucket name: bucket names are 3 to 63 "
            "lowercase letters, digits, '-', '_' or '.', e.g. gs://my-bucket/pipeline-root"
        )
    if target.api_endpoint and not re.match(r"^(https?://)?[A-Za-z0-9.-]+(:[0-9]+)?/?$", target.api_endpoint):
        raise errors.InvalidInputError(
            f"API endpoint {target.api_endpoint!r} is not a host[:port] or http(s):// URL: "
            "pass e.g. --api-endpoint us-central1-aiplatform.googleapis.com"
        )
    if target.service_account and not re.match(r"^[^@\s]+@[^@\s]+\.iam\.gserviceaccount\.com$|^[^@\s]+@[^@\s]+$",
                                                target.service_account):
        raise errors.InvalidInputError(
            f"service account {target.service_account!r} is not an e-mail address: "
            "pass e.g. --service-account runner@my-project.iam.gserviceaccount.com"
        )


def check_labels(labels: Mapping[str, str]) -> None:
    """Checks labels against Google Cloud's rules.

    Raises:
        InvalidInputError: names the bad key or value.
    """
    for key, value in labels.items():
        if not _LABEL_KEY.match(key):
            raise errors.InvalidInputError(
                f"label key {key!r} is not allowed: use at most 63 lowercase letters, digits, '_' or '-', "
                "starting with a letter"
            )
        if not _LABEL_VALUE.match(value):
            raise errors.InvalidInputError(
                f"label value {value!r} (of {key}) is not allowed: use at most 63 lowercase letters, digits, '_' or '-'"
            )


def resolve_credentials(api_endpoint: str) -> Any:
    """The credentials to call Vertex AI with: none over plain http, else Application Default Credentials.

    A token is never sent over plain http (an emulator, a stand-in or a local proxy), so those get
    AnonymousCredentials; every other endpoint gets ADC with the cloud-platform scope.

    Raises:
        InvalidInputError: no Application Default Credentials are set up.
    """
    from google.auth import credentials as auth_credentials

    if api_endpoint.startswith("http://"):
        return auth_credentials.AnonymousCredentials()
    import google.auth
    from google.auth import exceptions as auth_exceptions

    try:
        credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    except auth_exceptions.DefaultCredentialsError:
        raise errors.InvalidInputError(
            "no Google Cloud credentials found: run `gcloud auth application-default login` "
            "or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file"
        ) from None
    return credentials


def new_job_id(pipeline_name: str) -> str:
    """`<pipeline name>-<UTC timestamp>-<6 hex digits>`, lowercased to what Vertex AI accepts as a job ID."""
    raw = run_ids.new_run_id(pipeline_name).lower()
    cleaned = re.sub(r"[^-a-z0-9]+", "-", raw).strip("-")
    if not cleaned[:1].isalpha():
        cleaned = "pipeline-" + cleaned
    return cleaned[:128]


def build_pipeline_job(
    loaded: spec.LoadedPipeline,
    arguments: Mapping[str, Any],
    target: VertexTarget,
    *,
    job_id: Optional[str] = None,
    enable_caching: Optional[bool] = None,
    labels: Optional[Mapping[str, str]] = None,
    credentials: Any = None,
) -> Any:
    """Builds the `aiplatform.PipelineJob` for a compiled pipeline, offline: no request is sent.

    Calls aiplatform.init with the target's project, location and endpoint (REST) and the credentials, as the
    SDK's Cloud Storage and Resource Manager calls read them from its global configuration.

    Args:
        loaded: the compiled pipeline (spec.load_pipeline).
        arguments: pipeline parameters; checked against the spec, strings converted to the declared types.
        target: project, location, pipeline root, endpoint and service account.
        job_id: the job's ID; None makes `<pipeline>-<UTC time>-<random>`.
        enable_caching: False turns caching off for every task, True on; None keeps the compiled settings.
        labels: labels for the job, added to {"submitted-by": "kfp-lineage"}.
        credentials: google-auth credentials (resolve_credentials); None means anonymous, enough to build.

    Returns:
        The PipelineJob, ready for submit_pipeline_job (or describe_create_request for a dry run).

    Raises:
        InvalidInputError: a bad target, parameter, job ID or label.
        UnsupportedFeatureError: the pipeline takes input artifacts.
    """
    check_target(target)
    values = submit.prepare_arguments(loaded, arguments)
    job_id = job_id or new_job_id(loaded.name)
    if not _JOB_ID.match(job_id):
        raise errors.InvalidInputError(
            f"job ID {job_id!r} is not allowed on Vertex AI: use lowercase letters, digits and '-', "
            "starting with a letter (at most 128)"
        )
    all_labels = {**DEFAULT_LABELS, **(labels or {})}
    check_labels(all_labels)

    from google.auth import credentials as auth_credentials
    from google.cloud import aiplatform

    credentials = credentials or auth_credentials.AnonymousCredentials()
    aiplatform.init(
        project=target.project,
        location=target.location,
        # Always explicit: aiplatform.init keeps an earlier call's endpoint when given None.
        api_endpoint=target.api_endpoint or f"{target.location}-aiplatform.googleapis.com",
        api_transport="rest",
        credentials=credentials,
    )
    with tempfile.TemporaryDirectory(prefix="kfp-lineage-submit-") as tmp:
        template = os.path.join(tmp, "pipeline.json")
        with open(template, "w", encoding="utf-8") as f:
            json.dump(newer_fields.to_dict(loaded.spec), f)
        try:
            return aiplatform.PipelineJob(
                display_name=loaded.name,
                template_path=template,
                job_id=job_id,
                pipeline_root=target.pipeline_root,
                parameter_values=values,
                enable_caching=enable_caching,
                labels=all_labels,
                credentials=credentials,
                project=target.project,
                location=target.location,
            )
        except ValueError as e:
            raise errors.InvalidInputError(f"cannot build the Vertex AI pipeline job: {submit.first_line(e)}") from None


def describe_create_request(job: Any, target: VertexTarget) -> Dict[str, Any]:
    """The request submit_pipeline_job would send, as JSON: method, URL and the PipelineJob body."""
    body = job.to_dict()  # the resource as the REST transport sends it: camelCase JSON, defaults left out
    if target.service_account:
        body["serviceAccount"] = target.service_account
    parent = f"projects/{target.project}/locations/{target.location}"
    return {
        "method": "POST",
        "url": f"{target.endpoint_url}/v1/{parent}/pipelineJobs?pipelineJobId={job.job_id}",
        "body": body,
    }


def submit_pipeline_job(
    job: Any,
    target: VertexTarget,
    *,
    retry: submit.RetryPolicy = submit.RetryPolicy(),
    timeout: float = submit.REQUEST_TIMEOUT,
) -> submit.RemoteRun:
    """Creates the pipeline job on Vertex AI; a 429 or 503 answer is retried with backoff.

    The SDK first makes sure the pipeline root's bucket exists (creating it and granting the service account
    access when missing), which asks Cloud Storage and Resource Manager.

    Returns:
        The created job, usually PIPELINE_STATE_PENDING.

    Raises:
        RemoteError: Vertex AI refused the job (the message carries its status and reason) or cannot be reached.
    """
    action = f"create pipeline job {job.job_id!r}"

    def create() -> None:
        job.submit(service_account=target.service_account or None, create_request_timeout=timeout)

    _call_vertex(create, action, target, retry)
    return _remote_run(job.gca_resource, target)


def wait_for_pipeline_job(
    job: Any,
    target: VertexTarget,
    *,
    poll_interval: float = 30.0,
    on_state: Optional[Callable[[submit.RemoteRun], None]] = None,
    retry: submit.RetryPolicy = submit.RetryPolicy(),
    timeout: float = submit.REQUEST_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
) -> submit.RemoteRun:
    """Polls the submitted job every `poll_interval` seconds until it succeeds, fails, is cancelled or paused.

    Returns:
        The job in its final state; `.succeeded` tells whether it succeeded, `.error` why not.

    Raises:
        RemoteError: a state request failed (after retries for 429 and 503).
    """
    action = f"get pipeline job {job.job_id!r}"

    def fetch() -> submit.RemoteRun:
        resource = _call_vertex(
            lambda: job.api_client.get_pipeline_job(name=job.resource_name, timeout=timeout), action, target, retry
        )
        return _remote_run(resource, target)

    return submit.follow_run(fetch, TERMINAL_STATES.__contains__, poll_interval, on_state, sleep)


def _remote_run(resource: Any, target: VertexTarget) -> submit.RemoteRun:
    job_id = resource.name.rsplit("/", 1)[-1]
    return submit.RemoteRun(
        backend="vertex",
        run_id=job_id,
        name=resource.name,
        url=target.console_url(job_id),
        state=resource.state.name,
        error=submit.first_line(resource.error.message) if resource.error.message else "",
    )


def _call_vertex(call: Callable[[], Any], action: str, target: VertexTarget, retry: submit.RetryPolicy) -> Any:
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions
    import requests

    def is_retryable(e: BaseException) -> bool:
        return isinstance(e, api_exceptions.GoogleAPICallError) and e.code in _RETRYABLE_CODES

    try:
        return submit.call_with_retry(call, is_retryable, retry)
    except api_exceptions.GoogleAPICallError as e:
        raise errors.RemoteError(_describe_api_error(e, action, target, retry)) from None
    except api_exceptions.RetryError as e:
        raise errors.RemoteError(
            f"Vertex AI could not {action}: {submit.first_line(e)}: check --api-endpoint and your network, then retry"
        ) from None
    except requests.exceptions.RequestException as e:
        raise errors.RemoteError(
            f"cannot reach Vertex AI at {target.endpoint_url} to {action} ({type(e).__name__}): "
            "check --api-endpoint and your network"
        ) from None
    except auth_exceptions.GoogleAuthError as e:
        raise errors.RemoteError(
            f"cannot authenticate to Vertex AI to {action} ({submit.first_line(e)}): "
            "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from None


def _describe_api_error(e: Any, action: str, target: VertexTarget, retry: submit.RetryPolicy) -> str:
    """One line: what failed, the status and the server's message, and what to do about it."""
    status, message = server_status_and_message(e)
    project = f"project {target.project!r}"
    hints = {
        400: "the request was rejected as invalid: check the parameters and the spec",
        401: "your credentials were refused: run `gcloud auth application-default login` "
        "or set GOOGLE_APPLICATION_CREDENTIALS",
        403: f"check that {project} is right and that your account has the Vertex AI User role "
        "(roles/aiplatform.user) in it",
        404: f"check {project}, location {target.location!r} and the API endpoint",
        409: "a job with this ID exists already: pass another --job-id",
        429: f"still rate-limited after {retry.attempts} attempts: wait a few minutes or ask for more quota "
        f"in {project}",
        503: f"Vertex AI was unavailable for {retry.attempts} attempts: retry later",
    }
    hint = hints.get(e.code, "check the project, location and API endpoint, then retry")
    return f"Vertex AI could not {action} ({e.code} {status}: {message}): {hint}"


def server_status_and_message(e: Any) -> Tuple[str, str]:
    """The status name and message Vertex AI sent, without the method and URL the client library adds."""
    status = e.grpc_status_code.name if e.grpc_status_code is not None else ""
    message = e.message
    response = getattr(e, "response", None)
    if response is not None:
        try:
            error = response.json()["error"]
            status, message = error.get("status") or status, error.get("message") or message
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    return status or "ERROR", submit.first_line(message)

