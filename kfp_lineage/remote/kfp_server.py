"""Submitting a compiled pipeline to a Kubeflow Pipelines server with `kfp.Client`, and following the run.

Parameters are checked offline first; every client call runs under a deadline (kfp.Client takes no timeout),
and a 429 or 503 answer is retried with backoff.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import re
import sys
import tempfile
import time
import warnings
from typing import Any, Callable, Dict, Iterator, Mapping, Optional

from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage import errors
from kfp_lineage import run_ids
from kfp_lineage.ir import newer_fields
from kfp_lineage.ir import spec
from kfp_lineage.remote import submission as submit

TERMINAL_STATES = frozenset({"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"})
DEFAULT_EXPERIMENT = "Default"
_RETRYABLE_STATUSES = (429, 503)


@dataclasses.dataclass(frozen=True)
class KfpTarget:
    """A Kubeflow Pipelines API server, and how runs are filed and run there."""

    host: str  # e.g. http://localhost:8080 (a port-forward) or https://kubeflow.example.com/pipeline
    experiment: str = DEFAULT_EXPERIMENT  # created when missing
    namespace: str = ""  # the profile namespace on a multi-user deployment
    token: str = ""  # a bearer token, for deployments behind an authenticating proxy
    pipeline_root: str = ""  # "" means the server's default
    service_account: str = ""  # a Kubernetes service account; "" means the server's default

    @property
    def base_url(self) -> str:
        return self.host.rstrip("/")

    def run_url(self, run_id: str) -> str:
        """Where the run is shown in the KFP UI."""
        return f"{self.base_url}/#/runs/details/{run_id}"


def check_target(target: KfpTarget) -> None:
    """Checks the host and experiment offline.

    Raises:
        InvalidInputError: names the bad value and what to pass instead.
    """
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", target.host):
        raise errors.InvalidInputError(
            f"KFP host {target.host!r} is not an http(s):// URL: pass e.g. --kfp-host http://localhost:8080"
        )
    if not target.experiment.strip():
        raise errors.InvalidInputError("experiment name is empty: pass e.g. --experiment training")


def new_run_name(pipeline_name: str) -> str:
    """`<pipeline name>-<UTC timestamp>-<6 hex digits>`, like a local run's id."""
    return run_ids.new_run_id(pipeline_name)


def describe_run_request(
    loaded: spec.LoadedPipeline,
    arguments: Mapping[str, Any],
    target: KfpTarget,
    *,
    run_name: str,
    enable_caching: Optional[bool] = None,
    upload: bool = False,
) -> Dict[str, Any]:
    """The run-creation request submit_run sends, offline; the experiment's ID is looked up (or created) first.

    With `upload`, the spec is uploaded first (as pipeline `pipelineInfo.name`, or as version `run_name` of it
    when it exists) and the run names that version instead of carrying the spec.

    Raises:
        InvalidInputError: a bad host, experiment or parameter, or caching options with `upload`.
    """
    check_target(target)
    check_upload(upload, enable_caching)
    values = submit.prepare_arguments(loaded, arguments)
    runtime_config: Dict[str, Any] = {"parameters": values}
    if target.pipeline_root:
        runtime_config["pipeline_root"] = target.pipeline_root
    body: Dict[str, Any] = {"display_name": run_name, "runtime_config": runtime_config}
    if not upload:
        body["pipeline_spec"] = newer_fields.to_dict(_with_caching(loaded.spec, enable_caching))
    if target.service_account:
        body["service_account"] = target.service_account
    request: Dict[str, Any] = {
        "method": "POST",
        "url": f"{target.base_url}/apis/v2beta1/runs",
        "experiment": target.experiment,
        "body": body,
    }
    if upload:
        request["upload"] = {"pipeline": loaded.name, "version": run_name,
                             "url": f"{target.base_url}/apis/v2beta1/pipelines/upload (or upload_version)"}
    return request


def check_upload(upload: bool, enable_caching: Optional[bool]) -> None:
    """A run of an uploaded version takes the version's caching settings: refuse an override that would be lost.

    Raises:
        InvalidInputError: caching options with `upload`.
    """
    if upload and enable_caching is not None:
        raise errors.InvalidInputError(
            "--no-cache cannot change an uploaded pipeline version: drop --no-cache, or submit without --upload"
        )


def connect(target: KfpTarget, *, timeout: float = submit.REQUEST_TIMEOUT) -> Any:
    """A `kfp.Client` for the server (which asks its health endpoint on a single-user deployment).

    Raises:
        InvalidInputError: a bad host.
        RemoteError: the server cannot be reached or refused the client.
    """
    check_target(target)
    import kfp

    def make() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "This client only works with KFP v2.0.0-beta.2 and later"
            return kfp.Client(
                host=target.base_url,
                existing_token=target.token or None,
                namespace=target.namespace or "kubeflow",
            )

    return _call_kfp(make, "check its health", target, submit.RetryPolicy(attempts=1), timeout)


def submit_run(
    client: Any,
    loaded: spec.LoadedPipeline,
    arguments: Mapping[str, Any],
    target: KfpTarget,
    *,
    run_name: str,
    enable_caching: Optional[bool] = None,
    retry: submit.RetryPolicy = submit.RetryPolicy(),
    timeout: float = submit.REQUEST_TIMEOUT,
) -> submit.RemoteRun:
    """Files the run in the target's experiment (created when missing) with create_run_from_pipeline_package.

    Returns:
        The created run, usually PENDING.

    Raises:
        InvalidInputError: a bad parameter (checked before any request).
        RemoteError: the server refused the run or did not answer.
    """
    values = submit.prepare_arguments(loaded, arguments)
    with _spec_file(loaded) as path:

        def create() -> Any:
            return client.create_run_from_pipeline_package(
                path,
                arguments=values,
                run_name=run_name,
                experiment_name=target.experiment,
                namespace=target.namespace or None,
                pipeline_root=target.pipeline_root or None,
                enable_caching=enable_caching,
                service_account=target.service_account or None,
            )

        result = _call_kfp(create, f"create run {run_name!r}", target, retry, timeout)
    return _remote_run(result.run_info, target)


def upload_and_run(
    client: Any,
    loaded: spec.LoadedPipeline,
    arguments: Mapping[str, Any],
    target: KfpTarget,
    *,
    run_name: str,
    retry: submit.RetryPolicy = submit.RetryPolicy(),
    timeout: float = submit.REQUEST_TIMEOUT,
) -> submit.RemoteRun:
    """Uploads the spec as pipeline `pipelineInfo.name` (as version `run_name` when it exists) and runs that version.

    Returns:
        The created run, usually PENDING.

    Raises:
        InvalidInputError: a bad parameter (checked before any request).
        RemoteError: the server refused the upload or the run, or did not answer.
    """
    values = submit.prepare_arguments(loaded, arguments)
    namespace = target.namespace or None

    def call(function: Callable[[], Any], action: str) -> Any:
        return _call_kfp(function, action, target, retry, timeout)

    with _spec_file(loaded) as path:
        pipeline_id = call(lambda: client.get_pipeline_id(loaded.name), f"look up pipeline {loaded.name!r}")
        if pipeline_id is None:
            pipeline = call(lambda: client.upload_pipeline(path, pipeline_name=loaded.name, namespace=namespace),
                            f"upload pipeline {loaded.name!r}")
            pipeline_id = pipeline.pipeline_id
            versions = call(lambda: client.list_pipeline_versions(pipeline_id, page_size=1, sort_by="created_at desc"),
                            f"list the versions of pipeline {loaded.name!r}")
            version_id = versions.pipeline_versions[0].pipeline_version_id
        else:
            version = call(lambda: client.upload_pipeline_version(path, run_name, pipeline_id=pipeline_id),
                           f"upload version {run_name!r} of pipeline {loaded.name!r}")
            version_id = version.pipeline_version_id
    experiment = call(lambda: client.create_experiment(target.experiment, namespace=namespace),
                      f"get or create experiment {target.experiment!r}")
    response = call(
        lambda: client.run_pipeline(
            experiment.experiment_id,
            run_name,
            params=values,
            pipeline_id=pipeline_id,
            version_id=version_id,
            pipeline_root=target.pipeline_root or None,
            service_account=target.service_account or None,
        ),
        f"create run {run_name!r}",
    )
    return _remote_run(response, target)


def wait_for_run(
    client: Any,
    run: submit.RemoteRun,
    target: KfpTarget,
    *,
    poll_interval: float = 30.0,
    on_state: Optional[Callable[[submit.RemoteRun], None]] = None,
    retry: submit.RetryPolicy = submit.RetryPolicy(),
    timeout: float = submit.REQUEST_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
) -> submit.RemoteRun:
    """Polls the run every `poll_interval` seconds until it succeeded, failed, was skipped or canceled.

    Raises:
        RemoteError: a state request failed (after retries for 429 and 503) or did not answer.
    """
    action = f"get run {run.run_id!r}"

    def fetch() -> submit.RemoteRun:
        return _remote_run(_call_kfp(lambda: client.get_run(run.run_id), action, target, retry, timeout), target)

    return submit.follow_run(fetch, TERMINAL_STATES.__contains__, poll_interval, on_state, sleep)


def _with_caching(pipeline: pipeline_spec_pb2.PipelineSpec, enable_caching: Optional[bool]):
    """The spec kfp.Client sends: with enable_caching set, every root-DAG task's cache setting overridden."""
    if enable_caching is None:
        return pipeline
    changed = copy.deepcopy(pipeline)
    for task in changed.root.dag.tasks.values():
        task.caching_options.enable_cache = enable_caching
    return changed


@contextlib.contextmanager
def _spec_file(loaded: spec.LoadedPipeline) -> Iterator[str]:
    """The compiled spec as a YAML file for kfp.Client, whatever it was loaded from."""
    with tempfile.TemporaryDirectory(prefix="kfp-lineage-submit-") as tmp:
        path = os.path.join(tmp, "pipeline.yaml")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(newer_fields.to_dict(loaded.spec), f)  # JSON is YAML
        yield path


def _remote_run(response: Any, target: KfpTarget) -> submit.RemoteRun:
    error = getattr(response, "error", None)
    message = getattr(error, "message", "") if error is not None else ""
    return submit.RemoteRun(
        backend="kfp",
        run_id=response.run_id,
        name=response.run_id,
        url=target.run_url(response.run_id),
        state=response.state or "RUNTIME_STATE_UNSPECIFIED",
        error=submit.first_line(message),
    )


def _call_kfp(call: Callable[[], Any], action: str, target: KfpTarget, retry: submit.RetryPolicy,
              timeout: float) -> Any:
    """Runs one kfp.Client call under a deadline, with retries, its prints sent to stderr, its errors one line."""
    import kfp_server_api
    import urllib3

    def quiet_call() -> Any:
        with contextlib.redirect_stdout(sys.stderr):  # kfp.Client prints "Run details: <link>"
            return call()

    def is_retryable(e: BaseException) -> bool:
        return isinstance(e, kfp_server_api.ApiException) and e.status in _RETRYABLE_STATUSES

    try:
        return submit.call_with_retry(
            lambda: submit.call_with_deadline(quiet_call, timeout, f"KFP API at {target.base_url}"), is_retryable, retry
        )
    except kfp_server_api.ApiException as e:
        raise errors.RemoteError(_describe_api_error(e, action, target, retry)) from None
    except urllib3.exceptions.HTTPError as e:
        raise errors.RemoteError(
            f"cannot reach the KFP API at {target.base_url} to {action} ({type(e).__name__}): "
            "check --kfp-host (e.g. kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80) and your network"
        ) from None
    except TimeoutError as e:  # kfp.Client gives up on the health endpoint after 5 attempts
        raise errors.RemoteError(
            f"the KFP API at {target.base_url} did not answer its health check ({submit.first_line(e)}): "
            "check --kfp-host and, behind an authenticating proxy, --kfp-token"
        ) from None
    except ValueError as e:  # e.g. several experiments share the name
        raise errors.RemoteError(f"KFP could not {action}: {submit.first_line(e)}") from None


def _describe_api_error(e: Any, action: str, target: KfpTarget, retry: submit.RetryPolicy) -> str:
    message = e.reason or ""
    try:
        body = json.loads(e.body or "{}")
        message = body.get("message") or body.get("error") or message
    except (ValueError, TypeError, AttributeError):
        pass
    hints = {
        400: "the server rejected the request as invalid: check the parameters and the spec",
        401: "the server wants credentials: pass --kfp-token (or KFP_LINEAGE_KFP_TOKEN)",
        403: "you may not do this here: check --kfp-token and, on a multi-user deployment, --namespace",
        404: "check --kfp-host (it must be the API server or the UI's /pipeline proxy) and the experiment",
        409: "it exists already: pass another --job-id",
        429: f"still rate-limited after {retry.attempts} attempts: retry later",
        503: f"the server was unavailable for {retry.attempts} attempts: retry later",
    }
    hint = hints.get(e.status, "check --kfp-host, then retry")
    return f"KFP could not {action} ({e.status} {submit.first_line(message)}): {hint}"

