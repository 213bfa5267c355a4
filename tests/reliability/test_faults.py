"""Faults: a task that crashes, is killed by a signal or times out; the runner killed with SIGINT or SIGKILL.

After each, the store is consistent: executions end FAILED/CANCELED (or are marked FAILED by recovery), no event
points at a missing artifact, and a re-run with caching completes only the unfinished work.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
from kfp import compiler
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage.mlmd import recovery
from kfp_lineage.engine import run as run_module
from tests import conftest
from tests.mlmd_view import RunView
from tests.reliability import faults

KFP_LINEAGE = os.path.join(os.path.dirname(sys.executable), "kfp-lineage")


def assert_consistent(view: RunView) -> None:
    """No execution left RUNNING, every event's artifact exists, no artifact without a producing event."""
    assert not [e.id for e in view.executions if e.last_known_state == mlmd_pb.Execution.RUNNING]
    artifact_ids = {e.artifact_id for e in view.events}
    assert len(view.store.get_artifacts_by_id(sorted(artifact_ids))) == len(artifact_ids)
    produced = {e.artifact_id for e in view.events if e.type == mlmd_pb.Event.OUTPUT}
    attributed = {a.id for a in view.store.get_artifacts_by_context(view.run_context.id)}
    assert attributed <= produced | {e.artifact_id for e in view.events}


@pytest.mark.parametrize(
    "pipeline, task, error",
    [(faults.crashing, "crash", "exited with code 3"), (faults.killed_by_signal, "killed", "killed by signal 9")],
)
@pytest.mark.parametrize("launcher", ["fork", "subprocess"])
def test_a_crashing_or_killed_task_fails_cleanly(tmp_path, sqlite_url, pipeline, task, error, launcher):
    result = run_module.run_pipeline(pipeline, store=sqlite_url, pipeline_root=str(tmp_path / "root"),
                                     run_id="r", launcher=launcher)
    assert result.state == "FAILED"
    assert result.tasks[task].state == "FAILED" and result.tasks[task].error.startswith(error)
    view = RunView(conftest.open_store(sqlite_url), "r")
    assert view.state(task) == "FAILED" and view.outputs(task) == {}
    assert view.state("") == "FAILED"
    assert_consistent(view)


def test_a_task_over_its_timeout_is_killed_and_failed(tmp_path, sqlite_url):
    result = run_module.run_pipeline(faults.lingering, {"seconds": 60, "marker": str(tmp_path / "m")},
                                     store=sqlite_url, pipeline_root=str(tmp_path / "root"), run_id="t",
                                     task_timeout=1.5)
    assert result.tasks["linger"].state == "FAILED"
    assert result.tasks["linger"].error == "timed out after 1.5 s"
    assert_consistent(RunView(conftest.open_store(sqlite_url), "t"))


def _start_runner(tmp_path, store, run_id, marker, seconds=60):
    spec_path = tmp_path / "lingering.yaml"
    compiler.Compiler().compile(faults.lingering, str(spec_path))
    return subprocess.Popen(
        [KFP_LINEAGE, "run", str(spec_path), "--store", store, "--pipeline-root", str(tmp_path / "root"),
         "--run-id", run_id, "--param", f"marker={marker}", "--param", f"seconds={seconds}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(path, timeout=60):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_of_the_runner_is_recovered_and_a_rerun_does_only_the_unfinished_work(tmp_path):
    store = str(tmp_path / "mlmd.sqlite")
    marker = tmp_path / "started"
    runner = _start_runner(tmp_path, store, "killed-run", marker)
    _wait_for(marker)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=10)

    view = RunView(conftest.open_store(store), "killed-run")
    assert view.state("linger") == "RUNNING" and view.state("") == "RUNNING"  # what a kill leaves behind

    recovered = subprocess.run([KFP_LINEAGE, "recover", "--store", store], capture_output=True, text=True)
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.startswith("recovered run killed-run: 2 executions marked FAILED")
    view = RunView(conftest.open_store(store), "killed-run")
    assert view.state("linger") == "FAILED" and view.state("") == "FAILED"
    assert "stopped without finishing the run" in view.prop("linger", "failure_reason")
    assert view.state("produce") == "COMPLETE"
    assert_consistent(view)

    again = run_module.run_pipeline(str(tmp_path / "lingering.yaml"), {"seconds": 0, "marker": str(marker)},
                                    store=store, pipeline_root=str(tmp_path / "root"), run_id="rerun")
    assert again.state == "COMPLETE"
    assert again.tasks["produce"].state == "CACHED"  # finished before the kill: not redone
    assert again.tasks["linger"].state == "COMPLETE"


@pytest.mark.slow
def test_the_next_run_of_the_pipeline_recovers_a_killed_run_by_itself(tmp_path):
    store = str(tmp_path / "mlmd.sqlite")
    marker = tmp_path / "started"
    runner = _start_runner(tmp_path, store, "first", marker)
    _wait_for(marker)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=10)
    run_module.run_pipeline(str(tmp_path / "lingering.yaml"), {"seconds": 0, "marker": str(marker)}, store=store,
                            pipeline_root=str(tmp_path / "root"), run_id="second")
    view = RunView(conftest.open_store(store), "first")
    assert view.state("linger") == "FAILED" and view.state("") == "FAILED"


def test_recover_refuses_a_live_or_unknown_run(tmp_path, sqlite_url):
    from kfp_lineage import errors

    run_module.run_pipeline(faults.crashing, store=sqlite_url, pipeline_root=str(tmp_path / "root"), run_id="done")
    store = conftest.open_store(sqlite_url)
    assert recovery.recover(store) == []
    with pytest.raises(errors.InvalidInputError, match="run 'done' is not a dead run on this host"):
        recovery.recover(store, run_id="done")
    with pytest.raises(errors.InvalidInputError, match="no run 'nope'"):
        recovery.recover(store, run_id="nope")


@pytest.mark.slow
def test_sigint_of_the_runner_cancels_running_tasks_and_finishes_the_store(tmp_path):
    store = str(tmp_path / "mlmd.sqlite")
    marker = tmp_path / "started"
    runner = _start_runner(tmp_path, store, "interrupted", marker)
    _wait_for(marker)
    runner.send_signal(signal.SIGINT)
    runner.communicate(timeout=30)
    assert runner.returncode == 130
    view = RunView(conftest.open_store(store), "interrupted")
    assert view.state("linger") == "CANCELED" and view.state("") == "FAILED"
    assert_consistent(view)
    assert recovery.recover(view.store) == []  # an interrupted runner finished its bookkeeping


def test_a_task_that_moves_its_output_outside_the_pipeline_root_fails_and_records_nothing(tmp_path, sqlite_url):
    from tests.fixtures import pipelines

    outside = tmp_path / "outside"
    result = run_module.run_pipeline(pipelines.escape, {"target": str(outside)}, store=sqlite_url,
                                     pipeline_root=str(tmp_path / "root"), run_id="escape")
    assert result.tasks["write-elsewhere"].state == "FAILED"
    assert "is outside the run's directory" in result.tasks["write-elsewhere"].error
    view = RunView(conftest.open_store(sqlite_url), "escape")
    assert view.store.get_artifacts() == []  # nothing points at the file outside the root
    assert_consistent(view)
