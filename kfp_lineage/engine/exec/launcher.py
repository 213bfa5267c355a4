"""Launching one container task as a local subprocess: executor input, command, requirements, outputs.

Reuses kfp.local's helpers for placeholder resolution and executor-output parsing. Knows nothing of MLMD or
of scheduling: the orchestrator gives it a fully resolved task and gets back its outputs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from google.protobuf import json_format
from kfp.compiler import pipeline_spec_builder
from kfp.local import executor_input_utils, executor_output_utils, placeholder_utils
from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage import redaction
from kfp_lineage.engine.exec import forkserver as forkserver_module
from kfp_lineage.ir import dataflow
from kfp_lineage.ir import requirements

ContainerSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec

EXECUTOR_OUTPUT_FILE = "executor_output.json"


class RunningProcesses:
    """The live task processes of one run, so an interrupted run can stop them all at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: set = set()
        self.canceled = False

    def add(self, process: subprocess.Popen) -> bool:
        """Tracks a started process; False (and the process is killed) when the run was already canceled."""
        with self._lock:
            if not self.canceled:
                self._processes.add(process)
                return True
        _signal_group(process, signal.SIGKILL)
        return False

    def discard(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._processes.discard(process)

    def cancel_all(self) -> None:
        """Kills every tracked process group; processes started later are killed as they are added."""
        with self._lock:
            self.canceled = True
            processes = list(self._processes)
        for process in processes:
            _signal_group(process, signal.SIGKILL)


@dataclasses.dataclass(frozen=True)
class TaskLaunch:
    """Everything needed to run one container task; produced by the orchestrator."""

    label: str
    component_spec: pipeline_spec_pb2.ComponentSpec
    container: ContainerSpec
    parameters: Mapping[str, Any]
    artifacts: Mapping[str, Sequence[dataflow.InputArtifact]]
    output_uris: Mapping[str, str]
    scratch_dir: str
    log_path: str
    pipeline_name: str
    run_id: str
    pipeline_root: str
    cwd: str
    env: Mapping[str, str]
    timeout: Optional[float] = None
    processes: Optional["RunningProcesses"] = None
    forkserver: Optional[forkserver_module.ForkServer] = None
    secret_values: Tuple[str, ...] = ()


@dataclasses.dataclass
class TaskOutcome:
    """What a task did: its exit code, its outputs when it succeeded, and a one-line error when it did not."""

    succeeded: bool
    parameters: Dict[str, Any]
    artifacts: Dict[str, List[pipeline_spec_pb2.RuntimeArtifact]]
    duration: float
    error: str = ""
    returncode: Optional[int] = None
    canceled: bool = False


def build_command(launch: TaskLaunch) -> Tuple[List[str], pipeline_spec_pb2.ExecutorInput]:
    """The task's resolved argv (pip prefix removed) and the ExecutorInput it is given."""
    executor_input = build_executor_input(launch)
    executor_input_dict = executor_input_utils.executor_input_to_dict(executor_input, launch.component_spec)
    # The dict round-trips every number through a protobuf double; put back the Python values (ints stay ints,
    # also for f-string inputs a component does not declare, and inside lists and dicts).
    parameter_values = executor_input_dict.get("inputs", {}).get("parameterValues", {})
    for name, value in launch.parameters.items():
        if name in parameter_values:
            parameter_values[name] = dataflow.whole_numbers_as_ints(value) if isinstance(value, (list, dict)) else value
    raw_command = list(launch.container.command) + list(launch.container.args)
    prefix = requirements.split_pip_prefix(list(launch.container.command))
    if prefix is not None:
        raw_command = list(prefix.command) + list(launch.container.args)
    argv = resolve_placeholders(raw_command, executor_input_dict, launch)
    return argv, executor_input


# Stands in for {{$}} while the other placeholders are resolved: not a placeholder, and never in a command.
_EXECUTOR_INPUT_MARK = "\x00kfp-lineage:executor-input\x00"


def resolve_placeholders(command: Sequence[Any], executor_input_dict: Dict[str, Any], launch: "TaskLaunch"
                         ) -> List[str]:
    """The command with its placeholders resolved, as the backend's launcher does: each element once.

    kfp.local's replace_placeholders also reads every string input value as a template, and puts the executor
    input JSON ({{$}}) in before it resolves the other placeholders, so a value holding `{{$.` text (a run
    argument, a task output) was rewritten, or crashed the task with an IndexError. Input values here are final:
    f-string constants were filled in when the task's inputs were resolved (resolution.resolve_task_inputs).
    """
    provided = placeholder_utils.get_provided_inputs(executor_input_dict)
    # Strings only: flatten_list drops the None an IfPresent without Else leaves.
    elements = placeholder_utils.flatten_list(
        [placeholder_utils.resolve_struct_placeholders(element, provided) for element in command])
    task_id = placeholder_utils.make_random_id()
    executor_input_json = json.dumps(executor_input_dict)
    argv: List[str] = []
    for element in elements:
        resolved = placeholder_utils.resolve_individual_placeholder(
            element=element.replace("{{$}}", _EXECUTOR_INPUT_MARK),
            executor_input_dict=executor_input_dict,
            pipeline_resource_name=launch.run_id,
            task_resource_name=launch.label,
            pipeline_root=launch.pipeline_root,
            pipeline_job_id=launch.run_id,
            pipeline_task_id=task_id,
        )
        argv.append(resolved.replace(_EXECUTOR_INPUT_MARK, executor_input_json))
    return argv


def build_executor_input(launch: TaskLaunch) -> pipeline_spec_pb2.ExecutorInput:
    """The ExecutorInput KFP gives a container: resolved inputs, and output URIs under the pipeline root."""
    spec = launch.component_spec
    executor_input = pipeline_spec_pb2.ExecutorInput()
    for name, value in launch.parameters.items():
        executor_input.inputs.parameter_values[name].CopyFrom(pipeline_spec_builder.to_protobuf_value(value))
    for name, artifacts in launch.artifacts.items():
        artifact_list = executor_input.inputs.artifacts[name]
        for artifact in artifacts:
            runtime = artifact_list.artifacts.add(
                name=str(artifact.artifact_id),
                uri=artifact.uri,
                type=pipeline_spec_pb2.ArtifactTypeSchema(
                    schema_title=artifact.schema_title, schema_version=artifact.schema_version
                ),
            )
            runtime.metadata.update(dict(artifact.metadata))
    outputs_dir = os.path.join(launch.scratch_dir, "outputs")
    for name in spec.output_definitions.parameters:
        executor_input.outputs.parameters[name].output_file = os.path.join(outputs_dir, name)
    for name, definition in spec.output_definitions.artifacts.items():
        executor_input.outputs.artifacts[name].artifacts.add(
            name=name, uri=launch.output_uris[name], type=definition.artifact_type
        )
    executor_input.outputs.output_file = os.path.join(launch.scratch_dir, EXECUTOR_OUTPUT_FILE)
    return executor_input


def python_shim_dir(scratch_root: str) -> str:
    """A directory with a `python3` that runs this interpreter, put first on the task's PATH.

    Compiled lightweight components call `python3`; the task must use the interpreter (and virtual environment)
    kfp-lineage runs in. A script, not a symlink, so a venv interpreter still finds its pyvenv.cfg.
    """
    directory = os.path.join(scratch_root, "bin")
    shim = os.path.join(directory, "python3")
    if not os.path.exists(shim):
        os.makedirs(directory, exist_ok=True)
        with open(shim + ".tmp", "w") as f:
            f.write(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
        os.chmod(shim + ".tmp", 0o755)
        os.replace(shim + ".tmp", shim)
    return directory


def run_task(launch: TaskLaunch) -> TaskOutcome:
    """Runs the task in a subprocess, its stdout and stderr going to launch.log_path, and collects its outputs.

    Never raises for a task failure: a failed task gives TaskOutcome(succeeded=False, error=...).
    """
    started = time.monotonic()
    os.makedirs(os.path.join(launch.scratch_dir, "outputs"), exist_ok=True)
    for uri in launch.output_uris.values():
        os.makedirs(os.path.dirname(uri), exist_ok=True)
    argv, executor_input = build_command(launch)
    program = shutil.which(argv[0], path=launch.env.get("PATH")) if argv else None
    if program is None:
        return TaskOutcome(
            succeeded=False,
            parameters={},
            artifacts={},
            duration=time.monotonic() - started,
            error=f"image {launch.container.image!r}: program {argv[0] if argv else '(empty command)'!r} "
            "is not available on this machine",
        )
    python_task = forkserver_module.python_task_arguments(argv) if launch.forkserver is not None else None
    with open(launch.log_path, "ab") as log:
        try:
            if python_task is not None:
                process = launch.forkserver.spawn(
                    python_task, log_path=launch.log_path, cwd=launch.cwd, env=launch.env,
                    scratch_dir=launch.scratch_dir,
                )
            else:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=launch.cwd,
                    env=dict(launch.env),
                    start_new_session=True,
                )
        except OSError as e:
            return TaskOutcome(False, {}, {}, time.monotonic() - started, error=f"cannot start {argv[0]}: {e}")
        if launch.processes is not None:
            launch.processes.add(process)
        try:
            returncode = process.wait(timeout=launch.timeout)
        except subprocess.TimeoutExpired:
            _kill_process_group(process)
            return TaskOutcome(
                False, {}, {}, time.monotonic() - started, error=f"timed out after {launch.timeout:g} s"
            )
        except BaseException:
            _kill_process_group(process)
            raise
        finally:
            if launch.processes is not None:
                launch.processes.discard(process)
        if launch.processes is not None and launch.processes.canceled:
            return TaskOutcome(False, {}, {}, time.monotonic() - started, error="canceled", canceled=True)
    duration = time.monotonic() - started
    if launch.secret_values:
        scrub_log(launch.log_path, launch.secret_values)
    if returncode != 0:
        if returncode < 0:
            reason = f"killed by signal {-returncode}"
        elif 128 < returncode <= 128 + 64:  # the task's shell reports a child killed by signal N as 128 + N
            reason = f"killed by signal {returncode - 128} (exit code {returncode})"
        else:
            reason = f"exited with code {returncode}"
        last_line = _last_error_line(launch.log_path)
        return TaskOutcome(
            False, {}, {}, duration, error=reason + (f": {last_line}" if last_line else ""), returncode=returncode
        )
    try:
        parameters, artifacts = collect_outputs(executor_input, launch.component_spec)
    except (ValueError, json_format.ParseError) as e:
        return TaskOutcome(False, {}, {}, duration, error=f"its outputs cannot be read: {e}", returncode=0)
    return TaskOutcome(True, parameters, artifacts, duration, returncode=0)


def _signal_group(process: subprocess.Popen, signal_number: int) -> None:
    try:
        os.killpg(process.pid, signal_number)
    except (ProcessLookupError, PermissionError):
        pass


def scrub_log(log_path: str, values: Sequence[str]) -> None:
    """Replaces secret values in a finished task's log (the KFP executor logs its whole input) in place."""
    try:
        with open(log_path, "r", encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
        cleaned = redaction.scrub(text, values)
        if cleaned != text:
            with open(log_path + ".tmp", "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(cleaned)
            os.replace(log_path + ".tmp", log_path)
    except OSError:
        pass


def _kill_process_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def _last_error_line(log_path: str) -> str:
    """The last non-blank line of the task log (for Python tasks, the exception line), or "" when it says nothing
    (a task that exits quietly leaves the end of the executor input's JSON there, e.g. `}`)."""
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return ""
    if not lines or not any(c.isalpha() for c in lines[-1]):
        return ""
    return lines[-1][:300]


def collect_outputs(
    executor_input: pipeline_spec_pb2.ExecutorInput, component_spec: pipeline_spec_pb2.ComponentSpec
) -> Tuple[Dict[str, Any], Dict[str, List[pipeline_spec_pb2.RuntimeArtifact]]]:
    """Reads the task's output parameters and artifacts as the backend's launcher does.

    Artifacts come from executor_output.json when the task wrote one, else from the ExecutorInput (URI, no
    metadata). Output parameters come from executor_output.json and dsl.OutputPath files.

    Raises:
        ValueError: an output file cannot be parsed, or a declared output parameter was not written.
    """
    executor_output = executor_output_utils.load_executor_output(executor_input.outputs.output_file)
    executor_output = executor_output_utils.merge_dsl_output_file_parameters_to_executor_output(
        executor_input=executor_input, executor_output=executor_output, component_spec=component_spec
    )
    parameters = {
        name: executor_output_utils.pb2_value_to_python(value)
        for name, value in executor_output.parameter_values.items()
    }
    parameters = executor_output_utils.cast_protobuf_numbers(parameters, component_spec.output_definitions.parameters)
    parameters = {name: dataflow.whole_numbers_as_ints(v) if isinstance(v, (list, dict)) else v for name, v in parameters.items()}
    missing = sorted(set(component_spec.output_definitions.parameters) - set(parameters))
    if missing:
        raise ValueError(f"output parameter {missing[0]!r} was not written")
    artifacts: Dict[str, List[pipeline_spec_pb2.RuntimeArtifact]] = {}
    for name, declared in executor_input.outputs.artifacts.items():
        written = executor_output.artifacts.get(name)
        source = written if written is not None and written.artifacts else declared
        artifacts[name] = []
        for artifact in source.artifacts:
            complete = pipeline_spec_pb2.RuntimeArtifact()
            complete.CopyFrom(artifact)
            complete.type.CopyFrom(declared.artifacts[0].type)
            if not complete.uri:
                complete.uri = declared.artifacts[0].uri
            artifacts[name].append(complete)
    return parameters, artifacts
