"""A Vertex AI Pipelines run read from Vertex ML Metadata with google-cloud-aiplatform (REST) against a loopback
stand-in (tests/standins/vertex_metadata.py): the exact requests, the mapping onto the KFP backend's vocabulary,
the 1,000-node limit, and one-line errors."""

import json

import pytest
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage import errors
from kfp_lineage.expect import check as expectations
from kfp_lineage.lineage import queries
from kfp_lineage.remote import vertex_lineage as vertex_reader, vertex_mapping
from tests.standins.mlmd_grpc import unused_port
from tests.standins.project import LOCATION, PROJECT, PROJECT_NUMBER
from tests.standins.vertex_metadata import VertexMetadataStandIn, add_training_run

pytest_plugins = ["tests.standins.fixtures"]

JOB_ID = "training-20261201100000"
JOB = f"projects/{PROJECT}/locations/{LOCATION}/pipelineJobs/{JOB_ID}"
STORE = f"projects/{PROJECT_NUMBER}/locations/{LOCATION}/metadataStores/default"
CONTEXT = f"{STORE}/contexts/{JOB_ID}"
TRAINING_LINEAGE = "specs/training.lineage.yaml"
ALT = {"$alt": "json;enum-encoding=int"}  # what the REST transport adds to every request


def open_run(standin, job=JOB, **options):
    return vertex_reader.open_vertex_run(vertex_reader.parse_vertex_run(job, api_endpoint=standin.url, **options))


@pytest.fixture
def training(vertex_metadata):
    return add_training_run(vertex_metadata, JOB_ID)


def as_json(graph):
    return json.dumps(graph.to_json(), sort_keys=True, default=str)


# --- reading and mapping -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("top_level_parent_ids", [True, False], ids=["parent-ids", "no-top-level-parent-ids"])
def test_a_vertex_run_passes_the_lineage_spec_written_for_local_runs(vertex_metadata, top_level_parent_ids):
    vertex_metadata.top_level_parent_ids = top_level_parent_ids
    add_training_run(vertex_metadata, JOB_ID)
    store = open_run(vertex_metadata)
    result = expectations.check_lineage(store, TRAINING_LINEAGE)
    assert result.ok, result.to_text()
    assert result.to_text() == f"OK run {JOB_ID} of pipeline training matches {TRAINING_LINEAGE}: 9 tasks, 15 events"
    assert [(r.line, r.query, r.body) for r in vertex_metadata.requests] == [
        (f"GET /v1/{JOB}", ALT, None),
        (f"GET /v1/{CONTEXT}:queryContextLineageSubgraph", ALT, None),
    ]
    assert {r.headers.get("authorization") for r in vertex_metadata.requests} == {None}  # http://: anonymous


def test_the_mapping_onto_the_kfp_backends_vocabulary(vertex_metadata, training):
    store = open_run(vertex_metadata)
    [run] = store.get_contexts_by_type("system.PipelineRun")
    [pipeline] = store.get_parent_contexts_by_context(run.id)
    assert (run.name, pipeline.name, pipeline.type) == (JOB_ID, "training", "system.Pipeline")
    assert run.external_id == CONTEXT
    executions = {e.external_id: e for e in store.get_executions_by_context(run.id)}
    vertex = {t["taskName"]: t for t in training.job["jobDetail"]["taskDetails"]}
    root = executions[vertex[JOB_ID]["execution"]["name"]]
    assert (root.name, root.type, root.last_known_state) == (f"run/{JOB_ID}", "system.DAGExecution",
                                                            mlmd_pb.Execution.COMPLETE)
    assert "parent_dag_id" not in root.custom_properties and root.custom_properties["task_name"].string_value == ""
    assert root.custom_properties["inputs"].struct_value["threshold"] == 0.9  # from input:threshold
    evaluate = executions[vertex["evaluate"]["execution"]["name"]]
    assert evaluate.type == "system.ContainerExecution"
    assert evaluate.custom_properties["parent_dag_id"].int_value == root.id
    assert dict(evaluate.custom_properties["inputs"].struct_value) == {"label_column": "label", "threshold": 0.9}
    assert dict(evaluate.custom_properties["outputs"].struct_value) == {"passed": True}  # from output:passed
    condition = executions[vertex["condition-4"]["execution"]["name"]]
    assert (condition.type, condition.last_known_state) == ("system.DAGExecution", mlmd_pb.Execution.CANCELED)
    events = store.get_events_by_execution_ids([evaluate.id])
    keys = sorted((mlmd_pb.Event.Type.Name(e.type), e.path.steps[0].key) for e in events)
    assert keys == [("INPUT", "model"), ("INPUT", "test_data"), ("OUTPUT", "classification_metrics"),
                    ("OUTPUT", "metrics")]
    model_name = vertex["train"]["outputs"]["model"]["artifacts"][0]["name"]
    [model] = store.get_artifacts_by_external_ids([model_name])
    assert (model.type, model.uri) == ("system.Model", vertex_metadata.artifacts[model_name]["uri"])
    assert model.custom_properties["display_name"].string_value == "model"
    assert model.custom_properties["sha256"].string_value.startswith("9940075c6f63")
    assert model.custom_properties["hyperparameters"].struct_value["n_estimators"] == 100
    assert list(model.custom_properties["classes"].struct_value["list"]) == [0, 1]  # as the backend stores lists


def test_show_and_trace_read_a_vertex_run_with_vertexs_times(vertex_metadata, training):
    store = open_run(vertex_metadata)
    graph = queries.describe(store, "latest")
    summary = graph.runs[JOB_ID]
    assert (summary.pipeline, summary.state, summary.task_states) == ("training", "COMPLETE",
                                                                     {"COMPLETE": 8, "CANCELED": 1})
    tasks = {e.path: e for e in graph.executions.values()}
    train = next(t for t in training.job["jobDetail"]["taskDetails"] if t["taskName"] == "train")
    assert train["execution"]["createTime"] == "2026-12-01T10:00:35.000000Z"
    assert tasks["train"].create_time == 1796119235000  # Vertex's createTime, not the time of the read
    assert tasks["train"].duration_seconds == 5.0
    trace = queries.trace(store, queries.find_artifact(store, f"{JOB_ID}/train/model"))
    assert sorted(e.task_name for e in trace.executions.values()) == ["deploy-local", "evaluate", "ingest",
                                                                      "train"]
    assert trace.root.run_id == JOB_ID


def test_a_missing_event_fails_the_check_with_a_readable_difference(vertex_metadata, training):
    deploy = next(t for t in training.job["jobDetail"]["taskDetails"] if t["taskName"] == "deploy-local")
    model = deploy["inputs"]["model"]["artifacts"][0]["name"]
    vertex_metadata.remove_event(deploy["execution"]["name"], model, "INPUT")
    result = expectations.check_lineage(open_run(vertex_metadata), TRAINING_LINEAGE)
    assert not result.ok
    assert result.to_text() == "\n".join([
        f"FAIL run {JOB_ID} of pipeline training does not match {TRAINING_LINEAGE}: 1 difference",
        f"  {TRAINING_LINEAGE}:76: condition-1/condition-branches-2/condition-3/deploy-local: missing event: "
        "INPUT model (system.Model from train.model) is not recorded",
        "recorded lineage of the tasks involved:",
        "  condition-1/condition-branches-2/condition-3/deploy-local  system.ContainerExecution  COMPLETE  "
        "(execution 10)",
        "    OUTPUT  endpoint  system.Artifact  metadata: deployed_at, deployed_by, endpoint_uri, model_sha256, "
        "model_version, registry_path",
    ])


def test_dag_outputs_and_tasks_without_executions(vertex_metadata):
    run = vertex_metadata.add_run("small-1", "small", root_state="RUNNING", state="PIPELINE_STATE_RUNNING")
    made = run.task("make", outputs={"data": ("system.Dataset", {"rows": 3})})
    # Vertex records a pipeline output on the root too; the KFP backend records no OUTPUT event on a DAG.
    vertex_metadata.events.append({"artifact": run.output(made, "data"), "execution": run.root["execution"]["name"],
                                   "eventTime": made["endTime"], "type": "OUTPUT"})
    run.task("later", {"data": run.output(made, "data")}, execution=False, task_state="PENDING")
    run.task("skipped", execution=False, task_state="NOT_TRIGGERED")
    store = open_run(vertex_metadata, f"projects/{PROJECT}/locations/{LOCATION}/pipelineJobs/small-1")
    graph = queries.describe(store, "small-1")
    states = {e.path: e.state for e in graph.executions.values()}
    assert states == {"": "RUNNING", "make": "COMPLETE", "later": "NEW", "skipped": "CANCELED"}
    data = queries.find_artifact(store, "small-1/make/data")
    assert graph.producer(data.id).task_name == "make"
    assert [mlmd_pb.Event.Type.Name(e.type) for e in store.get_events_by_artifact_ids([data.id])] == ["OUTPUT"]
    assert graph.runs["small-1"].state == "RUNNING"


def test_a_run_past_the_subgraph_limit_is_read_page_by_page(training):
    standin = training.standin
    whole = open_run(standin)
    standin.requests.clear()
    standin.subgraph_limit = 5
    url = vertex_reader.parse_vertex_run(JOB, api_endpoint=standin.url)
    read = vertex_reader.read_vertex_run(url, page_size=4)
    assert read.paged and len(read.executions) == 10 and len(read.artifacts) == 7 and len(read.events) == 15
    lines = [(r.line, {k: v for k, v in r.query.items() if k != "$alt"}, r.status) for r in standin.requests]
    listing = f"GET /v1/{STORE}/executions"
    assert lines[:5] == [
        (f"GET /v1/{JOB}", {}, 200),
        (f"GET /v1/{CONTEXT}:queryContextLineageSubgraph", {}, 400),
        (listing, {"filter": f'in_context("{CONTEXT}")', "pageSize": "4"}, 200),
        (listing, {"filter": f'in_context("{CONTEXT}")', "pageSize": "4", "pageToken": "4"}, 200),
        (listing, {"filter": f'in_context("{CONTEXT}")', "pageSize": "4", "pageToken": "8"}, 200),
    ]
    per_execution = sorted(line for line, _, _ in lines[5:])
    assert per_execution == sorted(f"GET /v1/{name}:queryExecutionInputsAndOutputs" for name in read.executions)
    paged = vertex_mapping.load_vertex_run(read)
    for reference in ("latest", f"{JOB_ID}/train/model"):
        assert as_json(queries.describe(paged, reference)) == as_json(queries.describe(whole, reference))
    assert expectations.check_lineage(paged, TRAINING_LINEAGE).ok


def test_busy_answers_are_retried_a_few_times(vertex_metadata, training, monkeypatch):
    monkeypatch.setattr(vertex_reader, "RETRY", vertex_reader.submission.RetryPolicy(3, 0.01, 0.02))
    vertex_metadata.fail("GET", "queryContextLineageSubgraph", 429, times=2)
    assert expectations.check_lineage(open_run(vertex_metadata), TRAINING_LINEAGE).ok
    vertex_metadata.fail("GET", "queryContextLineageSubgraph", 503, times=3)
    with pytest.raises(errors.StoreError, match=r"\(503 UNAVAILABLE: error\): Vertex AI was unavailable for 3 "):
        open_run(vertex_metadata)


# --- errors --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("job, message", [
    (f"projects/other-project/locations/{LOCATION}/pipelineJobs/{JOB_ID}",
     f"Vertex AI could not get pipeline job projects/other-project/locations/{LOCATION}/pipelineJobs/{JOB_ID} "
     "(403 PERMISSION_DENIED: Permission 'aiplatform.pipelineJobs.get' denied on resource "
     f"'//aiplatform.googleapis.com/projects/other-project/locations/{LOCATION}' (or it may not exist).): "
     "check that project 'other-project' is right and that your account may read Vertex AI in it "
     "(roles/aiplatform.viewer)"),
    (f"projects/{PROJECT}/locations/{LOCATION}/pipelineJobs/training-missing",
     f"Vertex AI could not get pipeline job projects/{PROJECT}/locations/{LOCATION}/pipelineJobs/training-missing "
     f"(404 NOT_FOUND: The PipelineJob \"projects/{PROJECT_NUMBER}/locations/{LOCATION}/pipelineJobs/"
     f"training-missing\" does not exist.): check the job ID, project '{PROJECT}' and location '{LOCATION}' "
     "(`kfp-lineage submit --vertex` prints the job's name)"),
    (f"projects/{PROJECT}/pipelineJobs/{JOB_ID}",
     f"projects/{PROJECT}/pipelineJobs/{JOB_ID} is not a Vertex AI pipeline job: pass "
     "projects/PROJECT/locations/REGION/pipelineJobs/JOB, as `kfp-lineage submit --vertex` and the Vertex AI SDK "
     "print it"),
])
def test_a_wrong_project_or_a_missing_job_is_one_line(vertex_metadata, training, job, message):
    with pytest.raises(errors.StoreError) as raised:
        open_run(vertex_metadata, job)
    assert str(raised.value) == message and raised.value.exit_code == 2


def test_an_unreachable_endpoint_is_one_line():
    endpoint = f"http://127.0.0.1:{unused_port()}"
    with pytest.raises(errors.StoreError) as raised:
        vertex_reader.open_vertex_run(vertex_reader.parse_vertex_run(JOB, api_endpoint=endpoint))
    assert str(raised.value) == (f"cannot reach Vertex AI at {endpoint} to get pipeline job {JOB} (ConnectionError): "
                                 "check --api-endpoint and your network")


def test_an_endpoint_that_does_not_answer_times_out(vertex_metadata, training):
    release = vertex_metadata.stall("GET", "queryContextLineageSubgraph")
    try:
        with pytest.raises(errors.StoreError) as raised:
            open_run(vertex_metadata, timeout=0.5)
    finally:
        release.set()
    assert str(raised.value) == (f"Vertex AI did not answer within 0.5 s to query the lineage of {CONTEXT} "
                                 f"({vertex_metadata.url}): check your network and --api-endpoint, then retry")


def test_a_job_that_has_not_started_has_no_lineage_yet(vertex_metadata):
    run = vertex_metadata.add_run("pending-1", "training", state="PIPELINE_STATE_PENDING")
    del run.job["jobDetail"]
    with pytest.raises(errors.StoreError, match=r"pipelineJobs/pending-1 has no ML Metadata run context yet "
                       r"\(PIPELINE_STATE_PENDING\): Vertex AI creates it when the job starts"):
        open_run(vertex_metadata, f"projects/{PROJECT}/locations/{LOCATION}/pipelineJobs/pending-1")


@pytest.mark.parametrize("text, options, message", [
    (f"vertex://{JOB}?endpoint=http://127.0.0.1:1&timeout=5", {}, None),
    (f"vertex://{JOB}?colour=red", {}, "unknown option 'colour'"),
    (f"vertex://{JOB}?timeout=0", {}, "timeout must be from 0 to 3600 seconds"),
    (JOB, {"api_endpoint": "not a host"}, "API endpoint 'not a host' is not a host"),
])
def test_vertex_urls(text, options, message):
    if message is None:
        url = vertex_reader.parse_vertex_run(text, **options)
        assert (url.project, url.location, url.job_id, url.api_endpoint, url.timeout) == (
            PROJECT, LOCATION, JOB_ID, "http://127.0.0.1:1", 5.0)
        assert vertex_reader.parse_vertex_run(url.redacted) == url and str(url) == text
        return
    with pytest.raises(errors.StoreError, match=message):
        vertex_reader.parse_vertex_run(text, **options)


def test_the_scratch_store_is_removed_with_the_store(vertex_metadata, training):
    import gc
    import os

    from kfp_lineage.lineage import reader

    store = open_run(vertex_metadata)
    path = reader.sqlite_path(store)
    assert path and os.path.exists(path)
    del store
    gc.collect()
    assert not os.path.exists(os.path.dirname(path))


def test_the_default_endpoint_is_the_regions(monkeypatch):
    url = vertex_reader.parse_vertex_run(JOB)
    assert url.endpoint_url == f"https://{LOCATION}-aiplatform.googleapis.com"
    assert VertexMetadataStandIn  # the stand-in is what the other tests point the client at instead
