"""Faults: a task that crashes, is killed by a signal or times out; the runner stopped by SIGINT, SIGTERM or
SIGKILL, its output closed, or the runner itself failing.

After each, the store is consistent: executions end FAILED/CANCELED (or are marked FAILED by recovery), the run
context is final, no event points at a missing artifact, no process of the run is left, and a re-run with caching
completes only the unfinished work.
"""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from kfp import compiler
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage import errors
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
    assert view.state(task) == "FAILED" and set(view.outputs(task)) == {"executor-logs"}  # its log only
    assert view.state("") == "FAILED"
    assert_consistent(view)


def test_a_task_over_its_timeout_is_killed_and_failed(tmp_path, sqlite_url):
    result = run_module.run_pipeline(faults.lingering, {"seconds": 60, "marker": str(tmp_path / "m")},
                                     store=sqlite_url, pipeline_root=str(tmp_path / "root"), run_id="t",
                                     task_timeout=1.5)
    assert result.tasks["linger"].state == "FAILED"
    assert result.tasks["linger"].error == "timed out after 1.5 s"
    assert_consistent(RunView(conftest.open_store(sqlite_url), "t"))


def assert_final(view: RunView) -> None:
    """assert_consistent, and the run is over: its root DAG and its run context are in a final state."""
    assert_consistent(view)
    assert view.state("") in ("COMPLETE", "FAILED", "CANCELED")
    assert view.run_context.custom_properties["runner_state"].string_value in ("COMPLETE", "FAILED", "CANCELED")


def _start_runner(tmp_path, store, run_id, marker, seconds=60):
    spec_path = tmp_path / "lingering.yaml"
    compiler.Compiler().compile(faults.lingering, str(spec_path))
    return subprocess.Popen(
        [KFP_LINEAGE, "run", str(spec_path), "--store", store, "--pipeline-root", str(tmp_path / "root"),
         "--run-id", run_id, "--param", f"marker={marker}", "--param", f"seconds={seconds}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _run_command(tmp_path, pipeline, run_id, *options, **params):
    """The `kfp-lineage run` command line of a fault pipeline, compiled into tmp_path, with a store there."""
    spec_path = tmp_path / f"{pipeline.name}.yaml"
    if not spec_path.exists():
        compiler.Compiler().compile(pipeline, str(spec_path))
    command = [KFP_LINEAGE, "run", str(spec_path), "--store", str(tmp_path / "mlmd.sqlite"), "--pipeline-root",
               str(tmp_path / "root"), "--run-id", run_id, *options]
    for name, value in params.items():
        command += ["--param", f"{name}={value}"]
    return command


def _tagged_env():
    """The environment for a runner whose every descendant can be found again: (env, tag)."""
    tag = uuid.uuid4().hex
    return dict(os.environ, KFP_LINEAGE_TEST_PROCESS_TAG=tag), tag


def _live_processes(tag):
    """Pids of live processes (zombies do not count) whose environment carries the tag; Linux /proc only."""
    needle = f"KFP_LINEAGE_TEST_PROCESS_TAG={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    continue
        except OSError:  # gone meanwhile, or not ours
            continue
        found.append(int(entry))
    return found


def assert_no_process_left(tag, timeout=10.0):
    """Every process of the run is gone (within `timeout`: a killed group takes a moment to be reaped)."""
    deadline = time.monotonic() + timeout
    while (left := _live_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left behind: {left}"


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds processes through /proc")


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


@needs_proc
@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["fork", "subprocess"])
def test_no_task_outlives_a_runner_killed_with_sigkill(tmp_path, launcher):
    # The fork server, the task and the task's own child, the reaper: every process of the run dies with it.
    env, tag = _tagged_env()
    env["KFP_LINEAGE_LAUNCHER"] = launcher
    marker = tmp_path / "started"
    runner = subprocess.Popen(_run_command(tmp_path, faults.slow_and_quick, "killed", marker=marker), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(marker)
    task_pid, child_pid = map(int, marker.read_text().split())
    assert {task_pid, child_pid} <= set(_live_processes(tag))
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=10)
    assert_no_process_left(tag)
    view = RunView(conftest.open_store(str(tmp_path / "mlmd.sqlite")), "killed")
    assert view.state("sleep-and-mark") == "RUNNING"  # nobody could publish it: `recover` closes it
    [recovered] = recovery.recover(view.store)
    assert recovered.run_id == "killed"
    assert_final(RunView(view.store, "killed"))


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
    assert view.state("linger") == "CANCELED" and view.state("") == "CANCELED"
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
    # nothing points at the file outside the root: the task's log is the only artifact
    assert [a.uri.rsplit("/", 1)[-1] for a in view.store.get_artifacts()] == ["executor-logs-0"]
    assert_consistent(view)


# Every way a run ends, each through a real `kfp-lineage run` process: the store is final and no process is left.


def _runner_state(view: RunView) -> str:
    return view.run_context.custom_properties["runner_state"].string_value


@needs_proc
@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["fork", "subprocess"])
def test_a_run_ends_consistent_when_it_succeeds_and_when_a_task_fails(tmp_path, launcher):
    env, tag = _tagged_env()
    env["KFP_LINEAGE_LAUNCHER"] = launcher
    ok = subprocess.run(_run_command(tmp_path, faults.lingering, "ok", seconds=0, marker=tmp_path / "m"), env=env,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    failed = subprocess.run(_run_command(tmp_path, faults.crashing, "failed"), env=env, capture_output=True,
                            text=True)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("Error: task crash failed: exited with code 3")
    store = conftest.open_store(str(tmp_path / "mlmd.sqlite"))
    for run_id, state in (("ok", "COMPLETE"), ("failed", "FAILED")):
        view = RunView(store, run_id)
        assert view.state("") == state and _runner_state(view) == state
        assert_final(view)
    assert_no_process_left(tag)


@needs_proc
@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["fork", "subprocess"])
@pytest.mark.parametrize("signal_number, code, cause", [
    (signal.SIGINT, 130, "interrupted"),
    (signal.SIGTERM, 143, "stopped by SIGTERM"),
])
def test_sigint_or_sigterm_of_the_runner_cancels_the_run(tmp_path, launcher, signal_number, code, cause):
    env, tag = _tagged_env()
    env["KFP_LINEAGE_LAUNCHER"] = launcher
    marker = tmp_path / "started"
    runner = subprocess.Popen(_run_command(tmp_path, faults.slow_and_quick, "stopped", marker=marker), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(marker)
    runner.send_signal(signal_number)
    _, stderr = runner.communicate(timeout=60)
    assert runner.returncode == code
    assert stderr.strip().splitlines()[-1] == f"Error: {cause}; running tasks were stopped and recorded as CANCELED"
    view = RunView(conftest.open_store(str(tmp_path / "mlmd.sqlite")), "stopped")
    assert view.state("sleep-and-mark") == "CANCELED" and view.outputs("sleep-and-mark") == {}
    assert view.state("") == "CANCELED" and _runner_state(view) == "CANCELED"
    assert_final(view)
    assert_no_process_left(tag)


@needs_proc
@pytest.mark.slow
def test_a_closed_stdout_or_stderr_neither_stops_the_run_nor_prints_a_traceback(tmp_path):
    env, tag = _tagged_env()
    # `kfp-lineage run ... --json | head -5` with the reader gone before the result is printed: the run goes on,
    # nothing is printed about the pipe, and the exit code is the run's.
    with open(tmp_path / "stderr", "w") as stderr:
        runner = subprocess.Popen(_run_command(tmp_path, faults.slow_and_quick, "stdout-closed", "--json",
                                               seconds=1, marker=tmp_path / "m1"),
                                  env=env, stdout=subprocess.PIPE, stderr=stderr)
        runner.stdout.close()
        assert runner.wait(timeout=120) == 0
    errors = (tmp_path / "stderr").read_text()
    assert "Traceback" not in errors and "BrokenPipe" not in errors and "Exception ignored" not in errors
    assert errors.strip().splitlines()[-1].endswith("2 complete")
    # `kfp-lineage run ... 2>&1 | head -5`: the progress lines themselves find the pipe closed.
    runner = subprocess.Popen(_run_command(tmp_path, faults.slow_and_quick, "both-closed", seconds=1,
                                           marker=tmp_path / "m2"),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first_lines = [runner.stdout.readline() for _ in range(5)]
    runner.stdout.close()
    assert runner.wait(timeout=120) == 0
    assert first_lines[0].startswith(b"[") and b"run both-closed" in first_lines[0]
    store = conftest.open_store(str(tmp_path / "mlmd.sqlite"))
    for run_id in ("stdout-closed", "both-closed"):
        view = RunView(store, run_id)
        assert view.state("") == "COMPLETE" and _runner_state(view) == "COMPLETE"
        assert_final(view)
    assert_no_process_left(tag)


@needs_proc
@pytest.mark.slow
def test_ctrl_c_of_a_runner_piped_to_tee_records_the_run_canceled(tmp_path):
    env, tag = _tagged_env()
    marker, status = tmp_path / "started", tmp_path / "status"
    command = " ".join(f"'{part}'" for part in _run_command(tmp_path, faults.slow_and_quick, "teed", marker=marker))
    script = f"{command} 2>&1 | tee '{tmp_path / 'out'}'; echo ${{PIPESTATUS[0]}} > '{status}'"
    shell = subprocess.Popen(["bash", "-c", script], env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(marker)
    os.killpg(shell.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group, tee included
    shell.wait(timeout=60)
    assert status.read_text().strip() == "130"
    view = RunView(conftest.open_store(str(tmp_path / "mlmd.sqlite")), "teed")
    assert view.state("sleep-and-mark") == "CANCELED"
    assert view.state("") == "CANCELED" and _runner_state(view) == "CANCELED"
    assert_final(view)
    assert_no_process_left(tag)


_BUGGY_RUNNER = """
import sys
from kfp_lineage import cli
from kfp_lineage.engine import scheduler

def _container_done(self, finished):  # a bug: unbounded recursion, as the ParallelFor bookkeeping once had
    return _container_done(self, finished)

scheduler.Scheduler._container_done = _container_done
cli.entrypoint(sys.argv[1:])
"""


@needs_proc
@pytest.mark.slow
def test_a_runner_that_fails_on_a_bug_kills_its_tasks_and_closes_the_run(tmp_path):
    env, tag = _tagged_env()
    command = _run_command(tmp_path, faults.slow_and_quick, "buggy", marker=tmp_path / "started")
    runner = subprocess.run([sys.executable, "-c", _BUGGY_RUNNER, *command[1:]], env=env, capture_output=True,
                            text=True, timeout=120)
    assert runner.returncode == 1
    last = runner.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: the runner stopped on an unexpected error: RecursionError: maximum recursion "
                           "depth exceeded; its running tasks were stopped and the run was recorded FAILED "
                           "(traceback: ")
    log_path = last.rsplit("(traceback: ", 1)[1].rstrip(")")
    assert "RecursionError" in open(log_path).read()
    view = RunView(conftest.open_store(str(tmp_path / "mlmd.sqlite")), "buggy")
    assert view.state("sleep-and-mark") == "FAILED"
    assert view.prop("sleep-and-mark", "failure_reason").startswith(
        "the runner stopped on an error: RecursionError: maximum recursion depth exceeded")
    assert view.state("") == "FAILED" and _runner_state(view) == "FAILED"
    assert_final(view)
    assert_no_process_left(tag)


@needs_proc
@pytest.mark.slow
def test_a_store_error_that_outlasts_the_retries_stops_the_run_and_closes_it(tmp_path):
    # A task holds the SQLite store's lock for two minutes: the runner's next write fails after its retries; it
    # kills the task (which frees the lock) and closes the run.
    env, tag = _tagged_env()
    command = _run_command(tmp_path, faults.store_locked, "locked", store_path=tmp_path / "mlmd.sqlite",
                           marker=tmp_path / "locked")
    runner = subprocess.run(command, env=env, capture_output=True, text=True, timeout=170)
    assert runner.returncode == 1, runner.stderr
    last = runner.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: the runner stopped on an unexpected error: AbortedError: Concurrent writes "
                           "aborted after max number of retries.; its running tasks were stopped and the run was "
                           "recorded FAILED (traceback: ")
    view = RunView(conftest.open_store(str(tmp_path / "mlmd.sqlite")), "locked")
    assert view.state("lock-store") == "FAILED" and view.state("wait-for") == "FAILED"
    assert view.state("") == "FAILED" and _runner_state(view) == "FAILED"
    assert_final(view)
    assert_no_process_left(tag)


# Telling a dead runner from a live one: by the lock it holds, not by its pid.


def _record_run(store, run_id, run_root, runner):
    """A RUNNING run context as a runner recorded as `runner` would leave it."""
    from kfp_lineage.mlmd import recorder

    recorder.Recorder(store).begin_run("judged", run_id, str(run_root))
    run = store.get_context_by_type_and_name("system.PipelineRun", run_id)
    run.custom_properties["runner"].string_value = runner
    store.put_contexts([run])


def test_a_runner_is_alive_while_it_holds_its_lock_whatever_its_pid_says(tmp_path, sqlite_url):
    import socket

    store = conftest.open_store(sqlite_url)
    # As a live runner in a container that shares this hostname is recorded: a pid this PID namespace lacks.
    unknown_pid = f"{socket.gethostname()}:4194304:1"  # above Linux's largest pid
    lock = recovery.hold_runner_lock(str(tmp_path / "live"))
    _record_run(store, "live", tmp_path / "live", unknown_pid)
    # Recorded before runner locks (its directory here, no lock file): judged by its pid, which is gone.
    (tmp_path / "legacy").mkdir()
    _record_run(store, "legacy", tmp_path / "legacy", unknown_pid)
    # Its directory is not on this machine (another host, a container's own filesystem): cannot tell.
    _record_run(store, "elsewhere", tmp_path / "not-here", unknown_pid)
    assert [run.name for run in recovery.find_dead_runs(store)] == ["legacy"]
    with pytest.raises(errors.InvalidInputError, match="in use by a live run with the same run id"):
        recovery.hold_runner_lock(str(tmp_path / "live"))
    lock.release()  # what the kernel does when the runner dies, however it dies
    assert sorted(run.name for run in recovery.find_dead_runs(store)) == ["legacy", "live"]


@needs_proc
@pytest.mark.slow
def test_a_live_runner_in_another_pid_namespace_is_not_recovered(tmp_path):
    # A container sharing this hostname: the runner records a pid that means another process (or none) here.
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot make a PID namespace here (unshare needs privileges)")
    env, tag = _tagged_env()
    marker = tmp_path / "started"
    command = _run_command(tmp_path, faults.slow_and_quick, "contained", marker=marker)
    namespace = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", *command], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(marker)
    store = conftest.open_store(str(tmp_path / "mlmd.sqlite"))
    view = RunView(store, "contained")
    recorded_pid = int(view.run_context.custom_properties["runner"].string_value.split(":")[1])
    [runner_pid] = [pid for pid in _live_processes(tag) if _parent(pid) == namespace.pid]
    assert recorded_pid != runner_pid  # the recorded pid is the namespace's view
    assert recovery.recover(store) == []
    with pytest.raises(errors.InvalidInputError, match="is not a dead run"):
        recovery.recover(store, run_id="contained")
    assert RunView(store, "contained").state("sleep-and-mark") == "RUNNING"
    os.kill(runner_pid, signal.SIGKILL)  # the namespace's init: everything in it dies
    namespace.wait(timeout=30)
    assert_no_process_left(tag)
    [recovered] = recovery.recover(store)
    assert recovered.run_id == "contained"
    assert_final(RunView(store, "contained"))


def _parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_a_pipeline_root_that_cannot_hold_the_run_is_refused_before_anything_is_written(tmp_path, sqlite_url):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(errors.InvalidInputError, match=r"cannot create the run's directory .*a-file/crashing/r: "
                                                       r"Not a directory: pass a writable --pipeline-root"):
        run_module.run_pipeline(faults.crashing, store=sqlite_url, pipeline_root=str(tmp_path / "a-file"),
                                run_id="r")
    assert conftest.open_store(sqlite_url).get_contexts() == []
