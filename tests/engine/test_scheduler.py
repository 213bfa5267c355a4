"""Runs small real pipelines through the runner and reads the MLMD records back with ml-metadata."""

from __future__ import annotations

import hashlib
import os

import pytest
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage.engine import run as run_module
from tests import conftest
from tests.fixtures import pipelines
from tests.mlmd_view import RunView


def run(pipeline, tmp_path, store_url, **kwargs):
    return run_module.run_pipeline(
        pipeline, kwargs.pop("arguments", {}), store=store_url, pipeline_root=str(tmp_path / "root"), **kwargs
    )


def test_linear_pipeline_records_contexts_executions_artifacts_and_events(tmp_path, any_store_url):
    result = run(pipelines.linear, tmp_path, any_store_url, arguments={"rows": 5}, run_id="linear-1")

    assert result.state == "COMPLETE"
    assert result.tasks["count-rows"].outputs["Output"] == {"value": 5}
    store = conftest.open_store(any_store_url)
    pipeline_context = store.get_context_by_type_and_name("system.Pipeline", "linear")
    run_context = store.get_context_by_type_and_name("system.PipelineRun", "linear-1")
    assert [c.id for c in store.get_parent_contexts_by_context(run_context.id)] == [pipeline_context.id]
    run_root = str(tmp_path / "root" / "linear" / "linear-1")
    import socket

    props = {k: v.string_value for k, v in run_context.custom_properties.items()}
    runner = props.pop("runner")
    assert runner.startswith(f"{socket.gethostname()}:{os.getpid()}:")
    assert props == {
        "namespace": "local",
        "resource_name": "run-resource",
        "pipeline_root": run_root,
        "store_session_info": '{"Provider":"local","Params":{}}',
        "runner_state": "COMPLETE",
    }

    view = RunView(store, "linear-1")
    assert set(view.by_key) == {"", "make-dataset", "count-rows"}
    root = view.execution("")
    assert root.name == "run/linear-1" and root.type == "system.DAGExecution"
    assert view.state("") == "COMPLETE"
    assert view.prop("", "inputs") == {"rows": 5}
    assert view.prop("", "display_name") == "" and view.prop("", "task_name") == ""

    make = view.execution("make-dataset")
    assert make.type == "system.ContainerExecution"
    assert view.state("make-dataset") == "COMPLETE"
    assert view.prop("make-dataset", "display_name") == "make data"
    assert view.prop("make-dataset", "task_name") == "make-dataset"
    assert view.prop("make-dataset", "parent_dag_id") == root.id
    assert view.prop("make-dataset", "inputs") == {"rows": 5}
    assert view.prop("make-dataset", "image") == "python:3.11-slim"
    assert view.prop("count-rows", "outputs") == {"Output": 5}

    [dataset_id] = view.outputs("make-dataset")["data"]
    assert view.inputs("count-rows") == {"data": [dataset_id]}
    assert view.inputs("make-dataset") == {}
    dataset = view.artifact(dataset_id)
    assert dataset.type == "system.Dataset"
    assert dataset.state == mlmd_pb.Artifact.LIVE
    assert dataset.uri.startswith(run_root + "/make-dataset/") and dataset.uri.endswith("/data")
    assert os.path.isfile(dataset.uri)
    props = dataset.custom_properties
    assert props["rows"].double_value == 5.0
    assert props["source"].string_value == "generated"
    assert props["ok"].int_value == 1
    assert props["display_name"].string_value == "data"
    assert list(props["columns"].struct_value["list"]) == ["x"]

    # Every launched container publishes its log as KFP 2.17 does (PUBLISH_LOGS): a system.Artifact beside the
    # task's outputs, `<task dir>/executor-logs-<retry index>`, with an OUTPUT event `executor-logs`.
    [make_log_id] = view.outputs("make-dataset")["executor-logs"]
    [count_log_id] = view.outputs("count-rows")["executor-logs"]
    make_log = view.artifact(make_log_id)
    assert make_log.type == "system.Artifact" and make_log.state == mlmd_pb.Artifact.LIVE
    assert make_log.uri == os.path.join(os.path.dirname(dataset.uri), "executor-logs-0")
    with open(make_log.uri) as f:
        published = f.read()
    assert {k: v.string_value for k, v in make_log.custom_properties.items()} == {
        "display_name": "executor-logs", "store_session_info": '{"Provider":"local","Params":{}}',
        "content_sha256": hashlib.sha256(published.encode()).hexdigest()}  # ours: `verify` re-hashes it
    # what the component printed; the runner's own lines about the task's environment come before it in the log
    assert "Looking for component `make_dataset`" in published and not published.startswith("kfp-lineage:")
    assert open(result.tasks["make-dataset"].log_path).read().endswith(published)
    assert set(view.outputs("make-dataset")) == {"data", "executor-logs"}

    # every execution associated, every artifact attributed, to both contexts
    for context in (pipeline_context, run_context):
        assert {e.id for e in store.get_executions_by_context(context.id)} == {e.id for e in view.executions}
        assert sorted(a.id for a in store.get_artifacts_by_context(context.id)) == sorted(
            [dataset_id, make_log_id, count_log_id])


def test_fan_out_and_fan_in(tmp_path, sqlite_url):
    result = run(pipelines.fan_out_in, tmp_path, sqlite_url, run_id="fan-1")

    assert result.state == "COMPLETE"
    view = RunView(conftest.open_store(sqlite_url), "fan-1")
    [left] = view.outputs("make-dataset")["data"]
    [right] = view.outputs("make-dataset-2")["data"]
    assert view.inputs("combine") == {"left": [left], "right": [right]}
    [merged] = view.outputs("combine")["merged"]
    assert view.inputs("count-rows") == {"data": [merged]}
    assert view.inputs("count-rows-2") == {"data": [left]}
    assert result.tasks["count-rows"].outputs["Output"] == {"value": 5}


def test_independent_tasks_run_in_parallel(tmp_path, sqlite_url):
    result = run(pipelines.fan_out_in, tmp_path, sqlite_url, run_id="fan-par", max_parallel=2)
    assert result.state == "COMPLETE"
    view = RunView(conftest.open_store(sqlite_url), "fan-par")
    first, second = view.execution("make-dataset"), view.execution("make-dataset-2")
    # both producers were started (created) before either was published
    assert first.create_time_since_epoch < second.last_update_time_since_epoch
    assert second.create_time_since_epoch < first.last_update_time_since_epoch


def test_nested_pipelines_are_dag_executions_with_artifacts_passed_through(tmp_path, any_store_url):
    result = run(pipelines.nested, tmp_path, any_store_url, run_id="nested-1")

    assert result.state == "COMPLETE"
    view = RunView(conftest.open_store(any_store_url), "nested-1")
    assert set(view.by_key) == {"", "prepare", "prepare/make-dataset", "consume", "consume/count-rows"}
    for dag in ("prepare", "consume"):
        assert view.execution(dag).type == "system.DAGExecution"
        assert view.state(dag) == "COMPLETE"
        assert view.prop(dag, "total_dag_tasks") == 1
    assert view.prop("prepare/make-dataset", "parent_dag_id") == view.execution("prepare").id
    [dataset_id] = view.outputs("prepare/make-dataset")["data"]
    assert view.outputs("prepare") == {}  # DAG outputs get no OUTPUT events, as in the backend
    assert view.inputs("consume") == {"data": [dataset_id]}
    assert view.inputs("consume/count-rows") == {"data": [dataset_id]}
    assert view.prop("consume", "outputs") is None  # the backend never publishes a DAG's outputs
    assert view.prop("consume/count-rows", "outputs") == {"Output": 4}
    assert result.tasks["consume"].outputs["Output"] == {"value": 4}


@pytest.mark.parametrize(
    "value, expected_branch",
    [(5, "condition-2"), (3, "condition-3"), (1, "condition-4")],
)
def test_if_elif_else_runs_one_branch_and_cancels_the_others(tmp_path, sqlite_url, value, expected_branch):
    result = run(pipelines.branches, tmp_path, sqlite_url, arguments={"value": value}, run_id=f"branches-{value}")

    assert result.state == "COMPLETE"
    view = RunView(conftest.open_store(sqlite_url), f"branches-{value}")
    conditions = {k: view.state(k) for k in view.by_key if k.startswith("condition-branches-1/")}
    expected = {
        f"condition-branches-1/{branch}": "COMPLETE" if branch == expected_branch else "CANCELED"
        for branch in ("condition-2", "condition-3", "condition-4")
    }
    ran = [k for k in conditions if k.count("/") == 2]
    assert ran == [f"condition-branches-1/{expected_branch}/{ran[0].rsplit('/', 1)[1]}"]
    del conditions[ran[0]]
    assert conditions == expected
    assert view.state(ran[0]) == "COMPLETE"
    # the `mode == "slow"` condition is false: its DAG is CANCELED and its task never created
    assert view.state("condition-5") == "CANCELED"
    assert not [k for k in view.by_key if k.startswith("condition-5/")]
    assert view.state("condition-branches-1") == "COMPLETE"
    assert view.state("") == "COMPLETE"


def test_true_condition_on_a_pipeline_parameter(tmp_path, sqlite_url):
    result = run(pipelines.branches, tmp_path, sqlite_url, arguments={"mode": "slow"}, run_id="slow")
    assert result.tasks["condition-5"].state == "COMPLETE"
    assert result.tasks["condition-5/echo-4"].outputs["Output"] == {"value": "slow mode"}


def test_failed_task_fails_its_dag_and_stops_downstream(tmp_path, any_store_url):
    result = run(pipelines.failing, tmp_path, any_store_url, run_id="failing-1")

    assert result.state == "FAILED"
    failed = result.tasks["fail"]
    assert failed.state == "FAILED"
    assert "boom: the data is bad" in failed.error
    assert os.path.isfile(failed.log_path) and "RuntimeError" in open(failed.log_path).read()
    assert "count-rows" not in result.tasks  # downstream of a failure: never started, not recorded

    view = RunView(conftest.open_store(any_store_url), "failing-1")
    assert set(view.by_key) == {"", "make-dataset", "fail"}
    assert view.state("fail") == "FAILED"
    # a failed container publishes its log only, as the backend's launcher does
    [log_id] = view.outputs("fail").pop("executor-logs")
    assert view.outputs("fail") == {"executor-logs": [log_id]}
    assert "RuntimeError: boom: the data is bad" in open(view.artifact(log_id).uri).read()
    assert view.state("make-dataset") == "COMPLETE"
    assert view.state("") == "FAILED"
    # no dangling events: every event points at an existing artifact
    artifact_ids = {e.artifact_id for e in view.events}
    assert len(view.store.get_artifacts_by_id(list(artifact_ids))) == len(artifact_ids)


def test_one_artifact_bound_to_two_inputs_gets_one_input_event(tmp_path, sqlite_url):
    result = run(pipelines.same_artifact_twice, tmp_path, sqlite_url, run_id="twice")

    assert result.state == "COMPLETE"
    view = RunView(conftest.open_store(sqlite_url), "twice")
    [dataset_id] = view.outputs("make-dataset")["data"]
    assert view.inputs("combine") == {"left": [dataset_id]}
    assert view.prop("combine", "merged_input_keys") == {"right": "left"}


def test_seed_query_style_finds_the_training_data_of_a_model(tmp_path, sqlite_url):
    """The query the seed code runs against a KFP store works unchanged on ours."""
    run(pipelines.fan_out_in, tmp_path, sqlite_url, run_id="seed-0")
    result = run_module.run_pipeline(
        "tests/fixtures/pipelines.py:linear", {}, store=sqlite_url, pipeline_root=str(tmp_path / "root")
    )
    assert result.state == "COMPLETE"
    store = conftest.open_store(sqlite_url)
    [dataset] = [a for a in store.get_artifacts_by_type("system.Dataset") if a.uri == result.tasks[
        "make-dataset"].outputs["data"]["uri"]]
    events = store.get_events_by_artifact_ids([dataset.id])
    [producer] = [e.execution_id for e in events if e.type == mlmd_pb.Event.OUTPUT]
    [execution] = store.get_executions_by_id([producer])
    assert execution.custom_properties["task_name"].string_value == "make-dataset"


def test_run_id_cannot_be_reused(tmp_path, sqlite_url):
    from kfp_lineage import errors

    run(pipelines.linear, tmp_path, sqlite_url, run_id="again")
    with pytest.raises(errors.InvalidInputError, match="run id 'again' is already recorded"):
        run(pipelines.linear, tmp_path, sqlite_url, run_id="again")


def test_max_parallel_one_runs_tasks_one_at_a_time(tmp_path, sqlite_url):
    run(pipelines.fan_out_in, tmp_path, sqlite_url, run_id="serial", max_parallel=1)
    view = RunView(conftest.open_store(sqlite_url), "serial")
    spans = sorted(
        (e.create_time_since_epoch, e.last_update_time_since_epoch)
        for e in view.executions if e.type == "system.ContainerExecution"
    )
    assert len(spans) == 5
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start


class _Collect:
    def __init__(self):
        self.warnings = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def warn(self, message):
        self.warnings.append(message)


def test_a_mismatched_requirement_warns_and_runs_with_the_installed_version(tmp_path, sqlite_url):
    reporter = _Collect()
    result = run(pipelines.old_click, tmp_path, sqlite_url, reporter=reporter, task_env="current")
    assert result.state == "COMPLETE"
    import importlib.metadata

    assert reporter.warnings == [
        f"task 'wants-old-click' asks for click==1.0 (installed: {importlib.metadata.version('click')}); "
        "running with the installed version"
    ]


def test_a_missing_requirement_is_refused_before_anything_runs(tmp_path, sqlite_url):
    from kfp_lineage import errors

    # --task-env current is the mode that refuses (auto would build an environment with the package).
    with pytest.raises(errors.InvalidInputError, match=r"^task 'wants-missing-package' needs "
                       r"surely-not-installed-pkg==1.0 \(not installed\); with --task-env current kfp-lineage never "
                       r"installs packages: install it into this environment \(pip install "
                       r"'surely-not-installed-pkg==1.0'\), or use --task-env auto$"):
        run(pipelines.missing_package, tmp_path, sqlite_url, task_env="current")
    assert not os.path.exists(sqlite_url)


def test_an_output_moved_outside_the_run_directory_fails_the_task(tmp_path, sqlite_url):
    result = run(pipelines.escape, tmp_path, sqlite_url, arguments={"target": str(tmp_path / "outside")},
                 run_id="escape")
    assert result.state == "FAILED"
    assert result.tasks["write-elsewhere"].error.startswith(f"output URI {tmp_path / 'outside'} is outside the run's")
    view = RunView(conftest.open_store(sqlite_url), "escape")
    assert set(view.outputs("write-elsewhere")) == {"executor-logs"}
    assert [a.type for a in view.store.get_artifacts()] == ["system.Artifact"]  # the log; no output was recorded


def test_a_bug_in_the_scheduler_kills_running_tasks_and_closes_the_run(tmp_path, sqlite_url, monkeypatch):
    from kfp_lineage import errors
    from kfp_lineage.engine import scheduler
    from tests.reliability import faults

    def _container_done(self, finished):  # a bug: unbounded recursion, as the ParallelFor bookkeeping once had
        return _container_done(self, finished)

    monkeypatch.setattr(scheduler.Scheduler, "_container_done", _container_done)
    marker = tmp_path / "started"
    with pytest.raises(errors.RunAbortedError, match=r"^the runner stopped on an unexpected error: RecursionError: "
                       r"maximum recursion depth exceeded; its running tasks were stopped and the run was "
                       r"recorded FAILED \(traceback: .*runner-error.log\)$"):
        run(faults.slow_and_quick, tmp_path, sqlite_url, arguments={"marker": str(marker)}, run_id="buggy")
    view = RunView(conftest.open_store(sqlite_url), "buggy")
    assert view.state("sleep-and-mark") == "FAILED"  # killed while it slept, closed by the runner
    assert view.prop("sleep-and-mark", "failure_reason").startswith("the runner stopped on an error: RecursionError")
    assert view.state("") == "FAILED"
    assert view.run_context.custom_properties["runner_state"].string_value == "FAILED"
    assert not [e.id for e in view.executions if e.last_known_state == mlmd_pb.Execution.RUNNING]
    for pid in map(int, marker.read_text().split()):  # the task and its child: killed, as a group
        assert not _alive(pid)


def _alive(pid: int, timeout: float = 5.0) -> bool:
    """Whether a process still runs after `timeout` (a zombie waiting for its parent to reap it does not)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.isdir("/proc"):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                        return False
            except FileNotFoundError:
                return False
        else:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
        time.sleep(0.05)
    return True


def test_a_container_s_inputs_leave_out_parameters_that_fall_back_to_their_default(tmp_path, sqlite_url):
    # The driver records what the task binds; the launcher fills in defaults at run time (resolve.go).
    result = run(pipelines.defaults, tmp_path, sqlite_url, run_id="defaults-1")
    assert result.tasks["repeat"].outputs["Output"] == {"value": "hi-hi"}  # the default still reaches the task
    view = RunView(conftest.open_store(sqlite_url), "defaults-1")
    assert view.prop("repeat", "inputs") == {"text": "hi", "sep": "-"}


def test_a_task_output_feeding_a_resource_field_is_a_dependency(tmp_path, sqlite_url):
    # The compiler writes no dependentTasks for an output used only in a resource field (KFP's
    # pipeline_with_string_machine_fields_task_output); the backend's Argo compiler adds the producers of every
    # task-output input (addImplicitDependencies), so the consumer waits for memory-limit.
    result = run(pipelines.resource_from_output, tmp_path, sqlite_url)
    assert result.state == "COMPLETE"
    assert result.tasks["sum-numbers"].outputs == {"Output": {"value": 3}}


def test_a_finished_task_is_published_while_its_sibling_still_runs(tmp_path, sqlite_url):
    """The runner may defer a finished task's COMPLETE to overlap the next launch, but never past its next wait:
    the store shows it while a long sibling task is still running."""
    import threading
    import time

    flag = tmp_path / "flag"
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(result=run(
        pipelines.published_early, tmp_path, sqlite_url, arguments={"flag": str(flag)}, run_id="early-1", max_parallel=2)))
    runner.start()
    try:
        store = conftest.open_store(sqlite_url)
        states = []
        deadline = time.time() + 30
        while time.time() < deadline and mlmd_pb.Execution.COMPLETE not in states:
            time.sleep(0.05)
            run_context = store.get_context_by_type_and_name("system.PipelineRun", "early-1")
            if run_context is not None:
                states = [e.last_known_state for e in store.get_executions_by_context(run_context.id)
                          if e.custom_properties["task_name"].string_value == "make-number"]
        assert states == [mlmd_pb.Execution.COMPLETE]
    finally:
        flag.write_text("")
        runner.join(timeout=60)
    assert outcome["result"].state == "COMPLETE"
