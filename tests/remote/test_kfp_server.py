"""`kfp-lineage submit --kfp-host` and kfp_lineage.remote.kfp_server, with kfp.Client against a loopback KFP API stand-in."""

import json
import os

import pytest
import yaml
from click.testing import CliRunner

from kfp_lineage import cli, errors
from kfp_lineage.ir import spec
from kfp_lineage.remote import submission as submit
from kfp_lineage.remote import kfp_server as submit_kfp

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TRAINING = os.path.join(REPO, "specs", "training.yaml")
pytest_plugins = ["tests.standins.fixtures"]
FAST = submit.RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.02)


def invoke(*args, env=None):
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False, env=env)


def submit_args(host, *extra):
    return ["submit", TRAINING, "--kfp-host", host, "--param", "code_version=abc123", *extra]


def compiled_spec(root_caching=None):
    with open(TRAINING) as f:
        document = yaml.safe_load(f)
    if root_caching is not None:  # what kfp.Client does with enable_caching: the root DAG's tasks only,
        for task in document["root"]["dag"]["tasks"].values():  # on the proto, where false is left out
            task["cachingOptions"] = {"enableCache": True} if root_caching else {}
    return document


def test_submit_sends_exactly_the_run_the_dry_run_prints(kfp_api):
    args = submit_args(kfp_api.url, "--job-id", "nightly-1", "--experiment", "training", "--param", "threshold=0.5",
                       "--pipeline-root", "minio://mlpipeline/v2/artifacts", "--service-account", "pipeline-runner",
                       "--no-cache")
    dry = invoke(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert kfp_api.requests == []
    printed = json.loads(dry.stdout)

    result = invoke(*args)

    assert result.exit_code == 0, result.output
    assert result.stdout == "PENDING run-2\n"
    assert [(r.line, r.status) for r in kfp_api.requests] == [
        ("GET /apis/v2beta1/healthz", 200),
        ("GET /apis/v2beta1/experiments", 200),
        ("POST /apis/v2beta1/experiments", 200),
        ("POST /apis/v2beta1/runs", 200),
    ]
    lookup, create_experiment, create_run = kfp_api.requests[1:]
    assert json.loads(lookup.query["filter"]) == {
        "predicates": [{"operation": 1, "key": "display_name", "stringValue": "training"}]
    }
    assert create_experiment.body == {"display_name": "training", "namespace": ""}
    assert create_run.body == {
        "experiment_id": "exp-1",
        "display_name": "nightly-1",
        "pipeline_spec": compiled_spec(root_caching=False),
        "runtime_config": {
            "parameters": {"code_version": "abc123", "threshold": 0.5},
            "pipeline_root": "minio://mlpipeline/v2/artifacts",
        },
        "service_account": "pipeline-runner",
    }
    assert printed == {"method": "POST", "url": f"{kfp_api.url}/apis/v2beta1/runs", "experiment": "training",
                       "body": {k: v for k, v in create_run.body.items() if k != "experiment_id"}}
    assert "submitted KFP run run-2 (nightly-1) to experiment 'training'" in result.stderr
    assert f"  view: {kfp_api.url}/#/runs/details/run-2" in result.stderr


def test_an_existing_experiment_is_reused_and_defaults_are_left_to_the_server(kfp_api):
    experiment_id = kfp_api.add_experiment("Default")
    result = invoke(*submit_args(kfp_api.url, "--job-id", "nightly-2"))
    assert result.exit_code == 0, result.output
    assert [r.line for r in kfp_api.requests] == [
        "GET /apis/v2beta1/healthz", "GET /apis/v2beta1/experiments", "POST /apis/v2beta1/runs"
    ]
    body = kfp_api.requests[-1].body
    assert body["experiment_id"] == experiment_id
    assert body["runtime_config"] == {"parameters": {"code_version": "abc123"}}
    assert body["pipeline_spec"] == compiled_spec()
    assert "service_account" not in body


def test_a_token_is_sent_as_a_bearer_header(kfp_api):
    result = invoke(*submit_args(kfp_api.url, "--job-id", "nightly-3"), env={"KFP_LINEAGE_KFP_TOKEN": "s3cret"})
    assert result.exit_code == 0, result.output
    assert {r.headers.get("authorization") for r in kfp_api.requests} == {"Bearer s3cret"}


def test_wait_follows_the_run_and_exits_0_when_it_succeeds(kfp_api):
    result = invoke(*submit_args(kfp_api.url, "--job-id", "nightly-4", "--wait", "--poll-interval", "0", "--json"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"backend": "kfp", "run_id": "run-2", "name": "run-2", "state": "SUCCEEDED",
                                         "error": "", "url": f"{kfp_api.url}/#/runs/details/run-2"}
    states = [line.split("]", 1)[1] for line in result.stderr.splitlines() if "state" in line]
    assert states == ["   state  RUNNING", "   state  SUCCEEDED"]
    assert [r.line for r in kfp_api.requests[-2:]] == ["GET /apis/v2beta1/runs/run-2"] * 2


@pytest.mark.parametrize("final", ["FAILED", "CANCELED"])
def test_wait_exits_1_when_the_run_fails_or_is_canceled(kfp_api, final):
    kfp_api.run_states = ["RUNNING", final]
    result = invoke(*submit_args(kfp_api.url, "--job-id", "nightly-5", "--wait", "--poll-interval", "0"))
    assert result.exit_code == 1
    assert result.stdout == f"{final} run-2\n"
    assert result.stderr.splitlines()[-1] == (
        f"Error: KFP run run-2 ended {final}: 1 tasks failed: task 'train' exited with code 1 "
        f"(see {kfp_api.url}/#/runs/details/run-2)"
    )


@pytest.mark.parametrize(
    "status, message",
    [
        (403, "Error: KFP could not create run 'nightly-6' (403 Permission denied on resource (or it may not exist).): "
              "you may not do this here: check --kfp-token and, on a multi-user deployment, --namespace"),
        (404, "Error: KFP could not create run 'nightly-6' (404 Requested entity was not found.): check --kfp-host (it "
              "must be the API server or the UI's /pipeline proxy) and the experiment"),
    ],
)
def test_api_errors_are_one_line_with_the_fix_and_exit_1(kfp_api, status, message):
    kfp_api.fail("POST", "/runs$", status)
    result = invoke(*submit_args(kfp_api.url, "--job-id", "nightly-6"))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == message
    assert len(kfp_api.requests_to("POST", "/runs$")) == 1  # not retried


def test_429_is_retried_with_backoff_then_succeeds(kfp_api):
    kfp_api.fail("POST", "/runs$", 429, times=2)
    kfp_api.fail("GET", "/runs/", 429)
    target = submit_kfp.KfpTarget(host=kfp_api.url)
    client = submit_kfp.connect(target)
    run = submit_kfp.submit_run(client, spec.load_pipeline(TRAINING), {}, target, run_name="nightly-7", retry=FAST)
    final = submit_kfp.wait_for_run(client, run, target, poll_interval=0, retry=FAST)
    assert final.succeeded
    assert [(r.method, r.path.rsplit("/", 1)[-1], r.status) for r in kfp_api.requests if "/runs" in r.path] == [
        ("POST", "runs", 429), ("POST", "runs", 429), ("POST", "runs", 200),
        ("GET", "run-2", 429), ("GET", "run-2", 200), ("GET", "run-2", 200),
    ]


def test_429_gives_up_after_the_last_attempt(kfp_api):
    kfp_api.fail("POST", "/runs$", 429, times=5)
    target = submit_kfp.KfpTarget(host=kfp_api.url)
    client = submit_kfp.connect(target)
    with pytest.raises(errors.RemoteError) as excinfo:
        submit_kfp.submit_run(client, spec.load_pipeline(TRAINING), {}, target, run_name="nightly-8", retry=FAST)
    assert str(excinfo.value) == (
        "KFP could not create run 'nightly-8' (429 Quota exceeded: too many requests, retry later.): "
        "still rate-limited after 3 attempts: retry later"
    )


def test_an_unreachable_host_is_one_line():
    result = invoke(*submit_args("http://127.0.0.1:9", "--job-id", "nightly-9"))
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: cannot reach the KFP API at http://127.0.0.1:9 to check its health (MaxRetryError): check --kfp-host "
        "(e.g. kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80) "
        "and your network\n"
    )


def test_a_server_that_does_not_answer_is_abandoned_after_the_timeout(kfp_api):
    release = kfp_api.stall("GET", "/runs/")
    target = submit_kfp.KfpTarget(host=kfp_api.url)
    client = submit_kfp.connect(target)
    run = submit_kfp.submit_run(client, spec.load_pipeline(TRAINING), {}, target, run_name="nightly-10")
    try:
        with pytest.raises(errors.RemoteError) as excinfo:
            submit_kfp.wait_for_run(client, run, target, poll_interval=0, timeout=0.3)
    finally:
        release.set()
    assert str(excinfo.value) == (
        f"KFP API at {kfp_api.url}: no answer within 0.3 s: check that the server is up and reachable, then retry"
    )


def test_upload_files_the_spec_as_a_pipeline_then_a_version_and_runs_it(kfp_api):
    first = invoke(*submit_args(kfp_api.url, "--job-id", "nightly-11", "--upload", "--param", "threshold=0.5"))
    assert first.exit_code == 0, first.output
    assert [(r.line, r.query.get("name")) for r in kfp_api.requests] == [
        ("GET /apis/v2beta1/healthz", None),
        ("GET /apis/v2beta1/pipelines", None),
        ("POST /apis/v2beta1/pipelines/upload", "training"),
        ("GET /apis/v2beta1/pipelines/pipeline-1/versions", None),
        ("GET /apis/v2beta1/experiments", None),
        ("POST /apis/v2beta1/experiments", None),
        ("POST /apis/v2beta1/runs", None),
    ]
    assert kfp_api.uploaded_specs == {"version-2": compiled_spec()}
    run = kfp_api.requests[-1].body
    assert run == {
        "experiment_id": "exp-3",
        "display_name": "nightly-11",
        "pipeline_version_reference": {"pipeline_id": "pipeline-1", "pipeline_version_id": "version-2"},
        "runtime_config": {"parameters": {"code_version": "abc123", "threshold": 0.5}},
    }
    dry = json.loads(invoke(*submit_args(kfp_api.url, "--job-id", "nightly-11", "--upload", "--param",
                                         "threshold=0.5", "--dry-run")).stdout)
    assert dry["body"] == {k: v for k, v in run.items() if k not in ("experiment_id", "pipeline_version_reference")}
    assert dry["upload"] == {"pipeline": "training", "version": "nightly-11",
                             "url": f"{kfp_api.url}/apis/v2beta1/pipelines/upload (or upload_version)"}

    kfp_api.requests.clear()
    second = invoke(*submit_args(kfp_api.url, "--job-id", "nightly-12", "--upload"))
    assert second.exit_code == 0, second.output
    upload_version = kfp_api.requests_to("POST", "/pipelines/")
    assert [(r.path, r.query) for r in upload_version] == [
        ("/apis/v2beta1/pipelines/upload_version", {"name": "nightly-12", "pipelineid": "pipeline-1"})
    ]
    assert kfp_api.requests[-1].body["pipeline_version_reference"] == {"pipeline_id": "pipeline-1",
                                                                       "pipeline_version_id": "version-5"}


def test_upload_refuses_a_caching_override_it_could_not_apply(kfp_api):
    result = invoke(*submit_args(kfp_api.url, "--upload", "--no-cache"))
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --no-cache cannot change an uploaded pipeline version: drop --no-cache, or submit without --upload\n"
    )
    assert kfp_api.requests == []


def test_kfp_runs_carry_no_labels_and_label_is_vertex_only(kfp_api):
    # The README says so: KFP's run API has no labels, so submitted-by=kfp-lineage goes only on Vertex AI jobs.
    for extra in ([], ["--upload"]):
        result = invoke(*submit_args(kfp_api.url, *extra))
        assert result.exit_code == 0, result.output
    created = kfp_api.requests_to("POST", "/runs")
    assert len(created) == 2
    for request in created:
        assert "labels" not in request.body and "submitted-by" not in json.dumps(request.body)
    refused = invoke(*submit_args(kfp_api.url, "--label", "team=ml"))
    assert (refused.exit_code, refused.stderr) == (
        2, "Error: --label applies only with --vertex: drop it, or submit with --vertex\n")
