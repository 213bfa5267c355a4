"""Conformance: caching, dsl.importer, container components, and features refused before a run."""

import json
import os

import pytest
import yaml
from kfp import compiler

from kfp_lineage import digests, errors
from kfp_lineage.engine import run as run_module
from tests.conformance import pipelines
from tests.mlmd_view import run_and_view


run = run_and_view


def test_a_second_identical_run_is_served_from_cache(tmp_path, any_store_url):
    first, first_view = run(pipelines.cached, tmp_path, any_store_url, "first")
    second, view = run(pipelines.cached, tmp_path, any_store_url, "second")

    assert first.state == second.state == "COMPLETE"
    cached_tasks = ("numbers", "write", "read", "total")
    for task in cached_tasks:
        assert view.state(task) == "CACHED"
        original = first_view.execution(task)
        assert view.prop(task, "cached_execution_id") == str(original.id)  # a string, as the backend writes it
        assert view.prop(task, "cache_fingerprint") == first_view.prop(task, "cache_fingerprint")
        assert view.outputs(task) == first_view.outputs(task)  # OUTPUT events point at the first run's artifacts
        assert view.prop(task, "outputs") == first_view.prop(task, "outputs")
        assert not second.tasks[task].log_path  # no process was started
    assert view.inputs("read") == first_view.inputs("read")
    assert view.state("echo") == "COMPLETE"  # set_caching_options(False)
    assert "cache_fingerprint" not in view.execution("echo").custom_properties
    assert second.tasks["total"].outputs == first.tasks["total"].outputs
    assert not os.path.exists(os.path.join(second.run_root, "logs", "read.log"))
    # nothing new was produced but echo's log: the one dataset of the first run, the logs of its five tasks (a hit's
    # `executor-logs` OUTPUT event points at the original's log, as the backend's driver does) and echo's new log
    assert sorted(a.type for a in view.store.get_artifacts()) == ["system.Artifact"] * 6 + ["system.Dataset"]
    assert set(view.outputs("read")) == {"executor-logs"}


def test_no_cache_runs_every_task(tmp_path, sqlite_url):
    run(pipelines.cached, tmp_path, sqlite_url, "a")
    result, view = run(pipelines.cached, tmp_path, sqlite_url, "b", enable_cache=False)
    assert {view.state(k) for k in ("numbers", "write", "read", "total")} == {"COMPLETE"}
    assert all(os.path.exists(result.tasks[k].log_path) for k in ("numbers", "write", "read", "total"))


def test_deleting_a_cached_artifact_recomputes_the_task_and_its_dependants(tmp_path, sqlite_url):
    first, first_view = run(pipelines.cached, tmp_path, sqlite_url, "one")
    os.remove(first.tasks["write"].outputs["data"]["uri"])

    second, view = run(pipelines.cached, tmp_path, sqlite_url, "two")

    assert view.state("write") == "COMPLETE"  # its artifact was deleted: a miss, unlike KFP #7939
    assert view.state("read") == "COMPLETE"  # its input artifact is new, so its fingerprint changed
    assert view.state("numbers") == "CACHED" and view.state("total") == "CACHED"
    [new_data] = view.outputs("write")["data"]
    assert new_data != first_view.outputs("write")["data"][0]
    assert view.inputs("read") == {"data": [new_data]}
    assert os.path.isfile(second.tasks["write"].outputs["data"]["uri"])


def test_caching_is_scoped_to_the_pipeline(tmp_path, sqlite_url):
    run(pipelines.pipeline_outputs, tmp_path, sqlite_url, "p-1")
    _, view = run(pipelines.pipeline_outputs, tmp_path, sqlite_url, "p-2")
    assert view.state("echo") == "CACHED"
    from kfp import dsl

    @dsl.pipeline(name="another-pipeline")
    def another(text: str = "hello") -> str:
        return pipelines.echo(text=text).output

    _, other = run(another, tmp_path, sqlite_url, "other")
    assert other.state("echo") == "COMPLETE"


def test_importer_records_an_importer_execution_and_reuses_the_artifact(tmp_path, any_store_url):
    data = tmp_path / "lake" / "table.csv"
    data.parent.mkdir()
    data.write_text("x\n1\n")
    first, view = run(pipelines.importer, tmp_path, any_store_url, "imp-1", arguments={"uri": str(data)})

    assert first.state == "COMPLETE"
    assert view.execution("importer").type == "system.ImporterExecution"
    assert view.state("importer") == "COMPLETE"
    [artifact_id] = view.outputs("importer")["artifact"]
    artifact = view.artifact(artifact_id)
    assert artifact.type == "system.Dataset" and artifact.uri == str(data)
    assert artifact.custom_properties["origin"].string_value == "lake"
    assert artifact.custom_properties["content_sha256"].string_value == digests.path_sha256(str(data))
    assert "display_name" not in artifact.custom_properties  # as the backend's importer launcher records it
    assert view.prop("importer", "task_name") == "importer" and view.prop("importer", "display_name") == ""
    assert view.prop("importer", "inputs") is None  # as the backend's importer launcher records it
    assert view.inputs("read") == {"data": [artifact_id]}
    assert first.tasks["read"].outputs["Output"] == {"value": "x\n1\n"}

    _, again = run(pipelines.importer, tmp_path, any_store_url, "imp-2", arguments={"uri": str(data)},
                   enable_cache=False)
    assert again.outputs("importer")["artifact"] == [artifact_id]  # same URI, type and metadata: reused

    _, fresh = run(pipelines.reimporter, tmp_path, any_store_url, "imp-3", arguments={"uri": str(data)})
    assert fresh.outputs("importer")["artifact"] != [artifact_id]  # reimport=True (and another pipeline)


def test_container_components_run_when_their_program_exists(tmp_path, sqlite_url):
    result, view = run(pipelines.container_component, tmp_path, sqlite_url, "container")
    assert result.state == "COMPLETE"
    assert result.tasks["shell-echo"].outputs["out"] == {"value": "from a shell"}
    assert view.prop("shell-echo", "image") == "alpine:3.20"


def test_a_container_component_whose_program_is_missing_is_refused_before_the_run(tmp_path, sqlite_url):
    with pytest.raises(errors.UnsupportedFeatureError,
                       match=r"task 'missing-program' runs 'no-such-program-here' from image 'example.com/tool:1'"):
        run(pipelines.missing_program_pipeline, tmp_path, sqlite_url, "missing")
    assert not os.path.exists(sqlite_url)


def test_kubernetes_platform_features_are_refused_before_the_run(tmp_path, sqlite_url):
    path = tmp_path / "k8s.yaml"
    compiler.Compiler().compile(pipelines.pipeline_outputs, str(path))
    platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {"exec-echo": {
        "secretAsEnv": [{"secretName": "db", "keyToEnv": [{"secretKey": "password", "envVar": "PW"}]}]}}}}}}
    with open(path, "a") as f:
        f.write("---\n" + yaml.safe_dump(platform))
    with pytest.raises(errors.UnsupportedFeatureError, match=r"uses platform-specific features \(kubernetes"):
        run_module.run_pipeline(str(path), store=sqlite_url, pipeline_root=str(tmp_path / "root"))
    assert not os.path.exists(sqlite_url)


def test_job_and_task_placeholders_are_resolved_before_they_are_recorded(tmp_path, sqlite_url):
    # The backend's driver turns these constants into values when it resolves a task's inputs, so the task and
    # the execution's `inputs` in MLMD both get the values, never the placeholder text.
    result, view = run_and_view(pipelines.placeholders, tmp_path, sqlite_url, "job-1")
    root_id = view.execution("").id
    expected = {"job_name": "job-1", "job_resource_name": "job-1", "job_uuid": "job-1",
                "task_name": "Job and task", "task_uuid": str(root_id)}
    assert view.prop("job-and-task", "inputs") == expected
    assert json.loads(result.tasks["job-and-task"].outputs["Output"]["value"]) == list(expected.values())


def test_f_strings_are_filled_in_before_they_are_recorded(tmp_path, sqlite_url):
    result, view = run_and_view(pipelines.fstrings, tmp_path, sqlite_url, "fstrings-1")
    assert view.prop("identity", "inputs")["text"] == "bar-baz-3"
    assert view.prop("identity-2", "inputs")["text"] == "foo-bar-baz-3"
    assert result.tasks["identity-2"].outputs["Output"]["value"] == "foo-bar-baz-3"


def test_braces_in_arguments_and_outputs_are_data(tmp_path, sqlite_url):
    # kfp.local reads every string input as a template: this value crashed the task (IndexError on {{$.foo}})
    # or was rewritten ({{$.pipeline_root}}). The backend passes data through as it is.
    text = "{{$.pipeline_root}} {{$.foo}} {{$}}"
    result, view = run_and_view(pipelines.braces_are_data, tmp_path, sqlite_url, "braces-1")
    assert result.state == "COMPLETE"
    assert view.prop("identity", "inputs")["text"] == text
    assert result.tasks["identity"].outputs["Output"]["value"] == text
    assert result.tasks["identity-2"].outputs["Output"]["value"] == text


def test_a_task_that_cannot_be_launched_fails_with_its_traceback_in_the_named_log(tmp_path, sqlite_url):
    # kfp.local refuses json_escape placeholders with a ValueError while the command is built, before any process.
    path = tmp_path / "escape.yaml"
    compiler.Compiler().compile(pipelines.container_component, str(path))
    document = yaml.safe_load(path.read_text())
    document["deploymentSpec"]["executors"]["exec-shell-echo"]["container"]["args"][0] = (
        "{{$.inputs.parameters['text'].json_escape[0]}}")
    path.write_text(yaml.safe_dump(document))
    result = run_module.run_pipeline(str(path), {}, store=sqlite_url, pipeline_root=str(tmp_path / "root"),
                                     run_id="escape")
    task = result.tasks["shell-echo"]
    assert (result.state, task.state) == ("FAILED", "FAILED")
    assert task.error == "could not run the task: ValueError('JSON escape placeholders are not supported.')"
    with open(task.log_path) as log:
        assert "ValueError: JSON escape placeholders are not supported." in log.read()


def test_an_optional_pipeline_input_artifact_runs_without_a_value(tmp_path, sqlite_url):
    result, view = run_and_view(pipelines.optional_input_artifact, tmp_path, sqlite_url, "optional-artifact")
    assert result.state == "COMPLETE"
    assert result.tasks["describe-optional"].outputs["Output"]["value"] == "no artifact"
    assert view.inputs("describe-optional") == {}


def test_a_required_pipeline_input_artifact_is_refused_before_the_run(tmp_path, sqlite_url):
    with pytest.raises(errors.UnsupportedFeatureError) as raised:
        run_and_view(pipelines.required_input_artifact, tmp_path, sqlite_url, "required-artifact")
    assert str(raised.value) == ("pipeline input artifacts (data) are not supported locally: pass a URI parameter "
                                 "and use dsl.importer")
    assert not os.path.exists(sqlite_url)


def test_a_task_that_exits_without_a_word_is_reported_by_its_exit_code_alone(tmp_path, sqlite_url):
    # The log then ends with the executor input's JSON: its closing brace is no error message.
    result, _ = run_and_view(pipelines.quiet_exit, tmp_path, sqlite_url, "quiet")
    assert result.tasks["exit-quietly"].error == "exited with code 3"
