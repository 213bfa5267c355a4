"""`--vertex-run` on show, trace, impact, expect and check, and `submit --vertex --wait --check`, with
google-cloud-aiplatform against loopback stand-ins of Vertex AI and Vertex ML Metadata."""

import os

import pytest
from click.testing import CliRunner

from kfp_lineage import cli
from tests.standins.mlmd_grpc import unused_port
from tests.standins.project import LOCATION, PROJECT, PROJECT_NUMBER
from tests import readme_examples
from tests.standins.vertex_metadata import add_training_run

pytest_plugins = ["tests.standins.fixtures"]

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TRAINING = os.path.join(REPO, "specs", "training.yaml")
TRAINING_LINEAGE = os.path.join(REPO, "specs", "training.lineage.yaml")
JOB_ID = "training-20261201100000"
JOB = f"projects/{PROJECT}/locations/{LOCATION}/pipelineJobs/{JOB_ID}"
CONTEXT = f"projects/{PROJECT_NUMBER}/locations/{LOCATION}/metadataStores/default/contexts/{JOB_ID}"


def invoke(*args):
    return CliRunner().invoke(cli.main, list(args))


@pytest.fixture
def training(vertex_metadata):
    return add_training_run(vertex_metadata, JOB_ID)


def vertex_args(standin, job=JOB):
    return ["--vertex-run", job, "--api-endpoint", standin.url]


def test_check_passes_on_a_vertex_run_with_the_spec_of_local_runs(vertex_metadata, training):
    result = invoke("check", TRAINING_LINEAGE, *vertex_args(vertex_metadata))
    assert result.exit_code == 0, result.output
    assert result.output == f"OK run {JOB_ID} of pipeline training matches {TRAINING_LINEAGE}: 9 tasks, 15 events\n"
    assert [r.line for r in vertex_metadata.requests] == [f"GET /v1/{JOB}",
                                                         f"GET /v1/{CONTEXT}:queryContextLineageSubgraph"]


def test_check_fails_with_a_readable_difference_when_an_event_is_missing(vertex_metadata, training):
    train = next(t for t in training.job["jobDetail"]["taskDetails"] if t["taskName"] == "train")
    vertex_metadata.remove_event(train["execution"]["name"], training.output(train, "metrics"), "OUTPUT")
    result = invoke("check", TRAINING_LINEAGE, *vertex_args(vertex_metadata))
    assert result.exit_code == 1
    assert result.output.splitlines()[:2] == [
        f"FAIL run {JOB_ID} of pipeline training does not match {TRAINING_LINEAGE}: 1 difference",
        f"  {TRAINING_LINEAGE}:35: train: missing event: OUTPUT metrics (system.Metrics) is not recorded",
    ]
    assert "  train  system.ContainerExecution  COMPLETE  (execution 4)" in result.output


def test_the_read_commands_work_on_a_vertex_run(vertex_metadata, training, tmp_path):
    for args in (["show", "latest"], ["show", JOB_ID], ["show", f"{JOB_ID}/train/model"],
                 ["trace", "latest/train/model"], ["impact", f"{JOB_ID}/ingest/train"],
                 ["trace", "latest/train/model", "--format", "mermaid"]):
        result = invoke(*args, *vertex_args(vertex_metadata))
        assert result.exit_code == 0, (args, result.output)
    shown = invoke("show", "latest", *vertex_args(vertex_metadata)).output
    assert shown.startswith(f"run {JOB_ID}  pipeline training  COMPLETE  started 2026-12-01T10:00:05Z  "
                            "took 1 min 35 s  tasks: 1 canceled, 8 complete\n")
    assert "  condition-1/condition-branches-2/condition-3/deploy-local  COMPLETE  5.0 s\n" in shown
    # A spec written from the Vertex run checks it; the vertex:// URL reads the same run as --vertex-run.
    expected = invoke("expect", "latest", *vertex_args(vertex_metadata))
    assert expected.exit_code == 0 and "pipeline: training\n" in expected.output
    (tmp_path / "vertex.lineage.yaml").write_text(expected.output)
    url = f"vertex://{JOB}?endpoint={vertex_metadata.url}"
    result = invoke("check", str(tmp_path / "vertex.lineage.yaml"), "--store", url)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args, message", [
    (["show", "latest", "--vertex-run", f"projects/other-project/locations/{LOCATION}/pipelineJobs/{JOB_ID}"],
     "Error: Vertex AI could not get pipeline job projects/other-project/locations/us-central1/pipelineJobs/"
     f"{JOB_ID} (403 PERMISSION_DENIED: "),
    (["check", TRAINING_LINEAGE, "--vertex-run", f"projects/{PROJECT}/locations/{LOCATION}/pipelineJobs/nope"],
     "Error: Vertex AI could not get pipeline job projects/test-project/locations/us-central1/pipelineJobs/nope "
     "(404 NOT_FOUND: "),
    (["trace", "latest/train/model", "--vertex-run", "training-20261201100000"],
     "Error: training-20261201100000 is not a Vertex AI pipeline job: pass "
     "projects/PROJECT/locations/REGION/pipelineJobs/JOB"),
    (["expect", "latest", "--vertex-run", JOB, "--store", "mlmd.sqlite"],
     "Error: --store and --vertex-run both name what to read: pass one"),
])
def test_a_wrong_project_job_or_option_is_one_line_and_exit_2(vertex_metadata, training, args, message):
    result = invoke(*args, "--api-endpoint", vertex_metadata.url)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(message) and result.output.count("\n") == 1


def test_an_unreachable_endpoint_is_one_line_and_exit_2():
    endpoint = f"http://127.0.0.1:{unused_port()}"
    result = invoke("impact", "latest/ingest/train", "--vertex-run", JOB, "--api-endpoint", endpoint)
    assert result.exit_code == 2
    assert result.output == (f"Error: cannot reach Vertex AI at {endpoint} to get pipeline job {JOB} "
                             "(ConnectionError): check --api-endpoint and your network\n")


def test_an_endpoint_alone_and_recording_into_a_vertex_run_are_refused():
    result = invoke("show", "latest", "--api-endpoint", "http://127.0.0.1:1")
    assert (result.exit_code, result.output) == (
        2, "Error: --api-endpoint applies only with --vertex-run: pass the pipeline job too\n")
    result = invoke("run", TRAINING, "--store", f"vertex://{JOB}")
    assert result.exit_code == 2
    assert result.output == (f"Error: vertex://{JOB} is a Vertex AI pipeline job, which kfp-lineage reads but never "
                             "records into: record into a file, mysql://, postgresql:// or grpc:// store\n")


# --- submit --vertex --wait --check --------------------------------------------------------------------------------


@pytest.fixture
def submit_standins(gcs, vertex_metadata, resource_manager):
    gcs.add_bucket("pipelines-bucket")
    return vertex_metadata


def submit_args(standin, *extra):
    return ["submit", TRAINING, "--vertex", "--project", PROJECT, "--location", LOCATION,
            "--pipeline-root", "gs://pipelines-bucket/root", "--api-endpoint", standin.url,
            "--param", "code_version=abc123", "--poll-interval", "0", *extra]


def test_submit_wait_check_checks_the_job_when_it_ends(submit_standins):
    standin = submit_standins
    add_training_run(standin, "training-check-1")  # what Vertex AI will have recorded when the job ends
    result = invoke(*submit_args(standin, "--job-id", "training-check-1", "--wait", "--check", TRAINING_LINEAGE))
    assert result.exit_code == 0, result.output
    job = f"projects/{PROJECT_NUMBER}/locations/{LOCATION}/pipelineJobs/training-check-1"
    assert result.stdout == (f"PIPELINE_STATE_SUCCEEDED {job}\n"
                             f"OK run training-check-1 of pipeline training matches {TRAINING_LINEAGE}: "
                             "9 tasks, 15 events\n")
    mine = f"projects/{PROJECT}/locations/{LOCATION}/pipelineJobs/training-check-1"
    assert [r.line for r in standin.requests] == [
        f"POST /v1/projects/{PROJECT}/locations/{LOCATION}/pipelineJobs",
        f"GET /v1/{job}", f"GET /v1/{job}",  # following the job until it ends
        f"GET /v1/{mine}",
        f"GET /v1/{CONTEXT.replace(JOB_ID, 'training-check-1')}:queryContextLineageSubgraph",
    ]
    assert f"checking the lineage of {mine} against {TRAINING_LINEAGE}" in result.stderr


def test_submit_wait_check_exits_1_when_the_lineage_differs(submit_standins):
    standin = submit_standins
    run = add_training_run(standin, "training-check-2")
    ingest = next(t for t in run.job["jobDetail"]["taskDetails"] if t["taskName"] == "ingest")
    standin.remove_event(ingest["execution"]["name"], run.output(ingest, "test"), "OUTPUT")
    result = invoke(*submit_args(standin, "--job-id", "training-check-2", "--wait", "--check", TRAINING_LINEAGE,
                                 "--json"))
    assert result.exit_code == 1
    import json

    data = json.loads(result.stdout)
    assert data["state"] == "PIPELINE_STATE_SUCCEEDED" and data["check"]["ok"] is False
    assert [(d["task"], d["kind"]) for d in data["check"]["differences"]] == [
        ("ingest", "missing event"), ("evaluate", "wrong producer")]


@pytest.mark.parametrize("extra, message", [
    (["--check", TRAINING_LINEAGE], "--check reads the job's lineage when it ends: use it with --vertex and --wait"),
    (["--wait", "--check", "OTHER"], "OTHER is the lineage spec of pipeline 'other', but the job runs 'training'"),
    (["--wait", "--check", "missing.lineage.yaml"], "missing.lineage.yaml"),
])
def test_submit_check_is_refused_before_anything_is_sent(vertex_metadata, tmp_path, extra, message):
    other = tmp_path / "other.lineage.yaml"
    other.write_text("version: 1\npipeline: other\ntasks:\n  hello:\n    type: system.ContainerExecution\n"
                     "    state: COMPLETE\n")
    message = message.replace("OTHER", str(other))
    result = invoke(*submit_args(vertex_metadata, *[str(other) if a == "OTHER" else a for a in extra]))
    assert result.exit_code == 2, result.output
    assert message in result.output and result.output.count("\n") == 1
    assert vertex_metadata.requests == []


# --- the README shows real output --------------------------------------------------------------------------------


def test_the_readme_shows_real_output_of_a_vertex_run():
    from tests.standins.vertex_metadata import VertexMetadataStandIn

    transcripts = [(args, printed) for args, printed in readme_examples.transcripts("Checking a run on Kubeflow or Vertex AI")
                   if "--vertex-run" in args]
    assert len(transcripts) == 3
    with VertexMetadataStandIn(project="my-project", project_number=PROJECT_NUMBER) as standin:
        run = add_training_run(standin, JOB_ID)
        for index, (args, printed) in enumerate(transcripts):
            if index == 2:  # the README's failing check: the event of evaluate reading the model taken out
                tasks = {t["taskName"]: t for t in run.job["jobDetail"]["taskDetails"]}
                standin.remove_event(tasks["evaluate"]["execution"]["name"], run.output(tasks["train"], "model"),
                                     "INPUT")
            with_endpoint = args + ["--api-endpoint", standin.url]
            cwd = os.getcwd()
            os.chdir(REPO)  # the README runs from the repository: specs/training.lineage.yaml
            try:
                result = invoke(*with_endpoint)
            finally:
                os.chdir(cwd)
            assert result.exit_code == (1 if index == 2 else 0), result.output
            assert result.output.splitlines() == printed


def test_submit_wait_check_reports_a_failed_job_that_left_no_lineage(submit_standins):
    standin = submit_standins
    standin.job_states = ["PIPELINE_STATE_RUNNING", "PIPELINE_STATE_FAILED"]
    result = invoke(*submit_args(standin, "--job-id", "training-check-3", "--wait", "--check", TRAINING_LINEAGE))
    assert result.exit_code == 1
    job = f"projects/{PROJECT}/locations/{LOCATION}/pipelineJobs/training-check-3"
    assert (f"warning: cannot check the lineage of the failed job: pipeline job {job} has no ML Metadata run "
            "context yet (PIPELINE_STATE_FAILED)") in result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        "Error: Vertex AI pipeline job training-check-3 ended PIPELINE_STATE_FAILED: The DAG failed")
