"""Reading one Vertex AI Pipelines run's lineage from Vertex ML Metadata, so every read command and `check` work on it.

A run is named by its pipeline job (`projects/P/locations/L/pipelineJobs/JOB`, as `submit --vertex` prints it) and
read with google-cloud-aiplatform's v1 clients over REST:

1. PipelineService.GetPipelineJob: the task tree (task names, parents, states, the input and output names of each
   task's artifacts) and the run's `system.PipelineRun` context.
2. MetadataService.QueryContextLineageSubgraph on that context: its executions, artifacts and events. Vertex refuses
   it (FAILED_PRECONDITION) past 1,000 artifacts, executions or events; then the executions are listed page by page
   (ListExecutions with an `in_context(...)` filter, 1,000 a page) and each execution's artifacts and events read
   with QueryExecutionInputsAndOutputs, a few at a time.

vertex_mapping.py turns what was read into an ml-metadata store in the KFP backend's vocabulary (docs/vertex-lineage.md
has the mapping). Every call has a deadline and no open-ended retry: a wrong project, a missing job or an unreachable
endpoint is a one-line StoreError (exit 2).
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from concurrent import futures
from typing import Any, Callable, Dict, Optional, TypeVar

from ml_metadata.metadata_store import metadata_store

from kfp_lineage import errors
from kfp_lineage.remote import submission
from kfp_lineage.remote import vertex as remote_vertex
from kfp_lineage.remote import vertex_mapping

T = TypeVar("T")

SCHEME = "vertex"
DEFAULT_TIMEOUT = 30.0
PAGE_SIZE = 1000  # the most ListExecutions returns in one page
SUBGRAPH_LIMIT = 1000  # QueryContextLineageSubgraph's limit on artifacts, executions and events
PARALLEL_READS = 8  # QueryExecutionInputsAndOutputs calls in flight at once on a run past the subgraph limit
RETRY = submission.RetryPolicy(attempts=4, initial_delay=1.0, max_delay=8.0)
_JOB_NAME = re.compile(r"^projects/(?P<project>[^/\s]+)/locations/(?P<location>[^/\s]+)/pipelineJobs/(?P<job>[^/\s]+)$")
_JOB_FORM = "projects/PROJECT/locations/REGION/pipelineJobs/JOB"
_RETRYABLE_CODES = (429, 503)


@dataclasses.dataclass(frozen=True)
class VertexRunURL:
    """A Vertex AI pipeline job to read, as `vertex://projects/P/locations/L/pipelineJobs/JOB[?endpoint=&timeout=]`.

    It stands where a store URL stands (`--store`, what `check` reports), and `str()` is that URL.
    """

    project: str
    location: str
    job_id: str
    api_endpoint: str = ""  # "" means https://<location>-aiplatform.googleapis.com
    timeout: float = DEFAULT_TIMEOUT
    scheme: str = SCHEME
    password: str = ""  # never set: the store-URL interface callers print or redact

    @property
    def job_name(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/pipelineJobs/{self.job_id}"

    @property
    def endpoint_url(self) -> str:
        host = self.api_endpoint or f"{self.location}-aiplatform.googleapis.com"
        return (host if "://" in host else f"https://{host}").rstrip("/")

    @property
    def redacted(self) -> str:
        options = {}
        if self.api_endpoint:
            options["endpoint"] = self.api_endpoint
        if self.timeout != DEFAULT_TIMEOUT:
            options["timeout"] = f"{self.timeout:g}"
        query = f"?{urllib.parse.urlencode(options, safe=':/')}" if options else ""
        return f"{SCHEME}://{self.job_name}{query}"

    def __str__(self) -> str:
        return self.redacted


def parse_vertex_run(text: str, api_endpoint: str = "", timeout: Optional[float] = None) -> vertex_mapping.VertexRunURL:
    """Parses `projects/P/locations/L/pipelineJobs/JOB` or `vertex://` + that, with optional `?endpoint=&timeout=`.

    Args:
        text: the pipeline job's resource name (what `submit --vertex` and the Vertex AI SDK print), or a
            vertex:// URL.
        api_endpoint: a custom Vertex AI endpoint (a private endpoint, or http:// for an emulator).
        timeout: seconds each call may take; None keeps the URL's or DEFAULT_TIMEOUT.

    Raises:
        StoreError: the text is not a pipeline job name, or an option is unknown or bad.
    """
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    name, _, query = text[len(SCHEME) + 3:].partition("?") if text.startswith(f"{SCHEME}://") else (text, "", "")
    match = _JOB_NAME.match(name.strip("/"))
    if not match:
        raise errors.StoreError(
            f"{shown} is not a Vertex AI pipeline job: pass {_JOB_FORM}, as `kfp-lineage submit --vertex` "
            "and the Vertex AI SDK print it")
    options = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - {"endpoint", "timeout"})
    if unknown:
        raise errors.StoreError(f"{shown} has an unknown option {unknown[0]!r}: the options are endpoint and timeout")
    endpoint = api_endpoint or options.get("endpoint", "")
    if endpoint and not re.match(r"^(https?://)?[A-Za-z0-9.-]+(:[0-9]+)?/?$", endpoint):
        raise errors.StoreError(
            f"API endpoint {endpoint!r} is not a host[:port] or http(s):// URL: "
            "pass e.g. --api-endpoint us-central1-aiplatform.googleapis.com")
    if timeout is None:
        try:
            timeout = float(options.get("timeout", DEFAULT_TIMEOUT))
        except ValueError:
            timeout = -1.0
    if not 0 < timeout <= 3600:
        raise errors.StoreError(f"{shown}: timeout must be from 0 to 3600 seconds, e.g. timeout=60")
    return VertexRunURL(project=match["project"], location=match["location"], job_id=match["job"],
                        api_endpoint=endpoint, timeout=timeout)


def open_vertex_run(url: vertex_mapping.VertexRunURL, credentials: Any = None) -> metadata_store.MetadataStore:
    """Reads the job's lineage from Vertex AI and returns it as a read-only ml-metadata store in the KFP backend's
    vocabulary, holding this one run (its run id is the job ID; `latest` names it too).

    Args:
        url: the job to read.
        credentials: google-auth credentials; None resolves them (anonymous over http://, else Application
            Default Credentials).

    Raises:
        StoreError: bad credentials, an unreachable endpoint, a wrong project or location, a missing job, or a
            refused call; one line each.
    """

    return vertex_mapping.load_vertex_run(read_vertex_run(url, credentials))


def read_vertex_run(url: vertex_mapping.VertexRunURL, credentials: Any = None, page_size: int = PAGE_SIZE) -> vertex_mapping.VertexRun:
    """Reads the job and its run context's lineage subgraph (paged past the 1,000-node limit).

    Args:
        url: the job to read.
        credentials: see open_vertex_run.
        page_size: executions per ListExecutions page, when the subgraph is too large for one query.

    Raises:
        StoreError: see open_vertex_run.
    """
    from google.api_core import client_options
    from google.cloud import aiplatform_v1


    if credentials is None:
        try:
            credentials = remote_vertex.resolve_credentials(url.api_endpoint)
        except errors.InvalidInputError as e:
            raise errors.StoreError(str(e)) from None
    options = client_options.ClientOptions(api_endpoint=url.endpoint_url)
    pipelines = aiplatform_v1.PipelineServiceClient(credentials=credentials, transport="rest", client_options=options)
    metadata = aiplatform_v1.MetadataServiceClient(credentials=credentials, transport="rest", client_options=options)
    call = _Caller(url)
    job = call(f"get pipeline job {url.job_name}",
               lambda: pipelines.get_pipeline_job(name=url.job_name, retry=None, timeout=url.timeout))
    context = job.job_detail.pipeline_run_context.name
    if not context:
        raise errors.StoreError(
            f"pipeline job {url.job_name} has no ML Metadata run context yet ({job.state.name}): "
            "Vertex AI creates it when the job starts; read it once it runs")
    try:
        subgraph = call(f"query the lineage of {context}", lambda: metadata.query_context_lineage_subgraph(
            context=context, retry=None, timeout=url.timeout), tolerate_precondition=True)
    except _TooLarge:
        return _read_page_by_page(job, context, metadata, call, url.timeout, page_size)
    return vertex_mapping.VertexRun(job=job, artifacts={a.name: a for a in subgraph.artifacts},
                     executions={e.name: e for e in subgraph.executions}, events=list(subgraph.events))


def _read_page_by_page(job: Any, context: str, metadata: Any, call: "_Caller", timeout: float,
                       page_size: int) -> vertex_mapping.VertexRun:
    """The subgraph of a context past the 1,000-node limit: executions page by page, then each one's artifacts and
    events (QueryExecutionInputsAndOutputs; Vertex has no call that lists the events of many executions)."""
    from google.cloud import aiplatform_v1

    store_name = context.split("/contexts/", 1)[0]
    executions: Dict[str, Any] = {}
    token = ""
    while True:
        request = aiplatform_v1.ListExecutionsRequest(
            parent=store_name, filter=f'in_context("{context}")', page_size=page_size, page_token=token)
        page = call(f"list the executions of {context}", lambda: next(iter(metadata.list_executions(
            request=request, retry=None, timeout=timeout).pages)))
        executions.update((e.name, e) for e in page.executions)
        token = page.next_page_token
        if not token:
            break
    artifacts: Dict[str, Any] = {}
    events: Dict[tuple, Any] = {}

    def read(name: str) -> Any:
        return call(f"query the inputs and outputs of {name}", lambda: metadata.query_execution_inputs_and_outputs(
            execution=name, retry=None, timeout=timeout))

    with futures.ThreadPoolExecutor(PARALLEL_READS, thread_name_prefix="vertex-metadata") as pool:
        for subgraph in pool.map(read, sorted(executions)):
            artifacts.update((a.name, a) for a in subgraph.artifacts)
            events.update(((e.artifact, e.execution, int(e.type_)), e) for e in subgraph.events)
    return vertex_mapping.VertexRun(job=job, artifacts=artifacts, executions=executions, events=list(events.values()), paged=True)


class _TooLarge(Exception):
    """QueryContextLineageSubgraph refused the context: more than 1,000 artifacts, executions or events."""


class _Caller:
    """Makes one Vertex AI call with bounded retries (429, 503) and turns every failure into one StoreError line."""

    def __init__(self, url: vertex_mapping.VertexRunURL):
        self.url = url

    def __call__(self, action: str, call: Callable[[], T], tolerate_precondition: bool = False) -> T:
        from google.api_core import exceptions as api_exceptions
        from google.auth import exceptions as auth_exceptions
        import requests

        def is_retryable(e: BaseException) -> bool:
            return isinstance(e, api_exceptions.GoogleAPICallError) and e.code in _RETRYABLE_CODES

        try:
            return submission.call_with_retry(call, is_retryable, RETRY)
        except api_exceptions.GoogleAPICallError as e:
            status, message = remote_vertex.server_status_and_message(e)
            if tolerate_precondition and status == "FAILED_PRECONDITION":
                raise _TooLarge() from None
            raise errors.StoreError(self._describe(action, e.code, status, message)) from None
        except requests.exceptions.Timeout:
            raise errors.StoreError(
                f"Vertex AI did not answer within {self.url.timeout:g} s to {action} ({self.url.endpoint_url}): "
                "check your network and --api-endpoint, then retry") from None
        except requests.exceptions.RequestException as e:
            raise errors.StoreError(
                f"cannot reach Vertex AI at {self.url.endpoint_url} to {action} ({type(e).__name__}): "
                "check --api-endpoint and your network") from None
        except auth_exceptions.GoogleAuthError as e:
            raise errors.StoreError(
                f"cannot authenticate to Vertex AI to {action} ({submission.first_line(e)}): "
                "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS") from None

    def _describe(self, action: str, code: Any, status: str, message: str) -> str:
        url = self.url
        hints = {
            401: "your credentials were refused: run `gcloud auth application-default login`",
            403: f"check that project {url.project!r} is right and that your account may read Vertex AI in it "
                 "(roles/aiplatform.viewer)",
            404: f"check the job ID, project {url.project!r} and location {url.location!r} "
                 "(`kfp-lineage submit --vertex` prints the job's name)",
            429: f"still rate-limited after {RETRY.attempts} attempts: wait a few minutes, then retry",
            503: f"Vertex AI was unavailable for {RETRY.attempts} attempts: retry later",
        }
        hint = hints.get(code, "check the job name and the API endpoint, then retry")
        return f"Vertex AI could not {action} ({code} {status}: {message}): {hint}"


