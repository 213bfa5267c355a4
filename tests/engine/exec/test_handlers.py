"""Task handlers made by the factory run real tasks alone (no scheduler, no store) and agree on the outcome."""

import dataclasses
import os
import subprocess
import sys

import pytest
from google.protobuf import json_format

from kfp_lineage import errors
from kfp_lineage.engine.exec import command
from kfp_lineage.engine.exec import factory
from kfp_lineage.engine.exec import fork_handler
from kfp_lineage.engine.exec import handler
from kfp_lineage.engine.exec import subprocess_handler
from kfp_lineage.ir import dataflow
from kfp_lineage.ir import preflight
from kfp_lineage.ir import spec
from tests.conformance import pipelines as conformance_pipelines
from tests.fixtures import pipelines


def _launch(tmp_path, pipeline, component_name, parameters, artifacts=None, timeout=None, tag="task"):
    """A TaskLaunch for one component of a compiled pipeline, with its files under tmp_path/tag."""
    loaded = spec.load_pipeline(pipeline)
    component = loaded.spec.components[component_name]
    container = preflight.deployment_config(loaded.spec).executors[component.executor_label].container
    base = tmp_path / tag
    env = dict(os.environ, PATH=command.python_shim_dir(str(tmp_path / "scratch")) + os.pathsep + os.environ["PATH"])
    return handler.TaskLaunch(
        label=tag,
        component_spec=component,
        container=container,
        parameters=parameters,
        artifacts=artifacts or {},
        output_uris={name: str(base / "outputs" / name) for name in component.output_definitions.artifacts},
        scratch_dir=str(base / "scratch"),
        log_path=str(base / "task.log"),
        pipeline_name=loaded.name,
        run_id="run-1",
        pipeline_root=str(tmp_path),
        cwd=str(tmp_path),
        env=env,
        timeout=timeout,
    )


@pytest.fixture(params=list(factory.HANDLERS))
def task_handler(request, tmp_path):
    context = handler.HandlerContext(env=dict(os.environ), scratch_root=str(tmp_path / "scratch"),
                                     processes=handler.RunningProcesses())
    made = factory.create_handler(request.param, context)
    yield made
    made.close()


def test_the_factory_knows_fork_first_and_subprocess():
    assert list(factory.HANDLERS) == ["fork", "subprocess"]
    assert factory.DEFAULT_HANDLER == "fork"
    context = handler.HandlerContext({}, "/nonexistent", handler.RunningProcesses())
    assert isinstance(factory.create_handler("fork", context), fork_handler.ForkHandler)
    assert isinstance(factory.create_handler("subprocess", context), subprocess_handler.SubprocessHandler)


def test_an_unknown_handler_name_is_refused_with_the_known_names():
    context = handler.HandlerContext({}, "/nonexistent", handler.RunningProcesses())
    with pytest.raises(errors.InvalidInputError) as caught:
        factory.create_handler("docker", context)
    assert str(caught.value) == "launcher 'docker' is not known: use 'fork' or 'subprocess'"


def test_both_handlers_run_a_python_task_to_the_same_outputs(tmp_path):
    outcomes = {}
    for name in factory.HANDLERS:
        context = handler.HandlerContext(env=dict(os.environ), scratch_root=str(tmp_path / "scratch"),
                                         processes=handler.RunningProcesses())
        task_handler = factory.create_handler(name, context)
        try:
            launch = _launch(tmp_path, pipelines.linear, "comp-make-dataset", {"rows": 3}, tag=name)
            outcomes[name] = (launch, task_handler.run(launch))
        finally:
            task_handler.close()
    for name, (launch, outcome) in outcomes.items():
        assert outcome.succeeded, (name, outcome.error)
        assert outcome.returncode == 0 and outcome.parameters == {}
        [artifact] = outcome.artifacts["data"]
        assert artifact.uri == launch.output_uris["data"]
        assert artifact.type.schema_title == "system.Dataset"
        assert json_format.MessageToDict(artifact.metadata) == {"rows": 3.0, "source": "generated", "ok": True,
                                                                "columns": ["x"]}
        with open(artifact.uri) as f:
            assert f.read() == "x\n0\n1\n2\n"
    assert outcomes["fork"][1].parameters == outcomes["subprocess"][1].parameters


@pytest.mark.parametrize("name", list(factory.HANDLERS))
def test_on_started_is_called_once_while_the_task_process_is_alive(tmp_path, name):
    """The runner records a task's execution from this call, so it must come before the attempt returns, the last
    call once the process started (it is in the run's processes); the fork handler calls it once before, when the
    server has the request."""
    processes = handler.RunningProcesses()
    task_handler = factory.create_handler(name, handler.HandlerContext(
        env=dict(os.environ), scratch_root=str(tmp_path / "scratch"), processes=processes))
    seen = []

    def started():
        seen.append([os.path.exists(f"/proc/{p.pid}") for p in processes._processes])

    try:
        launch = dataclasses.replace(_launch(tmp_path, pipelines.linear, "comp-make-dataset", {"rows": 3}),
                                     on_started=started)
        outcome = task_handler.run(launch)
    finally:
        task_handler.close()
    assert outcome.succeeded, outcome.error
    assert seen == ([[], [True]] if name == "fork" else [[True]])


def test_a_task_reads_its_input_artifact_and_returns_a_parameter(tmp_path, task_handler):
    data = tmp_path / "in.csv"
    data.write_text("x\n1\n2\n3\n4\n")
    artifact = dataflow.InputArtifact(7, "system.Dataset", "0.0.1", str(data), {})
    launch = _launch(tmp_path, pipelines.linear, "comp-count-rows", {}, artifacts={"data": [artifact]})
    outcome = task_handler.run(launch)
    assert outcome.succeeded, outcome.error
    assert outcome.parameters == {"Output": 4}
    assert outcome.artifacts == {}


def test_a_container_component_runs_as_a_subprocess_under_either_handler(tmp_path, task_handler):
    launch = _launch(tmp_path, conformance_pipelines.container_component, "comp-shell-echo", {"text": "hi there"})
    outcome = task_handler.run(launch)
    assert outcome.succeeded, outcome.error
    assert outcome.parameters == {"out": "hi there"}


def test_a_failing_task_is_an_outcome_with_the_exception_line_not_an_exception(tmp_path, task_handler):
    launch = _launch(tmp_path, pipelines.failing, "comp-fail", {"message": "the data is bad"})
    outcome = task_handler.run(launch)
    assert not outcome.succeeded and outcome.returncode == 1
    assert outcome.error == "exited with code 1: RuntimeError: the data is bad"


def test_a_missing_program_is_an_outcome_naming_the_image(tmp_path, task_handler):
    launch = _launch(tmp_path, conformance_pipelines.missing_program_pipeline, "comp-missing-program", {})
    outcome = task_handler.run(launch)
    assert not outcome.succeeded
    assert outcome.error == ("image 'example.com/tool:1': program 'no-such-program-here' is not available on "
                             "this machine")


def test_a_task_over_its_timeout_is_killed(tmp_path, task_handler):
    launch = _launch(tmp_path, pipelines.slow, "comp-sleep-then-write", {"seconds": 30.0}, timeout=0.5)
    outcome = task_handler.run(launch)
    assert not outcome.succeeded and not outcome.canceled
    assert outcome.error == "timed out after 0.5 s"
    assert outcome.duration < 10


def test_a_task_started_after_cancel_all_is_killed_and_reported_canceled(tmp_path):
    # The fork server used to report a child before the child had its own process group, so a kill right away
    # could miss it (about one start in three): several starts per handler.
    for name in factory.HANDLERS:
        for attempt in range(5):
            processes = handler.RunningProcesses()
            context = handler.HandlerContext(env=dict(os.environ), scratch_root=str(tmp_path / "scratch"),
                                             processes=processes)
            task_handler = factory.create_handler(name, context)
            processes.cancel_all()
            try:
                launch = _launch(tmp_path, pipelines.slow, "comp-sleep-then-write", {"seconds": 30.0},
                                 tag=f"{name}-{attempt}")
                outcome = task_handler.run(launch)
            finally:
                task_handler.close()
            assert (outcome.succeeded, outcome.canceled, outcome.error) == (False, True, "canceled"), name
            assert outcome.duration < 10, (name, attempt)


def test_the_fork_server_runs_as_a_module():
    # fork_handler starts it with `python -m kfp_lineage.engine.exec.forkserver`; end of input stops it.
    done = subprocess.run([sys.executable, "-m", "kfp_lineage.engine.exec.forkserver"], input=b"",
                          capture_output=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, b"")
