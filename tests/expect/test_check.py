"""Checking recorded lineage against a lineage spec: every kind of break is named, and `expect` round-trips.

The broken stores are real: runs of mutated pipelines (tests/fixtures/broken_pipelines.py), and one copy of a
good store damaged with SQL (MLMD has no API to delete an event; the product itself never writes SQL).
"""

import re
import shutil
import sqlite3
from typing import List

import pytest
from click.testing import CliRunner
from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from kfp_lineage import cli, errors
from kfp_lineage.expect import check as expectations
from kfp_lineage.expect import pytest_plugin
from kfp_lineage.expect import record as expectations_record
from kfp_lineage.expect import spec as expectations_spec
from kfp_lineage.engine import run as run_module
from tests import conftest
from tests.fixtures import broken_pipelines, pipelines

E = expectations
DEPLOY = broken_pipelines.DEPLOY


@pytest.fixture(scope="module")
def mini_runs(tmp_path_factory):
    """`good` and every broken variant, each run once into its own fresh store: name -> store path."""
    tmp = tmp_path_factory.mktemp("mini")
    stores = {}
    for name, pipeline in [("good", broken_pipelines.good), *broken_pipelines.VARIANTS.items()]:
        stores[name] = str(tmp / f"{name}.sqlite")
        result = run_module.run_pipeline(
            pipeline, store=stores[name], pipeline_root=str(tmp / "root"), run_id=name, cwd=str(tmp)
        )
        assert result.state == ("FAILED" if name == "failing_score" else "COMPLETE"), name
    return stores


@pytest.fixture(scope="module")
def good_spec():
    return expectations_spec.parse_lineage_spec(broken_pipelines.GOOD_SPEC, source="mini.lineage.yaml")


def check(store_path, spec, run_id=None):
    return expectations.check_lineage(conftest.open_store(store_path), spec, run_id)


def kinds(result):
    return [(d.task, d.kind) for d in result.differences]


def test_the_good_pipeline_matches_its_spec(mini_runs, good_spec):
    result = check(mini_runs["good"], good_spec)
    assert result.ok, result.to_text()
    assert result.to_text() == "OK run good of pipeline mini matches mini.lineage.yaml: 6 tasks, 11 events"
    assert result.to_json() == {"ok": True, "run_id": "good", "pipeline": "mini", "spec": "mini.lineage.yaml",
                                "differences": []}


@pytest.mark.parametrize(
    "variant, expected, detail",
    [
        ("retyped",
         [("fit", E.WRONG_ARTIFACT_TYPE), ("score", E.WRONG_ARTIFACT_TYPE), ("condition-1", E.WRONG_ARTIFACT_TYPE),
          (DEPLOY, E.WRONG_ARTIFACT_TYPE)],
         "mini.lineage.yaml:15: fit: wrong artifact type: OUTPUT model is a system.Artifact (artifact "),
        ("undeclared_output",
         [("fit", E.MISSING_EVENT), ("score", E.MISSING_EVENT), ("condition-1", E.MISSING_EVENT),
          (DEPLOY, E.MISSING_EVENT)],
         "mini.lineage.yaml:15: fit: missing event: OUTPUT model (system.Model) is not recorded"),
        ("wrong_model",
         [("condition-1", E.MISSING_EVENT), ("condition-1", E.UNEXPECTED_EVENT), (DEPLOY, E.WRONG_PRODUCER)],
         f"mini.lineage.yaml:40: {DEPLOY}: wrong producer: INPUT model comes from fit-2.model (artifact "),
        ("renamed_output",
         [("fit", E.MISSING_EVENT), ("fit", E.UNEXPECTED_EVENT), ("score", E.WRONG_PRODUCER),
          ("condition-1", E.MISSING_EVENT), ("condition-1", E.UNEXPECTED_EVENT), (DEPLOY, E.WRONG_PRODUCER)],
         "mini.lineage.yaml:9: fit: unexpected event: OUTPUT trained_model (system.Model) is recorded but not in "
         "the spec; add it or set allow_extra_events: true on the task"),
        ("no_metadata",
         [("fit", E.MISSING_METADATA_KEY)],
         "mini.lineage.yaml:15: fit: missing metadata key: OUTPUT model (artifact "),
        ("failing_score",
         [("score", E.WRONG_STATE), ("score", E.MISSING_EVENT), ("condition-1", E.MISSING_TASK),
          (DEPLOY, E.MISSING_TASK)],
         "mini.lineage.yaml:23: score: wrong state: recorded FAILED, expected COMPLETE"),
    ],
)
def test_each_broken_pipeline_fails_with_a_diff_naming_the_break(mini_runs, good_spec, variant, expected, detail,
                                                                 tmp_path):
    result = check(mini_runs[variant], good_spec)
    assert not result.ok
    assert kinds(result) == expected, result.to_text()
    text = result.to_text()
    assert text.splitlines()[0] == (
        f"FAIL run {variant} of pipeline mini does not match mini.lineage.yaml: {len(expected)} differences"
        if len(expected) > 1 else
        f"FAIL run {variant} of pipeline mini does not match mini.lineage.yaml: 1 difference"
    )
    assert any(line.startswith("  " + detail) for line in text.splitlines()), text
    assert "recorded lineage of the tasks involved:" in text
    spec_file = tmp_path / "mini.lineage.yaml"
    spec_file.write_text(broken_pipelines.GOOD_SPEC)
    cli_result = CliRunner().invoke(cli.main, ["check", str(spec_file), "--store", mini_runs[variant]])
    assert cli_result.exit_code == 1
    assert cli_result.stdout == text.replace("mini.lineage.yaml", str(spec_file)) + "\n"


def test_the_full_report_of_a_deploy_wired_to_the_wrong_model(mini_runs, good_spec):
    result = check(mini_runs["wrong_model"], good_spec)
    ids = {name: result.run.tasks[name].outputs["model"][0].artifact_id for name in ("fit", "fit-2")}
    assert result.to_text() == "\n".join([
        "FAIL run wrong_model of pipeline mini does not match mini.lineage.yaml: 3 differences",
        "  mini.lineage.yaml:35: condition-1: missing event: INPUT pipelinechannel--fit-model "
        "(system.Model from fit.model) is not recorded",
        "  mini.lineage.yaml:31: condition-1: unexpected event: INPUT pipelinechannel--fit-2-model "
        "(system.Model from fit-2.model) is recorded but not in the spec; add it or set allow_extra_events: true "
        "on the task",
        f"  mini.lineage.yaml:40: {DEPLOY}: wrong producer: INPUT model comes from fit-2.model (artifact "
        f"{ids['fit-2']}), expected fit.model",
        "recorded lineage of the tasks involved:",
        f"  condition-1  system.DAGExecution  COMPLETE  (execution {result.run.tasks['condition-1'].execution_id})",
        "    INPUT   pipelinechannel--fit-2-model  system.Model  from fit-2.model",
        f"  {DEPLOY}  system.ContainerExecution  COMPLETE  (execution {result.run.tasks[DEPLOY].execution_id})",
        "    INPUT   model     system.Model     from fit-2.model",
        "    OUTPUT  endpoint  system.Artifact  metadata: model_uri",
    ])
    assert result.to_json()["differences"][2] == {
        "task": DEPLOY, "kind": "wrong producer", "line": 40,
        "detail": f"INPUT model comes from fit-2.model (artifact {ids['fit-2']}), expected fit.model",
    }


def test_an_event_deleted_from_a_copy_of_the_store_is_a_missing_event(mini_runs, good_spec, tmp_path):
    damaged = str(tmp_path / "damaged.sqlite")
    shutil.copy(mini_runs["good"], damaged)
    ship = expectations_record.read_run(conftest.open_store(damaged), "good").tasks[DEPLOY]
    with sqlite3.connect(damaged) as db:  # test-only damage: the product never writes SQL
        [(event_id,)] = db.execute(
            "SELECT id FROM Event WHERE execution_id = ? AND type = 3", (ship.execution_id,)  # 3 = INPUT
        ).fetchall()
        db.execute("DELETE FROM EventPath WHERE event_id = ?", (event_id,))
        db.execute("DELETE FROM Event WHERE id = ?", (event_id,))
    result = check(damaged, good_spec)
    assert kinds(result) == [(DEPLOY, E.MISSING_EVENT)]
    assert result.differences[0].detail == "INPUT model (system.Model from fit.model) is not recorded"


def test_an_artifact_retyped_in_a_copy_of_the_store_is_a_wrong_artifact_type(mini_runs, good_spec, tmp_path):
    damaged = str(tmp_path / "retyped.sqlite")
    shutil.copy(mini_runs["good"], damaged)
    data = expectations_record.read_run(conftest.open_store(damaged), "good").tasks["make-data"].outputs["data"][0]
    with sqlite3.connect(damaged) as db:
        db.execute("UPDATE Artifact SET type_id = (SELECT id FROM Type WHERE name = 'system.Model') WHERE id = ?",
                   (data.artifact_id,))
    result = check(damaged, good_spec)
    assert kinds(result) == [("make-data", E.WRONG_ARTIFACT_TYPE), ("fit", E.WRONG_ARTIFACT_TYPE),
                             ("fit-2", E.WRONG_ARTIFACT_TYPE), ("score", E.WRONG_ARTIFACT_TYPE)]


def test_a_task_the_spec_does_not_list_is_unexpected_unless_allowed(mini_runs):
    text = broken_pipelines.GOOD_SPEC
    start = text.index("  fit-2:\n")
    without_baseline = text[:start] + text[text.index("  score:\n"):]
    spec = expectations_spec.parse_lineage_spec(without_baseline, source="s.yaml")
    result = check(mini_runs["good"], spec)
    assert kinds(result) == [("fit-2", E.UNEXPECTED_TASK)]
    assert result.differences[0].detail == (
        "recorded a system.ContainerExecution COMPLETE that the spec does not list; "
        "add it to tasks: or set allow_extra_tasks: true"
    )
    assert result.differences[0].line == 3
    relaxed = expectations_spec.parse_lineage_spec("allow_extra_tasks: true\n" + without_baseline)
    assert check(mini_runs["good"], relaxed).ok


def test_extra_events_fail_unless_allowed_and_a_missing_task_suggests_the_recorded_one(mini_runs):
    spec_text = (
        "pipeline: mini\nallow_extra_tasks: true\ntasks:\n"
        "  fit:\n    type: system.ContainerExecution\n    state: COMPLETE\n"
        "  fit-3:\n    type: system.ContainerExecution\n    state: [COMPLETE, CACHED]\n"
    )
    result = check(mini_runs["good"], expectations_spec.parse_lineage_spec(spec_text))
    assert [(d.task, d.kind, d.detail) for d in result.differences] == [
        ("fit", E.UNEXPECTED_EVENT, "INPUT data (system.Dataset from make-data.data) is recorded but not in the "
                                    "spec; add it or set allow_extra_events: true on the task"),
        ("fit", E.UNEXPECTED_EVENT, "OUTPUT model (system.Model) is recorded but not in the spec; add it or set "
                                    "allow_extra_events: true on the task"),
        ("fit-3", E.MISSING_TASK, "expected a system.ContainerExecution COMPLETE/CACHED; the run recorded no such "
                                  "task; did you mean fit-2?"),
    ]
    relaxed = spec_text.replace("state: COMPLETE\n  fit-3", "state: COMPLETE\n    allow_extra_events: true\n  fit-3")
    assert kinds(check(mini_runs["good"], expectations_spec.parse_lineage_spec(relaxed))) == [("fit-3", E.MISSING_TASK)]


def test_a_wrong_execution_type_is_named(mini_runs):
    spec = expectations_spec.parse_lineage_spec(
        "pipeline: mini\nallow_extra_tasks: true\ntasks:\n"
        "  condition-1:\n    type: system.ContainerExecution\n    state: COMPLETE\n    allow_extra_events: true\n"
    )
    [difference] = check(mini_runs["good"], spec).differences
    assert (difference.kind, difference.detail, difference.line) == (
        E.WRONG_EXECUTION_TYPE, "recorded system.DAGExecution, expected system.ContainerExecution", 4
    )


@pytest.mark.parametrize("variant", ["good", *broken_pipelines.VARIANTS])
def test_expect_then_check_passes_on_every_recorded_run(mini_runs, variant):
    store = conftest.open_store(mini_runs[variant])
    recorded = expectations_record.read_run(store, variant)
    text = expectations_spec.dump_lineage_spec(expectations.expect_lineage(recorded))
    result = expectations.check_lineage(store, expectations_spec.parse_lineage_spec(text), variant)
    assert result.ok, text + "\n" + result.to_text()


def test_expect_lists_metadata_on_the_producing_event_only(mini_runs):
    recorded = expectations_record.read_run(conftest.open_store(mini_runs["good"]), "good")
    spec = expectations.expect_lineage(recorded)
    assert spec.tasks["fit"].outputs["model"].metadata == ("depth", "framework")
    assert spec.tasks["score"].inputs["model"] == expectations_spec.EventSpec(
        "INPUT", "model", "system.Model", producer="fit.model"
    )
    assert spec.tasks["condition-1"].inputs["pipelinechannel--fit-model"].producer == "fit.model"
    assert expectations.expect_lineage(recorded, metadata=False).tasks["fit"].outputs["model"].metadata == ()


def test_expect_then_check_on_every_kind_of_store(any_store_url, tmp_path):
    for run_id in ("nested-1", "nested-2"):
        result = run_module.run_pipeline(pipelines.nested, store=any_store_url,
                                         pipeline_root=str(tmp_path / "root"), run_id=run_id, cwd=str(tmp_path))
        assert result.state == "COMPLETE"
    store = conftest.open_store(any_store_url)
    recorded = expectations_record.read_run(store, pipeline="nested")
    assert recorded.run_id == "nested-2" and recorded.pipeline == "nested"
    assert list(recorded.tasks) == ["prepare", "prepare/make-dataset", "consume", "consume/count-rows"]
    [data] = recorded.tasks["consume/count-rows"].inputs["data"]
    assert (data.artifact_type, data.producer) == ("system.Dataset", "prepare/make-dataset.data")
    for run_id in (None, "nested-1", "latest"):  # the second run may be a cache hit: each run gets its own spec
        recorded = expectations_record.read_run(store, run_id, pipeline="nested")
        text = expectations_spec.dump_lineage_spec(expectations.expect_lineage(recorded))
        assert expectations.check_lineage(store, expectations_spec.parse_lineage_spec(text), run_id).ok, text


def test_finding_runs_errors_say_what_to_pass(mini_runs, good_spec, tmp_path):
    store = conftest.open_store(mini_runs["good"])
    with pytest.raises(errors.InvalidInputError) as raised:
        expectations.check_lineage(store, good_spec, "nope")
    assert str(raised.value) == "no run 'nope' in this store: pass a run id from `kfp-lineage run`, or `latest`"
    other = dict(good_spec.__dict__, pipeline="other")
    with pytest.raises(errors.InvalidInputError) as raised:
        expectations.check_lineage(store, expectations_spec.LineageSpec(**other), "good")
    assert str(raised.value) == ("run good is a run of pipeline 'mini', not 'other': pass a run of 'other' "
                                 "or the lineage spec of its pipeline")
    with pytest.raises(errors.InvalidInputError) as raised:
        expectations.check_lineage(store, expectations_spec.LineageSpec(**other))
    assert str(raised.value) == ("the store has no runs of pipeline 'other': run it first (kfp-lineage run ...) "
                                 "or pass --store")
    empty = conftest.open_store(str(tmp_path / "empty.sqlite"))
    with pytest.raises(errors.InvalidInputError) as raised:
        expectations_record.read_run(empty, "latest")
    assert str(raised.value) == "the store has no pipeline runs yet: run one with `kfp-lineage run`"


def _record_like_the_backend(store, loop: bool = False) -> None:
    """Writes, with plain ml-metadata calls, what the KFP backend (2.17) records for make -> use: contexts, a root
    DAG left RUNNING, containers with pod properties, one-step events; none of kfp-lineage's extras."""
    from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

    def type_id(put, proto, name):
        return put(proto(name=name))

    pipeline_type = type_id(store.put_context_type, mlmd_pb.ContextType, "system.Pipeline")
    run_type = type_id(store.put_context_type, mlmd_pb.ContextType, "system.PipelineRun")
    dag_type = type_id(store.put_execution_type, mlmd_pb.ExecutionType, "system.DAGExecution")
    container_type = type_id(store.put_execution_type, mlmd_pb.ExecutionType, "system.ContainerExecution")
    dataset_type = type_id(store.put_artifact_type, mlmd_pb.ArtifactType, "system.Dataset")
    [pipeline_id, run_id] = store.put_contexts([mlmd_pb.Context(type_id=pipeline_type, name="backend-pipeline"),
                                                mlmd_pb.Context(type_id=run_type, name="0b9a6f0e-run")])
    store.put_parent_contexts([mlmd_pb.ParentContext(child_id=run_id, parent_id=pipeline_id)])
    contexts = store.get_contexts_by_id([pipeline_id, run_id])

    def execution(type_id, task_name, state, parent=None, name=None, **extra):
        e = mlmd_pb.Execution(type_id=type_id, last_known_state=state)
        if name:
            e.name = name
        e.custom_properties["task_name"].string_value = task_name
        e.custom_properties["display_name"].string_value = task_name
        if parent is not None:
            e.custom_properties["parent_dag_id"].int_value = parent
        for key, value in extra.items():
            e.custom_properties[key].string_value = value
        return e

    def event(kind, key):
        ev = mlmd_pb.Event(type=kind)
        ev.path.steps.add().key = key
        return ev

    root, _, _ = store.put_execution(execution(dag_type, "", mlmd_pb.Execution.RUNNING, name="run/0b9a6f0e-run"),
                                     [], contexts)
    data = mlmd_pb.Artifact(type_id=dataset_type, uri="minio://mlpipeline/v2/artifacts/make/data",
                            state=mlmd_pb.Artifact.LIVE)
    data.custom_properties["display_name"].string_value = "data"
    data.custom_properties["rows"].double_value = 3
    make, [data_id], _ = store.put_execution(
        execution(container_type, "make", mlmd_pb.Execution.COMPLETE, root, pod_name="make-pod", namespace="kubeflow"),
        [(data, event(mlmd_pb.Event.OUTPUT, "data"))], contexts)
    users = 2 if loop else 1
    for _ in range(users):
        ev = event(mlmd_pb.Event.INPUT, "data")
        ev.artifact_id = data_id
        store.put_execution(execution(container_type, "use", mlmd_pb.Execution.COMPLETE, root, pod_name="use-pod"),
                            [(None, ev)], contexts)


BACKEND_SPEC = """\
pipeline: backend-pipeline
tasks:
  make:
    type: system.ContainerExecution
    state: COMPLETE
    outputs:
      data: {type: system.Dataset, metadata: [rows]}
  use:
    type: system.ContainerExecution
    state: COMPLETE
    inputs:
      data: {type: system.Dataset, from: make.data}
"""


def test_a_store_written_like_the_kfp_backend_checks_and_expects(tmp_path):
    store = conftest.open_store(str(tmp_path / "backend.sqlite"))
    _record_like_the_backend(store)
    spec = expectations_spec.parse_lineage_spec(BACKEND_SPEC)
    result = expectations.check_lineage(store, spec)
    assert result.ok and result.run.run_id == "0b9a6f0e-run", result.to_text()
    expected = expectations.expect_lineage(result.run)
    assert expectations_spec.dump_lineage_spec(expected) == "version: 1\n" + BACKEND_SPEC


def test_two_executions_with_one_task_path_are_refused(tmp_path):
    store = conftest.open_store(str(tmp_path / "loop.sqlite"))
    _record_like_the_backend(store, loop=True)
    with pytest.raises(errors.InvalidInputError) as raised:
        expectations_record.read_run(store, "0b9a6f0e-run")
    assert str(raised.value) == ("run 0b9a6f0e-run has two executions for task use (ids 3 and 4), so a lineage "
                                 "spec cannot tell them apart: check a run with one execution per task")


@dsl.component(base_image="python:3.11-slim")
def write_one(x: int, data: Output[Dataset]):
    with open(data.path, "w") as f:
        f.write(str(x))


@dsl.component(base_image="python:3.11-slim")
def join_all(datasets: Input[List[Dataset]]) -> str:
    return ",".join(open(d.path).read() for d in datasets)


@dsl.pipeline(name="looped")
def looped():
    with dsl.ParallelFor([1, 2]) as x:
        written = write_one(x=x)
    join_all(datasets=dsl.Collected(written.outputs["data"]))


def test_loop_iterations_are_keyed_as_the_runner_keys_them_and_collected_inputs_count(tmp_path):
    url = str(tmp_path / "loop.sqlite")
    result = run_module.run_pipeline(looped, store=url, pipeline_root=str(tmp_path / "root"), run_id="loop-1",
                                     cwd=str(tmp_path))
    assert result.state == "COMPLETE"
    store = conftest.open_store(url)
    recorded = expectations_record.read_run(store, "loop-1")
    assert set(recorded.tasks) == set(result.tasks)
    assert "for-loop-2/iteration-1/write-one" in recorded.tasks
    joined = recorded.tasks["join-all"].inputs["datasets"]
    assert sorted(e.producer for e in joined) == ["for-loop-2/iteration-0/write-one.data",
                                                  "for-loop-2/iteration-1/write-one.data"]
    text = expectations_spec.dump_lineage_spec(expectations.expect_lineage(recorded))
    assert "      datasets: {type: system.Dataset, count: 2}\n" in text
    spec = expectations_spec.parse_lineage_spec(text)
    assert expectations.check_lineage(store, spec).ok
    once = expectations_spec.parse_lineage_spec(text.replace(", count: 2}", "}"))
    [difference] = expectations.check_lineage(store, once).differences
    assert (difference.task, difference.kind, difference.detail) == (
        "join-all", E.UNEXPECTED_EVENT, "INPUT datasets is recorded twice, expected once"
    )

    # A loop iteration written `for-loop-2[1]` (the spelling views printed before) names the same task.
    bracketed = re.sub(r"for-loop-2/iteration-(\d)", r"for-loop-2[\1]", text)
    assert "  for-loop-2[1]/write-one:\n" in bracketed
    assert expectations.check_lineage(store, expectations_spec.parse_lineage_spec(bracketed)).ok
    assert recorded.find_task("for-loop-2[1]/write-one") is recorded.tasks["for-loop-2/iteration-1/write-one"]
    assert recorded.closest_task("for-loop-2[1]/write-on") == "for-loop-2/iteration-1/write-one"
    lineage = pytest_plugin.LineageAssertion(recorded)
    lineage.task("join-all").consumed("for-loop-2[0]/write-one.data").consumed("for-loop-2/iteration-1/write-one.data")


def test_expect_and_check_skip_a_newer_run_that_has_not_finished(sqlite_url, tmp_path):
    from tests.lineage_stores import RUNNING, Builder

    result = run_module.run_pipeline(pipelines.nested, store=sqlite_url, pipeline_root=str(tmp_path / "root"),
                                     run_id="nested-1", cwd=str(tmp_path))
    assert result.state == "COMPLETE"
    store = conftest.open_store(sqlite_url)
    Builder(store).run("nested-busy", pipeline="nested", root_state=RUNNING).task("prepare", state=RUNNING)
    assert expectations_record.read_run(store, pipeline="nested").run_id == "nested-1"
    assert expectations_record.read_run(store, "latest").run_id == "nested-1"
    assert expectations_record.read_run(store, "nested-busy").run_id == "nested-busy"  # by its id it is read
