"""The deploy_vertex component with google-cloud-aiplatform against loopback Vertex AI and Cloud Storage stand-ins,
alone and as the `vertex` branch of the training pipeline run by the local runner, with its MLMD lineage.
"""

import os
import re
import urllib.parse

import pytest
from kfp import dsl
from kfp_lineage_components import _shared
from kfp_lineage_components.deploy import deploy_vertex

from kfp_lineage.engine import run as run_module
from tests import conftest
from tests.mlmd_view import RunView
from tests.standins.project import LOCATION, PROJECT, PROJECT_NUMBER

pytest_plugins = ["tests.standins.fixtures"]
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TRAINING = os.path.join(REPO, "specs", "training.yaml")
DATA = os.path.join(REPO, "data", "breast_cancer.csv")
IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-6:latest"
STAGING = "staging-bucket"
PARENT = f"projects/{PROJECT_NUMBER}/locations/{LOCATION}"
STAGED = re.compile(r"^gs://staging-bucket/vertex_ai_auto_staging/\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d\.\d{3}$")


@pytest.fixture
def model(tmp_path):
    """A model artifact as train leaves it: a file and its recorded sha256 (deploy never unpickles it)."""
    artifact = dsl.Model(name="model", uri=str(tmp_path / "train" / "model"))
    os.makedirs(os.path.dirname(artifact.path))
    with open(artifact.path, "wb") as f:
        f.write(b"a pickled classifier")
    artifact.metadata.update(sha256=_shared.sha256_file(artifact.path), framework="scikit-learn")
    return artifact


@pytest.fixture
def staging(gcs):
    gcs.add_bucket(STAGING)
    return gcs


def deploy(tmp_path, model, vertex_url, **overrides):
    outputs = {
        "vertex_model": dsl.Artifact(name="vertex_model", uri=str(tmp_path / "deploy" / "vertex_model")),
        "vertex_endpoint": dsl.Artifact(name="vertex_endpoint", uri=str(tmp_path / "deploy" / "vertex_endpoint")),
    }
    arguments = dict(project=PROJECT, location=LOCATION, model_display_name="clf", endpoint_display_name="clf-endpoint",
                     api_endpoint=vertex_url, staging_bucket=f"gs://{STAGING}", deployed_by="ci",
                     pipeline_job_name="training-20260101-000000-abcdef")
    arguments.update(overrides)
    deploy_vertex.python_func(model=model, **outputs, **arguments)
    return outputs["vertex_model"], outputs["vertex_endpoint"]


def assert_one_line(excinfo, expected):
    message = str(excinfo.value)
    assert "\n" not in message and message == expected, message


def test_deploy_uploads_the_model_creates_the_endpoint_and_routes_all_traffic(tmp_path, model, staging, vertex):
    vertex_model, vertex_endpoint = deploy(tmp_path, model, vertex.url)

    sha = model.metadata["sha256"]
    labels = {"managed-by": "kfp-lineage", "pipeline-job": "training-20260101-000000-abcdef",
              "model-sha256-prefix": sha[:16]}
    model_name, endpoint_name = f"{PARENT}/models/1001", f"{PARENT}/endpoints/1003"
    # Decoded: newer google-api-core sends the model version as models/1001%401, older ones as models/1001@1.
    assert [urllib.parse.unquote(r.line) for r in vertex.requests] == [
        f"POST /v1/projects/{PROJECT}/locations/{LOCATION}/models:upload",
        f"GET /ui/{model_name}/operations/1002",  # the upload's long-running operation, polled until done
        f"GET /v1/{model_name}@1",
        f"GET /v1/projects/{PROJECT}/locations/{LOCATION}/endpoints",
        f"POST /v1/projects/{PROJECT}/locations/{LOCATION}/endpoints",
        f"GET /ui/{endpoint_name}/operations/1004",
        f"POST /v1/{endpoint_name}:deployModel",
        f"GET /ui/{endpoint_name}/operations/1006",
        f"GET /v1/{endpoint_name}",
    ]
    upload, _, _, lookup, create, _, deploy_model, _, _ = vertex.requests
    artifact_uri = upload.body["model"]["artifactUri"]
    assert STAGED.match(artifact_uri), artifact_uri
    assert upload.body == {"model": {
        "displayName": "clf",
        "description": f"Uploaded by kfp-lineage from {model.uri} (sha256 {sha}).",
        "containerSpec": {"imageUri": IMAGE},
        "labels": labels,
        "artifactUri": artifact_uri,
        "versionAliases": ["default"],
    }}
    assert lookup.query["filter"] == 'display_name="clf-endpoint"'
    assert create.body == {"displayName": "clf-endpoint", "labels": labels}
    assert deploy_model.body == {
        "deployedModel": {
            "model": f"{model_name}@1",
            "displayName": "clf",
            "dedicatedResources": {"machineSpec": {"machineType": "n1-standard-2"}, "minReplicaCount": 1,
                                   "maxReplicaCount": 1},
        },
        "trafficSplit": {"0": 100},
    }
    # The model directory went to the staging bucket first: model.joblib, the file prebuilt images load.
    assert sorted(r.line for r in staging.requests) == [  # the client looks the bucket up while it uploads
        f"GET /storage/v1/b/{STAGING}", f"POST /upload/storage/v1/b/{STAGING}/o"
    ]
    staged_name = artifact_uri[len(f"gs://{STAGING}/"):] + "/model.joblib"
    assert staging.object_names(STAGING) == [staged_name]
    assert staging.objects[(STAGING, staged_name)] == b"a pickled classifier"

    assert vertex_model.uri == f"{vertex.url}/v1/{model_name}"
    assert vertex_endpoint.uri == f"{vertex.url}/v1/{endpoint_name}"
    deployed_at = vertex_model.metadata.pop("deployed_at")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", deployed_at)
    assert vertex_model.metadata == {
        "resourceName": model_name, "displayName": "clf", "artifact_uri": artifact_uri, "serving_image": IMAGE,
        "model_sha256": sha, "labels": labels, "deployed_by": "ci",
        "pipeline_job_name": "training-20260101-000000-abcdef",
    }
    assert vertex_endpoint.metadata == {
        "resourceName": endpoint_name, "displayName": "clf-endpoint", "target": "vertex", "endpoint_created": True,
        "model_resource_name": model_name, "machine_type": "n1-standard-2", "traffic_percentage": 100,
        "model_sha256": sha, "deployed_by": "ci", "deployed_at": deployed_at,
        "pipeline_job_name": "training-20260101-000000-abcdef",
    }
    [deployed] = vertex.endpoints[endpoint_name]["deployedModels"]
    assert vertex.endpoints[endpoint_name]["trafficSplit"] == {deployed["id"]: 100}


def test_an_endpoint_with_the_display_name_is_reused(tmp_path, model, staging, vertex):
    older = vertex.add_endpoint("clf-endpoint", create_time="2025-01-01T00:00:00Z")
    newer = vertex.add_endpoint("clf-endpoint", create_time="2025-06-01T00:00:00Z")
    vertex.add_endpoint("clf-endpoint-canary", create_time="2025-09-01T00:00:00Z")
    _, vertex_endpoint = deploy(tmp_path, model, vertex.url)
    assert vertex.requests_to("POST", "/endpoints$") == []
    assert [r.path for r in vertex.requests_to("POST", ":deployModel$")] == [f"/v1/{newer}:deployModel"]
    assert vertex_endpoint.metadata["resourceName"] == newer != older
    assert vertex_endpoint.metadata["endpoint_created"] is False


def test_429_is_retried_with_backoff_then_succeeds(tmp_path, model, staging, vertex):
    vertex.fail("POST", ":deployModel$", 429)
    _, vertex_endpoint = deploy(tmp_path, model, vertex.url)
    assert [r.status for r in vertex.requests_to("POST", ":deployModel$")] == [429, 200]
    assert vertex_endpoint.metadata["traffic_percentage"] == 100


@pytest.mark.parametrize(
    "status, location, expected",
    [
        (403, LOCATION,
         "Vertex AI model upload failed (403 PERMISSION_DENIED: Permission denied on resource (or it may not "
         "exist).): check that project 'test-project' is right and that the account deploying has the Vertex AI "
         "User role (roles/aiplatform.user) there"),
        (None, "europe-west4",
         "Vertex AI model upload failed (404 NOT_FOUND: Location europe-west4 is not found or not supported by this "
         "stand-in.): check project 'test-project', location 'europe-west4' and api_endpoint"),
    ],
    ids=["403", "404"],
)
def test_api_errors_fail_the_task_with_one_line(tmp_path, model, staging, vertex, status, location, expected):
    if status:
        vertex.fail("POST", "models:upload$", status)
    with pytest.raises(RuntimeError) as excinfo:
        deploy(tmp_path, model, vertex.url, location=location)
    assert_one_line(excinfo, expected)
    assert len(vertex.requests) == 1  # not retried, nothing after it


@pytest.mark.parametrize(
    "status, message, expected",
    [
        (403, "caller does not have storage.objects.create access",
         "Vertex AI model upload (staging the model in Cloud Storage) failed (403 PERMISSION_DENIED: caller does not "
         "have storage.objects.create access): check that the account deploying may create objects in "
         "gs://staging-bucket (roles/storage.objectCreator)"),
        (404, "The specified bucket does not exist.",
         "Vertex AI model upload (staging the model in Cloud Storage) failed (404 NOT_FOUND: The specified bucket does "
         "not exist.): gs://staging-bucket does not exist: create it, or pass another staging_bucket"),
    ],
    ids=["403", "404"],
)
def test_a_storage_error_while_staging_names_the_staging_bucket(tmp_path, model, staging, vertex, status, message,
                                                                 expected):
    staging.fail("POST", f"/upload/storage/v1/b/{STAGING}/o$", status, message=message)
    with pytest.raises(RuntimeError) as excinfo:
        deploy(tmp_path, model, vertex.url)
    assert_one_line(excinfo, expected)
    assert vertex.requests == []


@pytest.mark.slow
def test_training_pipeline_deploys_to_vertex_and_records_the_lineage(tmp_path, staging, vertex):
    """specs/training.yaml through the local runner with deploy_target=vertex: the deploy task calls the stand-ins."""
    store = str(tmp_path / "mlmd.sqlite")
    env = dict(os.environ, STORAGE_EMULATOR_HOST=staging.url)
    result = run_module.run_pipeline(
        TRAINING,
        {"deploy_target": "vertex", "project": PROJECT, "location": LOCATION, "vertex_api_endpoint": vertex.url,
         "vertex_staging_bucket": f"gs://{STAGING}", "source_uri": DATA, "code_version": "abc123",
         "deployed_by": "https://ci.example/build/7"},
        store=store, pipeline_root=str(tmp_path / "root"), run_id="training-vertex-1", cwd=str(tmp_path), env=env,
    )
    deploy_key = "condition-1/condition-branches-2/condition-4/deploy-vertex"
    assert result.state == "COMPLETE", {k: t.error for k, t in result.tasks.items() if t.error}

    view = RunView(conftest.open_store(store), "training-vertex-1")
    assert view.state(deploy_key) == "COMPLETE"
    assert view.state("condition-1/condition-branches-2/condition-3") == "CANCELED"  # the local deploy branch
    [trained] = view.outputs("train")["model"]
    assert view.inputs(deploy_key) == {"model": [trained]}
    outputs = view.outputs(deploy_key)
    [model_id], [endpoint_id] = outputs["vertex_model"], outputs["vertex_endpoint"]
    vertex_model, vertex_endpoint = view.artifact(model_id), view.artifact(endpoint_id)
    model_name, endpoint_name = f"{PARENT}/models/1001", f"{PARENT}/endpoints/1003"
    assert (vertex_model.type, vertex_model.uri) == ("google.VertexModel", f"{vertex.url}/v1/{model_name}")
    assert (vertex_endpoint.type, vertex_endpoint.uri) == ("google.VertexEndpoint", f"{vertex.url}/v1/{endpoint_name}")
    model_props, endpoint_props = vertex_model.custom_properties, vertex_endpoint.custom_properties
    assert model_props["resourceName"].string_value == model_name
    assert endpoint_props["resourceName"].string_value == endpoint_name
    assert endpoint_props["model_resource_name"].string_value == model_name
    trained_sha = view.artifact(trained).custom_properties["sha256"].string_value
    assert model_props["model_sha256"].string_value == endpoint_props["model_sha256"].string_value == trained_sha
    assert endpoint_props["deployed_by"].string_value == "https://ci.example/build/7"
    assert endpoint_props["pipeline_job_name"].string_value == "training-vertex-1"

    # What Vertex AI was asked, by the task's own process: the run's id and the model digest as labels.
    labels = {"managed-by": "kfp-lineage", "pipeline-job": "training-vertex-1", "model-sha256-prefix": trained_sha[:16]}
    [upload] = vertex.requests_to("POST", "models:upload$")
    assert upload.body["model"]["labels"] == labels
    assert upload.body["model"]["displayName"] == "breast-cancer-classifier"
    assert STAGED.match(upload.body["model"]["artifactUri"])
    assert model_props["artifact_uri"].string_value == upload.body["model"]["artifactUri"]
    [create] = vertex.requests_to("POST", "/endpoints$")
    assert create.body == {"displayName": "breast-cancer-classifier", "labels": labels}
    [deploy_model] = vertex.requests_to("POST", ":deployModel$")
    assert deploy_model.body["deployedModel"]["model"] == f"{model_name}@1"
    assert deploy_model.body["trafficSplit"] == {"0": 100}
    assert [r.status for r in vertex.requests] == [200] * 9
    staged = [n for n in staging.object_names(STAGING) if n.endswith("/model.joblib")]
    assert len(staged) == 1
    assert _shared.sha256_file(view.artifact(trained).uri) == trained_sha
    import hashlib
    assert hashlib.sha256(staging.objects[(STAGING, staged[0])]).hexdigest() == trained_sha
