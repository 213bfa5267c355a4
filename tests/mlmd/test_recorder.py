"""Artifact metadata recorded as the KFP 2.17 launcher records it (metadata/converter.go, client.go RecordArtifact):
real runs read back with ml-metadata."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from tests.mlmd_view import run_and_view

IMAGE = "python:3.11-slim"


@dsl.component(base_image=IMAGE)
def describe(report: Output[Artifact]):
    with open(report.path, "w") as f:
        f.write("report")
    report.metadata["params"] = {"lr": 0.1, "layers": [2, 3]}
    report.metadata["display_name"] = "nightly report"
    report.metadata["kind"] = "summary"


@dsl.component(base_image=IMAGE)
def read_params(report: Input[Artifact]) -> float:
    return report.metadata["params"]["lr"]


@dsl.pipeline(name="described")
def described():
    read_params(report=describe().outputs["report"]).set_caching_options(False)


@dsl.component(base_image=IMAGE)
def leave_null(report: Output[Artifact]):
    with open(report.path, "w") as f:
        f.write("report")
    report.metadata["threshold"] = None


@dsl.pipeline(name="null-metadata")
def null_metadata():
    leave_null()


def test_a_dict_is_wrapped_and_a_display_name_the_task_set_is_kept(tmp_path, sqlite_url):
    result, view = run_and_view(described, tmp_path, sqlite_url, "described-1")
    assert result.state == "COMPLETE"
    [report_id] = view.outputs("describe")["report"]
    properties = view.artifact(report_id).custom_properties
    params = properties["params"].struct_value
    assert list(params) == ["struct"]
    assert params["struct"]["lr"] == 0.1 and list(params["struct"]["layers"]) == [2, 3]
    assert properties["display_name"].string_value == "nightly report"
    assert properties["kind"].string_value == "summary"
    assert result.tasks["read-params"].outputs["Output"] == {"value": 0.1}

    # a cache hit hands the consumer the same metadata, read back from the store and unwrapped
    again, _ = run_and_view(described, tmp_path, sqlite_url, "described-2")
    assert again.tasks["describe"].state == "CACHED" and again.tasks["read-params"].state == "COMPLETE"
    assert again.tasks["read-params"].outputs["Output"] == {"value": 0.1}


def test_a_null_metadata_value_fails_the_task_as_on_the_backend(tmp_path, sqlite_url):
    result, view = run_and_view(null_metadata, tmp_path, sqlite_url, "null-1")
    assert result.state == "FAILED"
    assert result.tasks["leave-null"].error == (
        "output artifact 'report': metadata 'threshold' is null, which the KFP backend cannot record (its upload "
        "fails the task): leave the key out or give it a value")
    assert view.state("leave-null") == "FAILED"
    assert set(view.outputs("leave-null")) == {"executor-logs"}  # the failed task's log only
