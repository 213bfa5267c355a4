"""The warm fork server: Python tasks run in isolated forked children with the same results as subprocesses."""

import os

import pytest
from kfp import dsl

from kfp_lineage.engine.exec import forkserver
from kfp_lineage.engine import run as run_module
from kfp_lineage.ir import spec
from kfp_lineage.ir import requirements
from tests import conftest
from tests.fixtures import pipelines
from tests.mlmd_view import RunView


@dsl.component(base_image="python:3.11-slim")
def where_am_i(tag: str) -> str:
    import json
    import os
    import sys

    return json.dumps({"pid": os.getpid(), "cwd": os.getcwd(), "marker": os.environ.get("KFP_LINEAGE_TEST_MARKER"),
                       "tag": tag, "argv0": sys.argv[0],
                       "program": sys.argv[sys.argv.index("--component_module_path") + 1]})


@dsl.pipeline(name="where")
def where():
    where_am_i(tag="a")
    where_am_i(tag="b")


def test_the_compiled_lightweight_command_is_recognised(tmp_path):
    loaded = spec.load_pipeline(pipelines.linear)
    container = loaded.spec.deployment_spec["executors"]["exec-make-dataset"]["container"]
    prefix = requirements.split_pip_prefix(list(container["command"]))
    arguments = forkserver.python_task_arguments(list(prefix.command) + list(container["args"]))
    assert arguments[0].lstrip().startswith("import kfp")
    assert arguments[1:] == ["--executor_input", "{{$}}", "--function_to_execute", "make_dataset"]
    assert forkserver.python_task_arguments(["sh", "-c", "echo hi"]) is None


def test_forked_tasks_are_separate_processes_with_their_own_cwd_and_env(tmp_path, sqlite_url):
    import json

    work = tmp_path / "work"
    work.mkdir()
    result = run_module.run_pipeline(
        where, store=sqlite_url, pipeline_root=str(tmp_path / "root"), launcher="fork", cwd=str(work),
        env=dict(os.environ, KFP_LINEAGE_TEST_MARKER="set-for-tasks"),
    )
    assert result.state == "COMPLETE"
    seen = [json.loads(t.outputs["Output"]["value"]) for t in result.tasks.values()]
    assert {s["tag"] for s in seen} == {"a", "b"}
    assert seen[0]["pid"] != seen[1]["pid"] and os.getpid() not in {s["pid"] for s in seen}
    assert {s["cwd"] for s in seen} == {str(work)}
    assert {s["marker"] for s in seen} == {"set-for-tasks"}
    assert "KFP_LINEAGE_TEST_MARKER" not in os.environ


def test_tasks_of_one_component_share_one_program_file(tmp_path, sqlite_url):
    import json

    result = run_module.run_pipeline(where, store=sqlite_url, pipeline_root=str(tmp_path / "root"), launcher="fork")
    assert result.state == "COMPLETE"
    programs = {json.loads(t.outputs["Output"]["value"])["program"] for t in result.tasks.values()}
    assert len(programs) == 1
    [program] = programs
    run_root = result.run_root
    assert os.path.dirname(os.path.dirname(program)) == os.path.join(run_root, ".kfp-lineage", "programs")
    assert "def where_am_i(tag: str) -> str:" in open(program).read()
    assert not [name for name in os.listdir(os.path.dirname(program)) if name.endswith(".tmp")]


@pytest.mark.parametrize("launcher_mode", ["fork", "subprocess"])
def test_both_launchers_record_the_same_lineage(tmp_path, sqlite_url, launcher_mode):
    result = run_module.run_pipeline(pipelines.fan_out_in, store=sqlite_url, pipeline_root=str(tmp_path / "root"),
                                     run_id="both", launcher=launcher_mode)
    view = RunView(conftest.open_store(sqlite_url), "both")
    assert result.state == "COMPLETE"
    assert result.tasks["count-rows"].outputs["Output"] == {"value": 5}
    assert view.inputs("combine").keys() == {"left", "right"}


def test_a_forked_task_is_killed_at_its_timeout(tmp_path, sqlite_url):
    result = run_module.run_pipeline(pipelines.slow, {"seconds": 30}, store=sqlite_url,
                                     pipeline_root=str(tmp_path / "root"), task_timeout=1, launcher="fork")
    task = result.tasks["sleep-then-write"]
    assert task.state == "FAILED" and task.error == "timed out after 1 s"
    assert task.duration < 10


def test_an_unknown_launcher_is_refused(tmp_path, sqlite_url):
    from kfp_lineage import errors

    with pytest.raises(errors.InvalidInputError, match="launcher 'threads' is not known"):
        run_module.run_pipeline(pipelines.linear, store=sqlite_url, launcher="threads")


def _fork_task(tmp_path, marker):
    """A ForkHandler and a future running faults.sleep_and_mark in it, once the task and its child started."""
    import concurrent.futures
    import time

    from kfp_lineage.engine.exec import fork_handler
    from kfp_lineage.engine.exec import handler
    from tests.engine.exec.test_handlers import _launch
    from tests.reliability import faults

    context = handler.HandlerContext(env=dict(os.environ), scratch_root=str(tmp_path / "scratch"),
                                     processes=handler.RunningProcesses())
    fork = fork_handler.ForkHandler(context)
    launch = _launch(tmp_path, faults.slow_and_quick, "comp-sleep-and-mark", {"seconds": 60.0, "marker": str(marker)})
    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(fork.run, launch)
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline and not future.done(), "the task never started"
        time.sleep(0.05)
    pool.shutdown(wait=False)
    return fork, future, [int(pid) for pid in marker.read_text().split()]


def test_a_fork_server_whose_runner_is_gone_kills_its_tasks_and_exits(tmp_path):
    from tests.engine.test_scheduler import _alive

    fork, future, pids = _fork_task(tmp_path, tmp_path / "started")
    server = fork._servers[""]._process
    server.stdin.close()  # what a dead runner looks like from the server: the end of its requests
    outcome = future.result(timeout=30)
    assert server.wait(timeout=10) is not None
    assert not outcome.succeeded and outcome.error.startswith("killed by signal 9")
    assert not any(_alive(pid) for pid in pids)
    fork.close()


def test_a_task_dies_when_its_fork_server_is_killed(tmp_path):
    import signal

    from tests.engine.test_scheduler import _alive

    fork, future, pids = _fork_task(tmp_path, tmp_path / "started")
    os.kill(fork._servers[""]._process.pid, signal.SIGKILL)
    outcome = future.result(timeout=30)
    assert not outcome.succeeded
    assert not any(_alive(pid) for pid in pids)  # the task (parent-death signal) and its child (its group)
    fork.close()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="the parent-death signal is Linux's")
def test_a_forked_child_gets_the_parent_death_signal(tmp_path):
    # Straight through the server (no handler that would kill the group): the kernel kills the child itself.
    import signal
    import time

    from kfp_lineage.engine.exec import command
    from tests.engine.exec.test_handlers import _launch
    from tests.engine.test_scheduler import _alive
    from tests.reliability import faults

    marker = tmp_path / "started"
    launch = _launch(tmp_path, faults.slow_and_quick, "comp-sleep-and-mark", {"seconds": 60.0, "marker": str(marker)})
    os.makedirs(os.path.join(launch.scratch_dir, "outputs"), exist_ok=True)
    argv, _ = command.build_command(launch)
    server = forkserver.ForkServer(env=launch.env)
    child = server.spawn(forkserver.python_task_arguments(argv), log_path=launch.log_path, cwd=launch.cwd,
                         env=launch.env, program_dir=str(tmp_path / "programs"))
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(server._process.pid, signal.SIGKILL)
    assert not _alive(child.pid)
    try:  # its own child is not the kernel's business: clean up
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.close()


def test_the_server_module_uses_the_standard_library_only_and_loads_without_kfp_lineage():
    """Each isolated environment's server runs forkserver.py by path on that environment's Python, where neither
    kfp-lineage nor (until the server imports it) kfp may be importable."""
    import ast
    import subprocess
    import sys

    from kfp_lineage.engine.exec import interpreters

    with open(forkserver.__file__) as f:
        tree = ast.parse(f.read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported - set(sys.stdlib_module_names) == {"kfp"}  # kfp: only inside the server, from its environment
    base = interpreters.runner_interpreter().path  # the runner's base interpreter: no venv, no kfp-lineage
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('fs', sys.argv[1]); "
            "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
            "print(module.python_task_arguments(['sh', '-c', 'echo']), 'kfp_lineage' in sys.modules)")
    completed = subprocess.run([base, "-I", "-c", code, forkserver.__file__], capture_output=True, text=True,
                               check=True, cwd="/")
    assert completed.stdout.split() == ["None", "False"]
