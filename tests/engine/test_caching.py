"""The cache fingerprint of a task, and which cached outputs still exist."""

import dataclasses
import hashlib

import pytest
from google.protobuf import json_format
from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output
from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage.engine import caching
from kfp_lineage.engine.exec import handler
from kfp_lineage.ir import dataflow
from kfp_lineage.ir import preflight
from kfp_lineage.ir import spec


@dsl.component(base_image="python:3.11-slim")
def train(data: Input[Dataset], rows: int, api_token: str, model: Output[Model]) -> float:
    return 0.5


@dsl.pipeline(name="cache-keys")
def cache_keys(rows: int = 3, api_token: str = "t-1"):
    made = dsl.importer(artifact_uri="/data/train.csv", artifact_class=Dataset)
    train(data=made.output, rows=rows, api_token=api_token)


def _compiled_train():
    loaded = spec.load_pipeline(cache_keys)
    component = loaded.spec.components["comp-train"]
    container = preflight.deployment_config(loaded.spec).executors[component.executor_label].container
    return component, container


def _artifact(artifact_id, uri="/root/a", metadata=None):
    return dataflow.InputArtifact(artifact_id, "system.Dataset", "0.0.1", uri, metadata or {})


def _container(**fields):
    return json_format.ParseDict(fields, handler.ContainerSpec())


def _component(**fields):
    return json_format.ParseDict(fields, pipeline_spec_pb2.ComponentSpec())


def _sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


SMALL_COMPONENT = _component(outputDefinitions={
    "artifacts": {"model": {"artifactType": {"schemaTitle": "system.Model", "schemaVersion": "0.0.1"}}},
    "parameters": {"score": {"parameterType": "NUMBER_DOUBLE"}},
})
SMALL_CONTAINER = _container(image="python:3.11", command=["python3", "-c"], args=["print(1)"])


def test_the_fingerprint_is_the_sha256_of_the_backends_cache_key_fields():
    key = caching.fingerprint(SMALL_COMPONENT, SMALL_CONTAINER, {"rows": 3, "name": "a"}, {"data": [_artifact(7)]})
    assert key == _sha256(
        '{"containerSpec":{"cmdArgs":["python3","-c","print(1)"],"image":"python:3.11"},'
        '"inputArtifactIds":{"data":[7]},'
        '"inputParameterValues":{"name":"a","rows":3},'
        '"outputArtifactsSpec":{"model":{"schemaTitle":"system.Model","schemaVersion":"0.0.1"}},'
        '"outputParametersSpec":{"score":"float"}}'
    )


def test_an_isolated_environment_joins_the_key_the_runners_own_leaves_it_as_the_backends():
    environment = handler.TaskEnvironment(isolated=True, reason="needs x==1.0 (not installed)", python="3.12.1",
                                          packages=("x==1.0", "kfp==2.13.0"), digest="a" * 24, path="/envs/a")
    key = caching.fingerprint(SMALL_COMPONENT, SMALL_CONTAINER, {"rows": 3}, {}, environment=environment.identity())
    assert key == _sha256(
        '{"containerSpec":{"cmdArgs":["python3","-c","print(1)"],"image":"python:3.11"},'
        '"environment":{"digest":"aaaaaaaaaaaaaaaaaaaaaaaa","packages":["kfp==2.13.0","x==1.0"],"python":"3.12.1"},'
        '"inputArtifactIds":{},"inputParameterValues":{"rows":3},'
        '"outputArtifactsSpec":{"model":{"schemaTitle":"system.Model","schemaVersion":"0.0.1"}},'
        '"outputParametersSpec":{"score":"float"}}'
    )
    backends = caching.fingerprint(SMALL_COMPONENT, SMALL_CONTAINER, {"rows": 3}, {})
    runners = handler.TaskEnvironment(isolated=False, reason="meets", python="3.11.7", packages=("x==1.0",))
    assert runners.identity() is None
    assert caching.fingerprint(SMALL_COMPONENT, SMALL_CONTAINER, {"rows": 3}, {}, environment=None) == backends
    variants = [
        dataclasses.replace(environment, digest="b" * 24),  # another requirement set, Python or platform
        dataclasses.replace(environment, packages=("x==1.1", "kfp==2.13.0")),  # an upgraded package
        dataclasses.replace(environment, python="3.12.2"),
    ]
    keys = {caching.fingerprint(SMALL_COMPONENT, SMALL_CONTAINER, {"rows": 3}, {}, environment=v.identity())
            for v in variants}
    assert len(keys | {key, backends}) == 5
    # A custom cache key is the user's word for what the result depends on: it still replaces everything.
    assert caching.fingerprint(SMALL_COMPONENT, SMALL_CONTAINER, {}, {}, cache_key="v1", component_name="comp-a",
                               environment=environment.identity()) == _sha256("comp-a\0v1")


def test_a_custom_cache_key_replaces_everything_else_but_the_component_name():
    with_key = caching.fingerprint(SMALL_COMPONENT, SMALL_CONTAINER, {"rows": 3}, {}, cache_key="v1",
                                   component_name="comp-a")
    assert with_key == _sha256("comp-a\0v1")  # driver/cache.go (after 2.17.0): component name, NUL, the key
    assert caching.fingerprint(SMALL_COMPONENT, _container(image="other"), {"rows": 4}, {}, cache_key="v1",
                               component_name="comp-a") == with_key
    assert caching.fingerprint(SMALL_COMPONENT, SMALL_CONTAINER, {"rows": 3}, {}, cache_key="v2",
                               component_name="comp-a") != with_key
    assert caching.fingerprint(SMALL_COMPONENT, SMALL_CONTAINER, {"rows": 3}, {}, cache_key="v1",
                               component_name="comp-b") != with_key
    assert caching.fingerprint(SMALL_COMPONENT, SMALL_CONTAINER, {"rows": 3}, {}) != with_key


def test_equal_inputs_give_equal_fingerprints_across_compilations():
    parameters = {"rows": 3, "api_token": "t-1"}
    artifacts = {"data": [_artifact(7)]}
    first = caching.fingerprint(*_compiled_train(), parameters, artifacts)
    again = caching.fingerprint(*_compiled_train(), dict(parameters), {"data": [_artifact(7)]})
    assert first == again
    assert len(first) == 64 and int(first, 16) >= 0


BASE_PARAMETERS = {"rows": 3, "api_token": "t-1"}
BASE_ARTIFACTS = {"data": [_artifact(7)]}


@pytest.mark.parametrize("parameters, artifacts", [
    ({"rows": 4, "api_token": "t-1"}, BASE_ARTIFACTS),  # another parameter value
    ({"rows": "3", "api_token": "t-1"}, BASE_ARTIFACTS),  # the same digits as a string
    ({"rows": 3, "api_token": "t-1", "extra": 1}, BASE_ARTIFACTS),  # one more parameter
    ({"api_token": "t-1"}, BASE_ARTIFACTS),  # one parameter fewer
    (BASE_PARAMETERS, {"data": [_artifact(8)]}),  # another input artifact
    (BASE_PARAMETERS, {"data": [_artifact(7), _artifact(8)]}),  # one more artifact in the list
    (BASE_PARAMETERS, {"other": [_artifact(7)]}),  # the same artifact under another input name
    (BASE_PARAMETERS, {}),  # no artifact
], ids=["value", "type", "added", "removed", "artifact", "list", "input-name", "no-artifact"])
def test_each_input_changes_the_fingerprint(parameters, artifacts):
    component, container = _compiled_train()
    base = caching.fingerprint(component, container, BASE_PARAMETERS, BASE_ARTIFACTS)
    assert caching.fingerprint(component, container, parameters, artifacts) != base


@pytest.mark.parametrize("change", [
    {"image": "python:3.12-slim"},
    {"command": ["python3"]},
    {"args": ["--executor_input", "{{$}}", "--function_to_execute", "other"]},
], ids=["image", "command", "args"])
def test_the_image_command_and_args_change_the_fingerprint(change):
    component, container = _compiled_train()
    changed = handler.ContainerSpec()
    changed.CopyFrom(container)
    for field, value in change.items():
        if isinstance(value, list):
            del getattr(changed, field)[:]
            getattr(changed, field).extend(value)
        else:
            setattr(changed, field, value)
    assert caching.fingerprint(component, changed, BASE_PARAMETERS, BASE_ARTIFACTS) != caching.fingerprint(
        component, container, BASE_PARAMETERS, BASE_ARTIFACTS)


def test_declared_outputs_change_the_fingerprint():
    base = caching.fingerprint(SMALL_COMPONENT, SMALL_CONTAINER, {}, {})
    other_type = _component(outputDefinitions={
        "artifacts": {"model": {"artifactType": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"}}},
        "parameters": {"score": {"parameterType": "NUMBER_DOUBLE"}},
    })
    other_parameter = _component(outputDefinitions={
        "artifacts": {"model": {"artifactType": {"schemaTitle": "system.Model", "schemaVersion": "0.0.1"}}},
        "parameters": {"score": {"parameterType": "NUMBER_INTEGER"}},
    })
    assert caching.fingerprint(other_type, SMALL_CONTAINER, {}, {}) != base
    assert caching.fingerprint(other_parameter, SMALL_CONTAINER, {}, {}) != base


def test_dict_order_uris_and_artifact_metadata_do_not_matter():
    component, container = _compiled_train()
    base = caching.fingerprint(component, container, {"rows": 3, "api_token": "t-1"},
                               {"data": [_artifact(7)], "more": [_artifact(9)]})
    reordered = caching.fingerprint(component, container, {"api_token": "t-1", "rows": 3},
                                    {"more": [_artifact(9)], "data": [_artifact(7, "/elsewhere", {"rows": 3})]})
    assert reordered == base


def test_nested_values_in_any_key_order_and_whole_doubles_match_ints():
    # A value read back from MLMD has every number as a double: it must find the result the original recorded.
    first = caching.fingerprint(SMALL_COMPONENT, SMALL_CONTAINER,
                                {"config": {"b": [1, 2], "a": {"y": 1, "x": 2}}, "rows": 3}, {})
    back = caching.fingerprint(SMALL_COMPONENT, SMALL_CONTAINER,
                               {"rows": 3.0, "config": {"a": {"x": 2.0, "y": 1.0}, "b": [1.0, 2.0]}}, {})
    assert back == first
    assert caching.fingerprint(SMALL_COMPONENT, SMALL_CONTAINER, {"rows": 3.5}, {}) != first


def test_the_fingerprint_uses_real_values_even_of_secrets():
    # As the backend: a rotated token is another input. (Redacting here once served max_tokens=1024 the result of
    # max_tokens=256, when names ending in "tokens" counted as secret.)
    component, container = _compiled_train()
    first = caching.fingerprint(component, container, {"rows": 3, "api_token": "t-1"}, BASE_ARTIFACTS)
    rotated = caching.fingerprint(component, container, {"rows": 3, "api_token": "t-2"}, BASE_ARTIFACTS)
    assert rotated != first


def test_missing_outputs_lists_deleted_local_paths_and_trusts_remote_uris(tmp_path):
    kept = tmp_path / "kept"
    kept.write_text("x")
    directory = tmp_path / "dir"
    directory.mkdir()
    gone = str(tmp_path / "gone")
    had_files = [str(kept), gone, str(directory), "gs://bucket/gone", "https://x/y"]
    assert caching.missing_outputs([(uri, True) for uri in had_files]) == [gone]
    assert caching.missing_outputs([]) == []


def test_an_artifact_that_never_had_a_file_is_not_missing(tmp_path):
    # Output[Metrics] filled by log_metric alone: a URI, no file, no content digest.
    assert caching.missing_outputs([(str(tmp_path / "metrics"), False)]) == []


def test_redacted_outputs_name_what_the_store_does_not_hold():
    # what the recorder stored for {"api_token": "t-1234", "rows": 3, "source": "https://u:pw@h/x"}
    stored = {"api_token": "***", "rows": 3, "source": "https://u:***@h/x", "max_tokens": 1024}
    assert caching.redacted_outputs(stored) == ["api_token", "source"]
    assert caching.redacted_outputs({"rows": 3, "items": [{"a": "b"}]}) == []
