"""Specs compiled by kfp 2.17.3 (tests/fixtures/kfp_2_17/) load on either stack; their newer IR fields are honoured
or refused by name before the run, and travel in full to KFP and Vertex AI."""

import base64
import hashlib
import json
import os

import kfp
import pytest
import yaml
from click.testing import CliRunner
from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage import cli, errors
from kfp_lineage.engine import run as run_module
from kfp_lineage.ir import _pipeline_spec_2_17_3 as vendored
from kfp_lineage.ir import newer_fields, spec
from tests import conftest
from tests.mlmd_view import RunView

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "kfp_2_17")


def fixture(name):
    return os.path.abspath(os.path.join(FIXTURES, f"{name}.yaml"))


def run(name, tmp_path, arguments=None):
    return run_module.run_pipeline(fixture(name), arguments, store=f"sqlite:///{tmp_path}/mlmd.sqlite",
                                   pipeline_root=str(tmp_path / "root"), run_id=f"{name}-1", cwd=str(tmp_path))


def refusal(name, tmp_path):
    with pytest.raises(errors.UnsupportedFeatureError) as raised:
        run(name, tmp_path)
    assert not (tmp_path / "mlmd.sqlite").exists(), "a refused run must write nothing"
    return str(raised.value)


def test_the_fixtures_were_compiled_by_kfp_2_17_3():
    for name in os.listdir(FIXTURES):
        if name.endswith(".yaml"):
            with open(os.path.join(FIXTURES, name)) as f:
                assert next(yaml.safe_load_all(f))["sdkVersion"] == "kfp-2.17.3", name


def test_the_vendored_schema_is_kfp_pipeline_spec_2_17_3():
    data = base64.b64decode("".join(vendored.SERIALIZED_FILE_DESCRIPTOR))
    assert hashlib.sha256(data).hexdigest() == vendored.SHA256
    if newer_fields.installed_version() != vendored.VERSION:
        pytest.skip(f"kfp-pipeline-spec {newer_fields.installed_version()} is installed; the byte-for-byte "
                    f"comparison runs where {vendored.VERSION} is (the current stack)")
    assert data == pipeline_spec_pb2.DESCRIPTOR.serialized_pb


@pytest.mark.parametrize("name", ["rows", "literals", "task-config", "task-config-passthroughs",
                                  "passthroughs-applied", "env-passthrough", "download-to-workspace-bare"])
def test_every_kfp_2_17_spec_loads_and_keeps_every_field(name):
    loaded = spec.load_pipeline(fixture(name))
    with open(fixture(name)) as f:
        document = yaml.safe_load(f)
    assert newer_fields.to_dict(loaded.spec) == json.loads(json.dumps(document))


def test_a_plain_kfp_2_17_spec_runs_and_records_lineage(tmp_path):
    result = run("rows", tmp_path, {"rows": 4})
    assert result.state == "COMPLETE", result.tasks
    view = RunView(conftest.open_store(f"sqlite:///{tmp_path}/mlmd.sqlite"), "rows-1")
    [data_id] = view.outputs("make-rows")["data"]
    assert view.inputs("count-rows") == {"data": [data_id]}
    assert result.tasks["count-rows"].outputs["Output"]["value"] == 4


def test_literals_are_honoured(tmp_path):
    loaded = spec.load_pipeline(fixture("literals"))
    assert newer_fields.literals(loaded.spec.root.input_definitions.parameters["mode"]) == ["fast", "slow"]
    assert spec.validate_arguments(loaded.spec, {}) == {"mode": "fast"}
    assert spec.validate_arguments(loaded.spec, {"mode": "slow"}) == {"mode": "slow"}
    with pytest.raises(errors.InvalidInputError) as raised:
        spec.validate_arguments(loaded.spec, {"mode": "medium"})
    assert str(raised.value) == (
        "parameter 'mode' must be one of \"fast\", \"slow\" (its literals), got 'medium': "
        "pass --param mode=<one of them>"
    )
    result = run("literals", tmp_path, {"mode": "slow"})
    assert result.state == "COMPLETE" and result.tasks["pick"].outputs["Output"]["value"] == "slow"


def test_literal_values_match_as_json_does():
    assert spec._same_value(1, 1.0) and spec._same_value("a", "a")
    assert not spec._same_value(True, 1) and not spec._same_value(1, True) and not spec._same_value(True, "true")


def test_passthroughs_that_only_shape_cluster_pods_are_honoured(tmp_path):
    result = run("passthroughs-applied", tmp_path)
    assert result.state == "COMPLETE", result.tasks
    assert result.tasks["read-env"].outputs["Output"]["value"] == "fast"  # ENV with applyToTask reaches the task


def test_an_env_passthrough_without_apply_to_task_is_refused_by_name(tmp_path):
    assert refusal("env-passthrough", tmp_path) == (
        "task 'env-elsewhere' passes ENV through without applyToTask (taskConfigPassthroughs), so on a cluster the "
        "task itself runs without it, which a local run cannot reproduce: set apply_to_task=True, or run it on a "
        "cluster"
    )


def test_a_task_config_that_passthroughs_fill_is_refused_by_name(tmp_path):
    assert refusal("task-config-passthroughs", tmp_path) == (
        "task 'forward-config' gets RESOURCES, ENV in its dsl.TaskConfig input 'task_config' through "
        "taskConfigPassthroughs, which only a cluster's driver fills: run it on a cluster, or drop "
        "task_config_passthroughs"
    )


@pytest.mark.skipif(not hasattr(kfp.dsl, "TaskConfig"), reason="the installed kfp has no dsl.TaskConfig")
def test_a_task_config_without_passthroughs_gets_the_empty_config_the_backend_gives(tmp_path):
    result = run("task-config", tmp_path)
    assert result.state == "COMPLETE", result.tasks
    assert result.tasks["read-config"].outputs["Output"]["value"] == "resources=None env=None"


@pytest.mark.skipif(hasattr(kfp.dsl, "TaskConfig"), reason="the installed kfp has dsl.TaskConfig")
def test_a_task_config_is_refused_where_the_installed_kfp_has_none(tmp_path):
    assert refusal("task-config", tmp_path) == (
        "task 'read-config' has a dsl.TaskConfig input 'task_config' (parameterType TASK_CONFIG), and its code would "
        f"run on the installed kfp {kfp.__version__}, which has no dsl.TaskConfig: use the current stack (kfp 2.17), "
        "or drop the input"
    )


def test_download_to_workspace_is_refused_by_name(tmp_path):
    assert refusal("download-to-workspace-bare", tmp_path) == (
        "task 'importer' imports with downloadToWorkspace (dsl.importer(download_to_workspace=True)), which copies "
        "into a cluster's pipeline workspace: run it on a cluster, or drop download_to_workspace"
    )


def test_submission_sends_the_newer_fields(tmp_path):
    """Refused locally, yet a cluster runs it: the dry-run requests carry every field, on either stack."""
    result = CliRunner().invoke(cli.main, [
        "submit", fixture("task-config-passthroughs"), "--vertex", "--project", "my-project", "--pipeline-root",
        "gs://my-bucket/root", "--job-id", "tc-1", "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    component = json.loads(result.stdout)["body"]["pipelineSpec"]["components"]["comp-forward-config"]
    assert component["taskConfigPassthroughs"] == [{"field": "RESOURCES"}, {"field": "ENV"}]
    assert component["inputDefinitions"]["parameters"]["task_config"]["parameterType"] == "TASK_CONFIG"
    result = CliRunner().invoke(cli.main, [
        "submit", fixture("literals"), "--kfp-host", "http://127.0.0.1:9", "--param", "mode=slow", "--job-id", "l-1",
        "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    root = json.loads(result.stdout)["body"]["pipeline_spec"]["root"]
    assert root["inputDefinitions"]["parameters"]["mode"]["literals"] == ["fast", "slow"]
