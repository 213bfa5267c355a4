"""`kfp-lineage submit --vertex` and kfp_lineage.remote.vertex, with google-cloud-aiplatform against loopback stand-ins.

aiplatform is configured as a user would: an http:// API endpoint (called anonymously, REST), STORAGE_EMULATOR_HOST
for the pipeline-root bucket check, and gRPC's proxy and CA variables for the Resource Manager call it makes.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from kfp_lineage import cli, errors
from kfp_lineage.ir import spec
from kfp_lineage.remote import submission as submit
from kfp_lineage.remote import vertex as submit_vertex
from tests.standins.project import LOCATION, PROJECT, PROJECT_NUMBER

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TRAINING = os.path.join(REPO, "specs", "training.yaml")
BUCKET = "pipelines-bucket"
ROOT = f"gs://{BUCKET}/root"
JOB = f"projects/{PROJECT_NUMBER}/locations/{LOCATION}/pipelineJobs"
pytest_plugins = ["tests.standins.fixtures"]
FAST = submit.RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.02)


def invoke(*args):
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


def submit_args(vertex_url, *extra):
    return ["submit", TRAINING, "--vertex", "--project", PROJECT, "--location", LOCATION, "--pipeline-root", ROOT,
            "--api-endpoint", vertex_url, "--param", "code_version=abc123", *extra]


def compiled_spec(caching=None):
    with open(TRAINING) as f:
        document = yaml.safe_load(f)
    if caching is not None:  # what the SDK does with enable_caching: every DAG task, nested ones too
        for component in [document["root"], *document["components"].values()]:
            for task in component.get("dag", {}).get("tasks", {}).values():
                task["cachingOptions"] = {"enableCache": caching}
    return document


@pytest.fixture
def standins(gcs, vertex, resource_manager):
    gcs.add_bucket(BUCKET)
    return gcs, vertex, resource_manager


def test_submit_sends_exactly_the_job_the_dry_run_prints(standins):
    gcs, vertex, resource_manager = standins
    args = submit_args(vertex.url, "--job-id", "training-1", "--param", "threshold=0.5", "--param",
                       "deploy_target=vertex", "--service-account", "runner@test-project.iam.gserviceaccount.com",
                       "--label", "team=ml", "--no-cache")
    dry = invoke(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert vertex.requests == [] and gcs.requests == [] and resource_manager.calls == []
    printed = json.loads(dry.stdout)

    result = invoke(*args)

    assert result.exit_code == 0, result.output
    assert result.stdout == f"PIPELINE_STATE_PENDING {JOB}/training-1\n"
    [create] = vertex.requests
    assert (create.method, create.path, create.query) == (
        "POST", f"/v1/projects/{PROJECT}/locations/{LOCATION}/pipelineJobs",
        {"pipelineJobId": "training-1", "$alt": "json;enum-encoding=int"},
    )
    assert printed == {"method": "POST", "url": f"{vertex.url}{create.path}?pipelineJobId=training-1",
                       "body": create.body}
    assert create.body == {
        "displayName": "training",
        "pipelineSpec": compiled_spec(caching=False),
        "labels": {"submitted-by": "kfp-lineage", "team": "ml"},
        "runtimeConfig": {
            "gcsOutputDirectory": ROOT,
            "parameterValues": {"code_version": "abc123", "threshold": 0.5, "deploy_target": "vertex"},
        },
        "serviceAccount": "runner@test-project.iam.gserviceaccount.com",
    }
    # Before creating the job, the SDK checks that the pipeline root's bucket exists and belongs to the project.
    assert [(r.line, r.query.get("fields"), r.query.get("projection")) for r in gcs.requests] == [
        (f"GET /storage/v1/b/{BUCKET}", "name", None),
        (f"GET /storage/v1/b/{BUCKET}", None, "noAcl"),
    ]
    assert [(c.name, c.code) for c in resource_manager.calls] == [(f"projects/{PROJECT}", "OK")]
    assert resource_manager.connects == ["cloudresourcemanager.googleapis.com:443"]
    lines = result.stderr.splitlines()
    assert lines[0].endswith(f"] submitted Vertex AI pipeline job {JOB}/training-1")
    assert lines[1].endswith(
        f"]   view: https://console.cloud.google.com/vertex-ai/locations/{LOCATION}/pipelines/runs/training-1"
        f"?project={PROJECT}"
    )


def test_compiled_caching_settings_are_sent_unless_no_cache(standins):
    _, vertex, _ = standins
    assert invoke(*submit_args(vertex.url, "--job-id", "training-2")).exit_code == 0
    [create] = vertex.requests
    assert create.body["pipelineSpec"] == compiled_spec()
    assert create.body["runtimeConfig"]["parameterValues"] == {"code_version": "abc123"}
    assert "serviceAccount" not in create.body


def test_a_missing_bucket_is_created_and_shared_with_the_service_account(gcs, vertex, resource_manager):
    account = "runner@test-project.iam.gserviceaccount.com"
    result = invoke(*submit_args(vertex.url, "--job-id", "training-3", "--service-account", account))
    assert result.exit_code == 0, result.output
    assert [r.line for r in gcs.requests] == [
        f"GET /storage/v1/b/{BUCKET}", "POST /storage/v1/b", f"GET /storage/v1/b/{BUCKET}/iam",
        f"PUT /storage/v1/b/{BUCKET}/iam",
    ]
    assert gcs.requests[1].body == {"name": BUCKET, "location": LOCATION}
    assert gcs.requests[1].query["project"] == PROJECT
    assert gcs.requests[3].body["bindings"] == [
        {"role": "roles/storage.objectCreator", "members": [f"serviceAccount:{account}"]},
        {"role": "roles/storage.objectViewer", "members": [f"serviceAccount:{account}"]},
    ]
    assert resource_manager.calls == []  # the project number is needed only for the default service account
    assert [r.status for r in vertex.requests] == [200]


def test_wait_follows_the_job_and_exits_0_when_it_succeeds(standins):
    _, vertex, _ = standins
    result = invoke(*submit_args(vertex.url, "--job-id", "training-4", "--wait", "--poll-interval", "0"))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"PIPELINE_STATE_SUCCEEDED {JOB}/training-4\n"
    states = [line.split("]", 1)[1] for line in result.stderr.splitlines() if "state" in line]
    assert states == ["   state  PIPELINE_STATE_RUNNING", "   state  PIPELINE_STATE_SUCCEEDED"]
    assert [r.line for r in vertex.requests[1:]] == [f"GET /v1/{JOB}/training-4"] * 2


@pytest.mark.parametrize("final", ["PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"])
def test_wait_exits_1_when_the_job_fails_or_is_cancelled(standins, final):
    _, vertex, _ = standins
    vertex.job_states = ["PIPELINE_STATE_RUNNING", final]
    result = invoke(*submit_args(vertex.url, "--job-id", "training-5", "--wait", "--poll-interval", "0", "--json"))
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "backend": "vertex", "run_id": "training-5", "name": f"{JOB}/training-5", "state": final,
        "error": "The DAG failed because some tasks failed.",
        "url": f"https://console.cloud.google.com/vertex-ai/locations/{LOCATION}/pipelines/runs/training-5"
               f"?project={PROJECT}",
    }
    assert result.stderr.splitlines()[-1] == (
        f"Error: Vertex AI pipeline job training-5 ended {final}: The DAG failed because some tasks failed. "
        f"(see https://console.cloud.google.com/vertex-ai/locations/{LOCATION}/pipelines/runs/training-5"
        f"?project={PROJECT})"
    )


@pytest.mark.parametrize(
    "status, location, message",
    [
        (403, LOCATION,
         "Error: Vertex AI could not create pipeline job 'training-6' (403 PERMISSION_DENIED: Permission denied on "
         "resource (or it may not exist).): check that project 'test-project' is right and that your account has "
         "the Vertex AI User role (roles/aiplatform.user) in it"),
        (None, "europe-west4",
         "Error: Vertex AI could not create pipeline job 'training-6' (404 NOT_FOUND: Location europe-west4 is not "
         "found or not supported by this stand-in.): check project 'test-project', location 'europe-west4' and "
         "the API endpoint"),
    ],
    ids=["403", "404"],
)
def test_api_errors_are_one_line_with_the_fix_and_exit_1(standins, status, location, message):
    _, vertex, _ = standins
    if status:
        vertex.fail("POST", "/pipelineJobs$", status)
    args = submit_args(vertex.url, "--job-id", "training-6")
    args[args.index("--location") + 1] = location
    result = invoke(*args)
    assert result.exit_code == 1
    assert result.stderr == message + "\n"
    assert len(vertex.requests) == 1  # not retried


def test_429_is_retried_with_backoff_then_succeeds(standins):
    _, vertex, _ = standins
    vertex.fail("POST", "/pipelineJobs$", 429, times=2)
    vertex.fail("GET", "/pipelineJobs/", 429)
    target = submit_vertex.VertexTarget(PROJECT, LOCATION, ROOT, api_endpoint=vertex.url)
    job = submit_vertex.build_pipeline_job(spec.load_pipeline(TRAINING), {}, target, job_id="training-7")
    run = submit_vertex.submit_pipeline_job(job, target, retry=FAST)
    final = submit_vertex.wait_for_pipeline_job(job, target, poll_interval=0, retry=FAST)
    assert run.state == "PIPELINE_STATE_PENDING" and final.succeeded
    assert [(r.method, r.status) for r in vertex.requests] == [
        ("POST", 429), ("POST", 429), ("POST", 200), ("GET", 429), ("GET", 200), ("GET", 200),
    ]
    assert vertex.requests[0].body == vertex.requests[2].body


def test_429_gives_up_after_the_last_attempt(standins):
    _, vertex, _ = standins
    vertex.fail("POST", "/pipelineJobs$", 429, times=5)
    target = submit_vertex.VertexTarget(PROJECT, LOCATION, ROOT, api_endpoint=vertex.url)
    job = submit_vertex.build_pipeline_job(spec.load_pipeline(TRAINING), {}, target, job_id="training-8")
    with pytest.raises(errors.RemoteError) as excinfo:
        submit_vertex.submit_pipeline_job(job, target, retry=FAST)
    assert str(excinfo.value) == (
        "Vertex AI could not create pipeline job 'training-8' (429 RESOURCE_EXHAUSTED: Quota exceeded: too many "
        "requests, retry later.): still rate-limited after 3 attempts: wait a few minutes or ask for more quota "
        "in project 'test-project'"
    )
    assert [r.status for r in vertex.requests] == [429, 429, 429]


def test_an_unreachable_endpoint_is_one_line(gcs, resource_manager):
    gcs.add_bucket(BUCKET)
    result = invoke(*submit_args("http://127.0.0.1:9", "--job-id", "training-9"))
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: cannot reach Vertex AI at http://127.0.0.1:9 to create pipeline job 'training-9' (ConnectionError): "
        "check --api-endpoint and your network\n"
    )


def test_job_ids_are_generated_in_the_vertex_format():
    job_id = submit_vertex.new_job_id("My_Pipeline")
    assert job_id.startswith("my-pipeline-") and len(job_id) == len("my-pipeline-20260101-000000-abcdef")
    assert submit_vertex.new_job_id("7up").startswith("pipeline-7up-")


@pytest.mark.slow
def test_dry_run_opens_no_connection(tmp_path):
    """In a fresh process, with an audit hook on every socket connect and DNS lookup, and no --api-endpoint."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import json, sys\n"
        "seen = []\n"
        "sys.addaudithook(lambda event, args: seen.append([event, str(args)[:120]])"
        " if event in ('socket.connect', 'socket.getaddrinfo', 'socket.gethostbyname') else None)\n"
        "from kfp_lineage import cli\n"
        "try:\n"
        "    cli.entrypoint(sys.argv[1:])\n"
        "except SystemExit as e:\n"
        "    sys.stderr.write('NETWORK ' + json.dumps(seen) + '\\n')\n"
        "    raise\n"
    )
    completed = subprocess.run(
        [sys.executable, str(probe), "submit", TRAINING, "--vertex", "--project", "my-project", "--pipeline-root",
         "gs://my-bucket/root", "--job-id", "training-10", "--param", "code_version=abc123", "--dry-run"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.splitlines()[-1] == "NETWORK []"
    request = json.loads(completed.stdout)
    assert request["url"] == (
        "https://us-central1-aiplatform.googleapis.com/v1/projects/my-project/locations/us-central1/pipelineJobs"
        "?pipelineJobId=training-10"
    )
    assert request["body"]["runtimeConfig"] == {"gcsOutputDirectory": "gs://my-bucket/root",
                                                "parameterValues": {"code_version": "abc123"}}


@pytest.mark.slow
def test_console_script_submits_with_the_environment_a_user_sets(gcs, vertex):
    """The installed `kfp-lineage` in its own process, reaching Resource Manager through the proxy variables."""
    from tests.standins.resource_manager import ResourceManagerStandIn

    gcs.add_bucket(BUCKET)
    with ResourceManagerStandIn({PROJECT: PROJECT_NUMBER}) as resource_manager:
        env = dict(os.environ, STORAGE_EMULATOR_HOST=gcs.url, **resource_manager.env)
        completed = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "kfp-lineage"), *submit_args(vertex.url, "--job-id",
             "training-11", "--wait", "--poll-interval", "0")],
            capture_output=True, text=True, env=env, timeout=120,
        )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == f"PIPELINE_STATE_SUCCEEDED {JOB}/training-11\n"
    assert "Traceback" not in completed.stderr and "warning" not in completed.stderr
    assert [(c.name, c.code) for c in resource_manager.calls] == [(f"projects/{PROJECT}", "OK")]
    assert [r.line for r in vertex.requests] == [f"POST /v1/projects/{PROJECT}/locations/{LOCATION}/pipelineJobs"] + [
        f"GET /v1/{JOB}/training-11"] * 2


def test_a_failed_bucket_ownership_check_is_a_one_line_warning(standins):
    """aiplatform asks Resource Manager whose bucket the pipeline root is in; when that fails it only logs."""
    _, vertex, resource_manager = standins
    import grpc

    resource_manager.fail(grpc.StatusCode.PERMISSION_DENIED, "The caller does not have permission")
    result = invoke(*submit_args(vertex.url, "--job-id", "training-12"))
    assert result.exit_code == 0, result.output
    assert [(c.name, c.code) for c in resource_manager.calls] == [(f"projects/{PROJECT}", "PERMISSION_DENIED")]
    assert result.stderr.splitlines()[0] == (
        "warning: aiplatform: Error when trying to get or create a GCS bucket for the pipeline output artifacts: "
        f'ValueError: Output artifacts bucket "{BUCKET}" exists but does not belong to project "{PROJECT}". This may '
        "indicate a bucket squatting attack. Please provide an explicit output_artifacts_gcs_dir parameter or "
        "configure one via aiplatform.init(output_artifacts_gcs_dir='gs://your-bucket')."
    )
    assert [r.status for r in vertex.requests] == [200]


def test_the_readme_shows_the_real_dry_run_output():
    import shlex

    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    start = readme.index("$ kfp-lineage submit specs/training.yaml --vertex")
    block = readme[start:readme.index("```", start)].splitlines()
    command_lines = []
    while block and not block[0].startswith("{"):
        command_lines.append(block.pop(0).rstrip("\\").strip())
    args = shlex.split(" ".join(command_lines))[2:]  # after "$ kfp-lineage"
    elided = block.index("        ...")
    head, tail = block[:elided], block[elided + 1:]

    result = invoke(*args)

    assert result.exit_code == 0, result.output
    printed = result.stdout.splitlines()
    assert printed[:len(head)] == head
    assert printed[-len(tail):] == tail
