"""deploy_local end to end on real files; deploy_vertex at its boundary (pure request builders, input checks).

Vertex AI is not called here: everything deploy_vertex sends is built by the pure helpers in _vertex,
which are tested directly. tests/pipelines/test_vertex_deploy.py runs deploy_vertex with the real client libraries
against loopback stand-ins of Vertex AI and Cloud Storage.
"""

import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from component_test_support import assert_no_output, assert_one_line
from kfp import dsl
from kfp_lineage_components import _shared, _vertex
from kfp_lineage_components.deploy import deploy_local, deploy_vertex

ENDPOINT_KEYS = {
    "target",
    "endpoint_uri",
    "model_name",
    "model_version",
    "registry_path",
    "model_sha256",
    "deployed_by",
    "deployed_at",
    "pipeline_job_name",
}


def deploy(tmp_path: Path, model: dsl.Model, name: str = "endpoint", **kwargs) -> dsl.Artifact:
    endpoint = dsl.Artifact(uri=str(tmp_path / "deploy" / name))
    deploy_local.python_func(
        model=model, endpoint=endpoint, **{"model_name": "clf", "registry_dir": str(tmp_path / "registry"), **kwargs}
    )
    return endpoint


def test_publishes_numbered_versions_with_manifest(tmp_path, trained):
    first = deploy(tmp_path, trained, "first", deployed_by="alice", pipeline_job_name="training-20250101")
    second = deploy(tmp_path, trained, "second", deployed_by="bob")

    meta = first.metadata
    assert set(meta) == ENDPOINT_KEYS
    assert meta["target"] == "local"
    assert (meta["model_name"], meta["model_version"]) == ("clf", 1)
    assert second.metadata["model_version"] == 2
    version_dir = tmp_path / "registry" / "clf" / "v1"
    assert meta["registry_path"] == str(version_dir)
    served = Path(urlparse(meta["endpoint_uri"]).path)
    assert meta["endpoint_uri"].startswith("file://") and served == version_dir / "model.joblib"
    assert _shared.sha256_file(served) == meta["model_sha256"] == trained.metadata["sha256"]
    assert (meta["deployed_by"], meta["pipeline_job_name"]) == ("alice", "training-20250101")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["deployed_at"])
    assert json.loads(Path(first.path).read_text()) == meta

    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest["version"] == 1 and manifest["model_sha256"] == meta["model_sha256"]
    assert manifest["training_data_sha256"] == trained.metadata["training_data_sha256"]
    assert manifest["source_model_uri"] == trained.uri
    assert sorted(p.name for p in (tmp_path / "registry" / "clf").iterdir()) == ["v1", "v2"]


def test_relative_registry_dir_resolves_against_working_directory(tmp_path, trained, monkeypatch):
    monkeypatch.chdir(tmp_path)
    endpoint = dsl.Artifact(uri=str(tmp_path / "deploy" / "endpoint"))
    deploy_local.python_func(model=trained, endpoint=endpoint, model_name="clf")
    assert endpoint.metadata["registry_path"] == str(tmp_path / ".kfp-lineage" / "model-registry" / "clf" / "v1")


def test_deployed_by_comes_from_the_environment_when_empty(tmp_path, trained, monkeypatch):
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/models")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    endpoint = deploy(tmp_path, trained, pipeline_job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER)
    assert endpoint.metadata["deployed_by"] == "https://github.com/acme/models/actions/runs/42"
    assert endpoint.metadata["pipeline_job_name"] == ""  # an unsubstituted placeholder is not a job name


def test_tampered_model_file_is_refused(tmp_path, trained):
    Path(trained.path).write_bytes(Path(trained.path).read_bytes() + b"tampered")
    endpoint = dsl.Artifact(uri=str(tmp_path / "deploy" / "endpoint"))
    with pytest.raises(ValueError) as excinfo:
        deploy_local.python_func(
            model=trained, endpoint=endpoint, model_name="clf", registry_dir=str(tmp_path / "registry")
        )
    assert_one_line(
        excinfo, f"model file {trained.path} has sha256", "not the recorded", "changed after it was produced"
    )
    assert_no_output(Path(endpoint.path))
    assert endpoint.metadata == {}
    assert not (tmp_path / "registry").exists()


def test_missing_model_file_is_refused(tmp_path, trained):
    Path(trained.path).unlink()
    with pytest.raises(FileNotFoundError) as excinfo:
        deploy(tmp_path, trained)
    assert_one_line(excinfo, "model file", "is missing")
    assert_no_output(tmp_path / "deploy" / "endpoint")


def test_model_without_recorded_digest_is_refused(tmp_path, trained):
    del trained.metadata["sha256"]
    with pytest.raises(ValueError) as excinfo:
        deploy(tmp_path, trained)
    assert_one_line(excinfo, "model has no sha256 in its metadata")
    assert not (tmp_path / "registry").exists()


@pytest.mark.parametrize("name", ["../escape", "", ".hidden", "a/b"])
def test_unsafe_model_name_is_refused(tmp_path, trained, name):
    with pytest.raises(ValueError) as excinfo:
        deploy(tmp_path, trained, model_name=name)
    assert_one_line(excinfo, f"model_name {name!r} is not a safe directory name")
    assert not (tmp_path / "registry").exists()


# --- deploy_vertex: the boundary ---------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments, expected",
    [
        ({"project": "", "location": "us-central1"}, "project is empty: set the pipeline parameter project"),
        ({"project": "My Project", "location": "us-central1"}, "project 'My Project' is not a Google Cloud project ID"),
        ({"project": "my-project", "location": ""}, "location is empty: set the pipeline parameter location"),
        ({"project": "my-project", "location": "US Central"}, "location 'US Central' is not a Vertex AI region"),
        ({"project": "p-1", "location": "us-central1", "staging_bucket": "bucket"}, "staging_bucket 'bucket'"),
        ({"project": "p-1", "location": "us-central1", "endpoint_display_name": " "}, "endpoint_display_name is empty"),
    ],
    ids=["no-project", "bad-project", "no-location", "bad-location", "bad-staging-bucket", "no-endpoint-name"],
)
def test_deploy_vertex_checks_its_inputs_before_anything_else(tmp_path, trained, arguments, expected):
    vertex_model = dsl.Artifact(uri=str(tmp_path / "deploy" / "vertex_model"))
    vertex_endpoint = dsl.Artifact(uri=str(tmp_path / "deploy" / "vertex_endpoint"))
    with pytest.raises(ValueError) as excinfo:
        deploy_vertex.python_func(
            model=trained, vertex_model=vertex_model, vertex_endpoint=vertex_endpoint, **arguments
        )
    assert_one_line(excinfo, expected)
    assert not (tmp_path / "deploy").exists()  # nothing staged
    assert vertex_model.metadata == {} and vertex_endpoint.metadata == {}


def test_deploy_vertex_refuses_a_tampered_model_before_calling_vertex(tmp_path, trained):
    Path(trained.path).write_bytes(b"not the trained model")
    vertex_model = dsl.Artifact(uri=str(tmp_path / "deploy" / "vertex_model"))
    with pytest.raises(ValueError) as excinfo:
        deploy_vertex.python_func(
            model=trained,
            vertex_model=vertex_model,
            vertex_endpoint=dsl.Artifact(uri=str(tmp_path / "deploy" / "vertex_endpoint")),
            project="test-project",
            location="us-central1",
        )
    assert_one_line(excinfo, "model file", "not the recorded")
    assert_no_output(Path(vertex_model.path) / "model.joblib")


def test_label_sanitising_follows_gcp_rules():
    assert _vertex.sanitize_label_value("Training Run #7 / Ünïcode") == "training-run-7-n-code"
    assert _vertex.sanitize_label_value("x" * 100) == "x" * 63
    assert _vertex.sanitize_label_value("") == ""
    assert _vertex.sanitize_label_key("Team") == "team"
    assert _vertex.sanitize_label_key("2024-run") == "k-2024-run"
    assert _vertex.sanitize_label_key("!!!") == "k"
    rule = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
    for key in ("Team", "2024-run", "!!!", "A" * 80):
        assert rule.match(_vertex.sanitize_label_key(key))


def test_labels_carry_the_run_and_model_digest():
    sha = "ab" * 32
    labels = _vertex.build_labels("Training 2025-01-01 12:00", sha, extra={"Owner": "ML Team"})
    assert labels == {
        "managed-by": "kfp-lineage",
        "model-sha256-prefix": sha[:16],
        "pipeline-job": "training-2025-01-01-12-00",
        "owner": "ml-team",
    }
    assert "pipeline-job" not in _vertex.build_labels("{{$.pipeline_job_name}}", sha)
    assert "pipeline-job" not in _vertex.build_labels("", sha)


def test_upload_request():
    request = _vertex.build_upload_request(
        display_name="breast-cancer-classifier",
        artifact_uri="gs://bucket/root/run/deploy-vertex/vertex_model",
        serving_image="us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-6:latest",
        labels={"managed-by": "kfp-lineage"},
        model_sha256="c" * 64,
        source_model_uri="gs://bucket/root/run/train/model",
    )
    assert request == {
        "display_name": "breast-cancer-classifier",
        "artifact_uri": "gs://bucket/root/run/deploy-vertex/vertex_model",
        "serving_container_image_uri": "us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-6:latest",
        "labels": {"managed-by": "kfp-lineage"},
        "description": f"Uploaded by kfp-lineage from gs://bucket/root/run/train/model (sha256 {'c' * 64}).",
        "sync": True,
    }
    with pytest.raises(ValueError) as excinfo:
        _vertex.build_upload_request("", "gs://b/m", "img", {}, "c" * 64, "gs://b/m")
    assert_one_line(excinfo, "model_display_name is empty")


def test_init_arguments():
    # Always REST and an explicit endpoint: the path the stand-in tests exercise is the one that runs.
    assert _vertex.init_kwargs("p", "us-central1") == {
        "project": "p",
        "location": "us-central1",
        "api_endpoint": "us-central1-aiplatform.googleapis.com",
        "api_transport": "rest",
    }
    assert _vertex.init_kwargs("p", "us-central1", "http://localhost:8080", "gs://b/staging") == {
        "project": "p",
        "location": "us-central1",
        "api_endpoint": "http://localhost:8080",
        "api_transport": "rest",
        "staging_bucket": "gs://b/staging",
    }
    with pytest.raises(ValueError) as excinfo:
        _vertex.init_kwargs("p", "us-central1", staging_bucket="my-bucket")
    assert_one_line(excinfo, "staging_bucket 'my-bucket' is not a gs:// URI")


def test_only_plain_http_endpoints_are_called_without_credentials():
    assert _vertex.uses_anonymous_credentials("http://127.0.0.1:8080")
    assert not _vertex.uses_anonymous_credentials("https://vertex.example.com")
    assert not _vertex.uses_anonymous_credentials("us-central1-aiplatform.googleapis.com")
    assert not _vertex.uses_anonymous_credentials("")


def test_retries_are_bounded_and_only_for_retryable_errors():
    delays = _vertex.retry_delays()
    assert len(delays) == _vertex.RETRY_ATTEMPTS - 1
    assert all(0.5 * bound <= d <= bound for d, bound in zip(delays, [1.0, 2.0, 4.0, 8.0]))
    calls, slept = [], []

    def flaky():
        calls.append(1)
        raise LookupError("429")

    with pytest.raises(LookupError):
        _vertex.call_with_retry(flaky, lambda e: True, sleep=slept.append)
    assert len(calls) == _vertex.RETRY_ATTEMPTS and len(slept) == _vertex.RETRY_ATTEMPTS - 1
    calls.clear()
    with pytest.raises(LookupError):
        _vertex.call_with_retry(flaky, lambda e: False, sleep=slept.append)
    assert len(calls) == 1


def test_api_error_messages_name_the_step_the_answer_and_the_fix():
    describe = _vertex.describe_api_error
    assert describe("endpoint create", 429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "p-1", "us-central1") == (
        "Vertex AI endpoint create failed (429 RESOURCE_EXHAUSTED: Quota exceeded.):"
        " still rate-limited after 5 attempts: retry later or ask for more quota"
    )
    assert describe("model deploy", 500, "", "boom", "p-1", "us-central1") == (
        "Vertex AI model deploy failed (500: boom): check project 'p-1', location 'us-central1', api_endpoint and"
        " permissions"
    )
    assert describe(_vertex.STAGING_STEP, 404, "NOT_FOUND", "No such bucket.", "p-1", "us-central1") == (
        "Vertex AI model upload (staging the model in Cloud Storage) failed (404 NOT_FOUND: No such bucket.):"
        " the staging bucket does not exist: create it, or pass another staging_bucket"
    )


def test_endpoint_choice_reuses_the_newest_exact_match():
    candidate = _vertex.EndpointCandidate
    endpoints = [
        candidate("projects/p/locations/l/endpoints/1", "clf", "2025-01-01T00:00:00Z"),
        candidate("projects/p/locations/l/endpoints/2", "clf", "2025-03-01T00:00:00Z"),
        candidate("projects/p/locations/l/endpoints/3", "clf-canary", "2025-06-01T00:00:00Z"),
    ]
    assert _vertex.choose_endpoint(endpoints, "clf") == "projects/p/locations/l/endpoints/2"
    assert _vertex.choose_endpoint(endpoints, "other") is None
    assert _vertex.choose_endpoint([], "clf") is None
    tie = [
        candidate("projects/p/locations/l/endpoints/9", "clf", ""),
        candidate("projects/p/locations/l/endpoints/8", "clf", ""),
    ]
    assert _vertex.choose_endpoint(tie, "clf") == "projects/p/locations/l/endpoints/9"
    assert _vertex.endpoint_list_filter('my "quoted" name') == 'display_name="my \\"quoted\\" name"'


def test_resource_uris():
    name = "projects/p/locations/us-central1/models/123"
    assert _vertex.resource_uri(name, "us-central1") == f"https://us-central1-aiplatform.googleapis.com/v1/{name}"
    assert _vertex.resource_uri(name, "us-central1", "http://localhost:8080/") == f"http://localhost:8080/v1/{name}"
    assert _vertex.resource_uri(name, "us-central1", "vertex.example.com") == f"https://vertex.example.com/v1/{name}"


def test_model_is_staged_under_the_serving_file_name(tmp_path, trained):
    staged = _vertex.stage_model(trained.path, trained.metadata, str(tmp_path / "staging"))
    assert staged == tmp_path / "staging" / "model.joblib"
    assert _shared.sha256_file(staged) == trained.metadata["sha256"]
