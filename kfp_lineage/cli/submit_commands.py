"""Commands that send a pipeline elsewhere to run: `submit` (Vertex AI Pipelines or a Kubeflow Pipelines server)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Optional, Tuple

import click

from kfp_lineage import errors
from kfp_lineage.expect import check as expectations
from kfp_lineage.expect import spec as expectations_spec
from kfp_lineage.ir import spec
from kfp_lineage.remote import vertex_lineage as vertex_reader
from kfp_lineage.remote import submission as submit
from kfp_lineage.remote import kfp_server as submit_kfp
from kfp_lineage.remote import vertex as submit_vertex
from kfp_lineage.cli import _common


class _OneLineFormatter(logging.Formatter):
    """`warning: aiplatform: <message>: <exception's first line>`, never a traceback.

    Everything aiplatform logs at WARNING or above reaches the user as a warning: the errors that stop a
    submission are raised, and reported by the CLI as one `Error:` line.
    """

    def format(self, record: logging.LogRecord) -> str:
        text = f"warning: aiplatform: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            detail = str(record.exc_info[1]).strip().splitlines()
            text += f": {type(record.exc_info[1]).__name__}: {detail[0] if detail else ''}"
        return text


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler writing to sys.stderr as it is when a record is logged, not as it was at set-up."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _route_aiplatform_logs() -> None:
    """google-cloud-aiplatform logs every step at INFO to stdout; keep stdout for our output and show only warnings.

    Its loggers add their own stdout handler unless one up the hierarchy has a StreamHandler, so this runs at
    import, before the CLI imports aiplatform.
    """
    logger = logging.getLogger("google.cloud.aiplatform")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setLevel(logging.WARNING)
        handler.setFormatter(_OneLineFormatter())
        logger.addHandler(handler)


_route_aiplatform_logs()


@click.command("submit")
@click.argument("pipeline", metavar="SPEC_OR_MODULE[:FUNC]")
@click.option("--vertex", is_flag=True, help="Submit to Vertex AI Pipelines (needs --project and --pipeline-root).")
@click.option("--kfp-host", metavar="URL", help="Submit to this Kubeflow Pipelines API server instead.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A pipeline parameter (repeatable).")
@click.option("--project", metavar="ID", help="Vertex AI: the Google Cloud project ID.")
@click.option("--location", default="us-central1", show_default=True, metavar="REGION", help="Vertex AI: the region.")
@click.option("--pipeline-root", metavar="URI",
              help="Where the run writes artifacts: a gs:// directory (required with --vertex; KFP: server default).")
@click.option("--service-account", metavar="ACCOUNT",
              help="Run as this service account (Vertex AI: an e-mail; KFP: a Kubernetes service account).")
@click.option("--job-id", metavar="ID",
              help="The Vertex AI job ID or KFP run name (default: <pipeline>-<UTC time>-<random>).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE",
              help="Vertex AI: a label for the job (repeatable).")
@click.option("--experiment", default=submit_kfp.DEFAULT_EXPERIMENT, show_default=True, metavar="NAME",
              help="KFP: the experiment to file the run in (created when missing).")
@click.option("--namespace", metavar="NAME", help="KFP: the profile namespace on a multi-user deployment.")
@click.option("--upload", is_flag=True,
              help="KFP: upload the spec as a pipeline (a new version when it exists) and run that version.")
@click.option("--kfp-token", envvar="KFP_LINEAGE_KFP_TOKEN", show_envvar=True, metavar="TOKEN",
              help="KFP: a bearer token for a deployment behind an authenticating proxy.")
@click.option("--api-endpoint", metavar="URL",
              help="Vertex AI: a custom API endpoint (private endpoint, emulator); "
              "plain http:// is called anonymously.")
@click.option("--no-cache", is_flag=True, help="Run every task even when a cached result exists.")
@click.option("--dry-run", is_flag=True, help="Print the request that would be sent, as JSON, and send nothing.")
@click.option("--wait", is_flag=True, help="Follow the run until it ends; exit 0 only if it succeeded.")
@click.option("--poll-interval", type=click.FloatRange(min=0), default=30.0, show_default=True, metavar="SECONDS",
              help="With --wait: seconds between state checks.")
@click.option("--check", "check_spec", metavar="SPEC.lineage.yaml",
              help="With --vertex --wait: when the job ends, check the lineage it recorded in Vertex ML Metadata "
                   "against this lineage spec; exit 1 when it differs.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the run on stdout.")
def submit_command(
    pipeline: str,
    vertex: bool,
    kfp_host: Optional[str],
    params: Tuple[str, ...],
    project: Optional[str],
    location: str,
    pipeline_root: Optional[str],
    service_account: Optional[str],
    job_id: Optional[str],
    labels: Tuple[str, ...],
    experiment: str,
    namespace: Optional[str],
    upload: bool,
    kfp_token: Optional[str],
    api_endpoint: Optional[str],
    no_cache: bool,
    dry_run: bool,
    wait: bool,
    poll_interval: float,
    check_spec: Optional[str],
    as_json: bool,
) -> None:
    """Submit a compiled pipeline to Vertex AI Pipelines or a Kubeflow Pipelines server.

    Parameters are checked against the spec before any request. A pipeline with a code_version
    parameter gets this checkout's git commit unless you pass one.

    \b
    Examples:
      kfp-lineage submit specs/training.yaml --vertex --project my-project \\
          --pipeline-root gs://my-bucket/pipeline-root --param deploy_target=vertex --wait
      kfp-lineage submit specs/training.yaml --vertex --project my-project \\
          --pipeline-root gs://my-bucket/pipeline-root --dry-run
      kfp-lineage submit specs/training.yaml --vertex --project my-project \\
          --pipeline-root gs://my-bucket/pipeline-root --wait --check specs/training.lineage.yaml
      kfp-lineage submit specs/training.yaml --kfp-host http://localhost:8080 --experiment training --wait
      kfp-lineage submit specs/training.yaml --kfp-host http://localhost:8080 --upload
    """
    with _common.errors_to_exit_codes():
        if vertex == bool(kfp_host):
            raise errors.InvalidInputError(
                "say where to submit: pass --vertex (with --project and --pipeline-root) or --kfp-host URL, not both"
            )
        _check_backend_options(vertex, labels=labels, api_endpoint=api_endpoint, experiment=experiment,
                               namespace=namespace, kfp_token=kfp_token, upload=upload)
        loaded = spec.load_pipeline(pipeline)
        lineage_spec = _lineage_spec_to_check(check_spec, loaded, vertex=vertex, wait=wait, dry_run=dry_run)
        arguments = _common.parse_params(params)
        if _common.CODE_VERSION_PARAMETER in loaded.spec.root.input_definitions.parameters:
            arguments.setdefault(_common.CODE_VERSION_PARAMETER, _common.git_commit())
        enable_caching = False if no_cache else None
        if vertex:
            run = _submit_vertex(loaded, arguments, project=project or "", location=location,
                                 pipeline_root=pipeline_root or "", service_account=service_account or "",
                                 api_endpoint=api_endpoint or "", job_id=job_id,
                                 labels=_parse_labels(labels), enable_caching=enable_caching, dry_run=dry_run,
                                 wait=wait, poll_interval=poll_interval)
        else:
            run = _submit_kfp(loaded, arguments, host=kfp_host or "", experiment=experiment,
                              namespace=namespace or "", token=kfp_token or "", pipeline_root=pipeline_root or "",
                              service_account=service_account or "", run_name=job_id, upload=upload,
                              enable_caching=enable_caching, dry_run=dry_run, wait=wait, poll_interval=poll_interval)
        if run is None:
            return
        if not as_json:
            click.echo(f"{run.state} {run.name}")
        checked = _check_vertex_run(run, lineage_spec, project or "", location, api_endpoint or "") \
            if lineage_spec is not None else None
        if as_json:
            data = run.to_json() if checked is None else {**run.to_json(), "check": checked.to_json()}
            click.echo(json.dumps(data, indent=2, sort_keys=True))
        elif checked is not None:
            click.echo(checked.to_text())
        if wait and not run.succeeded:
            detail = f": {run.error}" if run.error else ""
            click.echo(f"Error: {_noun(run)} {run.run_id} ended {run.state}{detail} (see {run.url})", err=True)
            sys.exit(_common.EXIT_RUN_FAILED)
        if checked is not None and not checked.ok:
            sys.exit(_common.EXIT_RUN_FAILED)


def _lineage_spec_to_check(path: Optional[str], loaded: spec.LoadedPipeline, *, vertex: bool, wait: bool,
                           dry_run: bool) -> Optional[expectations_spec.LineageSpec]:
    """The --check spec, loaded and matched with the pipeline before anything is submitted."""
    if path is None:
        return None
    if not vertex or not wait or dry_run:
        raise errors.InvalidInputError(
            "--check reads the job's lineage when it ends: use it with --vertex and --wait (and without --dry-run)")
    lineage_spec = expectations_spec.load_lineage_spec(path)
    if lineage_spec.pipeline != loaded.name:
        raise errors.InvalidInputError(
            f"--check {path} is the lineage spec of pipeline {lineage_spec.pipeline!r}, but the job runs "
            f"{loaded.name!r}: pass the spec of {loaded.name!r}")
    return lineage_spec


def _check_vertex_run(run: submit.RemoteRun, lineage_spec: expectations_spec.LineageSpec, project: str,
                      location: str, api_endpoint: str) -> Optional[expectations.CheckResult]:
    """Reads the ended job's lineage from Vertex ML Metadata and checks it against the spec; None when a job that
    failed cannot be read (it may never have started)."""
    url = vertex_reader.VertexRunURL(project=project, location=location, job_id=run.run_id,
                                     api_endpoint=api_endpoint)
    click.echo(f"checking the lineage of {url.job_name} against {lineage_spec.source}", err=True)
    try:
        store = vertex_reader.open_vertex_run(url)
    except errors.StoreError as e:
        if run.succeeded:
            raise
        # The job's failure is what the user must hear about (exit 1); a job that failed before it started has
        # no lineage to check.
        click.echo(f"warning: cannot check the lineage of the failed job: {e}", err=True)
        return None
    return expectations.check_lineage(store, lineage_spec, run.run_id, store_label=url.redacted)


def _check_backend_options(vertex: bool, **given: object) -> None:
    """Refuses an option of the other backend, so a typo cannot silently do nothing."""
    vertex_only = {"labels": "--label", "api_endpoint": "--api-endpoint"}
    kfp_only = {"namespace": "--namespace", "kfp_token": "--kfp-token", "upload": "--upload"}
    if given.get("experiment") not in (None, submit_kfp.DEFAULT_EXPERIMENT):
        kfp_only["experiment"] = "--experiment"
    for name, flag in (kfp_only if vertex else vertex_only).items():
        if given.get(name):
            where = "--kfp-host" if vertex else "--vertex"
            raise errors.InvalidInputError(f"{flag} applies only with {where}: drop it, or submit with {where}")


def _parse_labels(values: Tuple[str, ...]) -> dict:
    return _common.parse_pairs(values, "--label", "team=ml")


def _noun(run: submit.RemoteRun) -> str:
    return "Vertex AI pipeline job" if run.backend == "vertex" else "KFP run"


class _StateLines:
    """Progress on stderr, in the `run` command's format: one line per new state."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def line(self, text: str) -> None:
        click.echo(f"[{time.monotonic() - self.started:7.1f}s] {text}", err=True)

    def state(self, run: submit.RemoteRun) -> None:
        self.line(f"  state  {run.state}")


def _submit_vertex(loaded, arguments, *, project, location, pipeline_root, service_account, api_endpoint, job_id,
                   labels, enable_caching, dry_run, wait, poll_interval) -> Optional[submit.RemoteRun]:
    target = submit_vertex.VertexTarget(project=project, location=location, pipeline_root=pipeline_root,
                                        api_endpoint=api_endpoint, service_account=service_account)
    submit_vertex.check_target(target)
    credentials = None if dry_run else submit_vertex.resolve_credentials(api_endpoint)
    job = submit_vertex.build_pipeline_job(loaded, arguments, target, job_id=job_id, enable_caching=enable_caching,
                                           labels=labels, credentials=credentials)
    if dry_run:
        click.echo(json.dumps(submit_vertex.describe_create_request(job, target), indent=2, sort_keys=True))
        return None
    progress = _StateLines()
    run = submit_vertex.submit_pipeline_job(job, target)
    progress.line(f"submitted Vertex AI pipeline job {run.name}")
    progress.line(f"  view: {run.url}")
    if wait:
        run = submit_vertex.wait_for_pipeline_job(job, target, poll_interval=poll_interval, on_state=progress.state)
    return run


def _submit_kfp(loaded, arguments, *, host, experiment, namespace, token, pipeline_root, service_account, run_name,
                upload, enable_caching, dry_run, wait, poll_interval) -> Optional[submit.RemoteRun]:
    target = submit_kfp.KfpTarget(host=host, experiment=experiment, namespace=namespace, token=token,
                                  pipeline_root=pipeline_root, service_account=service_account)
    run_name = run_name or submit_kfp.new_run_name(loaded.name)
    request = submit_kfp.describe_run_request(loaded, arguments, target, run_name=run_name,
                                              enable_caching=enable_caching, upload=upload)
    if dry_run:
        click.echo(json.dumps(request, indent=2, sort_keys=True))
        return None
    progress = _StateLines()
    client = submit_kfp.connect(target)
    if upload:
        run = submit_kfp.upload_and_run(client, loaded, arguments, target, run_name=run_name)
    else:
        run = submit_kfp.submit_run(client, loaded, arguments, target, run_name=run_name,
                                    enable_caching=enable_caching)
    progress.line(f"submitted KFP run {run.run_id} ({run_name}) to experiment {experiment!r}")
    progress.line(f"  view: {run.url}")
    if wait:
        run = submit_kfp.wait_for_run(client, run, target, poll_interval=poll_interval, on_state=progress.state)
    return run


COMMANDS = [submit_command]
