"""What a task process is started with: its ExecutorInput, its resolved command, and the `python3` on its PATH.

Reuses kfp.local's helpers for the ExecutorInput and placeholder resolution.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from typing import Any, Dict, List, Sequence, Tuple

from kfp.compiler import pipeline_spec_builder
from kfp.local import executor_input_utils, placeholder_utils
from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage.engine.exec import handler
from kfp_lineage.ir import dataflow
from kfp_lineage.ir import requirements

EXECUTOR_OUTPUT_FILE = "executor_output.json"


def build_command(launch: handler.TaskLaunch) -> Tuple[List[str], pipeline_spec_pb2.ExecutorInput]:
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
    if launch.environment is not None:
        raw_command += list(launch.environment.arguments)  # what the image's kfp_config.ini would tell the task
    argv = resolve_placeholders(raw_command, executor_input_dict, launch)
    return argv, executor_input


# Stands in for {{$}} while the other placeholders are resolved: not a placeholder, and never in a command.
_EXECUTOR_INPUT_MARK = "\x00kfp-lineage:executor-input\x00"

# A whole artifact list, `{{$.inputs.artifacts['name']}}` with nothing after it (a container component given an
# `Input[List[Dataset]]`); its stand-in while the other placeholders are resolved.
_ARTIFACT_LIST = re.compile(r"\{\{\$\.(inputs|outputs)\.artifacts\['([^']*)'\]\}\}")
_ARTIFACT_LIST_MARK = "\x00kfp-lineage:artifacts:{}:{}\x00"


def resolve_placeholders(command: Sequence[Any], executor_input_dict: Dict[str, Any], launch: handler.TaskLaunch
                         ) -> List[str]:
    """The command with its placeholders resolved, as the backend's launcher does: each element once.

    kfp.local's replace_placeholders also reads every string input value as a template, and puts the executor
    input JSON ({{$}}) in before it resolves the other placeholders, so a value holding `{{$.` text (a run
    argument, a task output) was rewritten, or crashed the task with an IndexError. Input values here are final:
    f-string constants were filled in when the task's inputs were resolved (resolution.resolve_task_inputs).

    A whole artifact list (`{{$.inputs.artifacts['name']}}`, which kfp.local cannot resolve) becomes the JSON list of
    the executor input's runtime artifacts (name, type, uri, metadata; `[]` for an absent input), the form a
    container component given `Input[List[Dataset]]` reads. The KFP 2.17 launcher leaves this placeholder as it is
    (it resolves `.uri` and `.path` of the first artifact only), so such a task cannot read it on a KFP cluster.
    """
    provided = placeholder_utils.get_provided_inputs(executor_input_dict)
    # Strings only: flatten_list drops the None an IfPresent without Else leaves.
    elements = placeholder_utils.flatten_list(
        [placeholder_utils.resolve_struct_placeholders(element, provided) for element in command])
    task_id = placeholder_utils.make_random_id()
    executor_input_json = json.dumps(executor_input_dict)
    argv: List[str] = []
    for element in elements:
        lists = {}
        for match in _ARTIFACT_LIST.finditer(element):
            mark = _ARTIFACT_LIST_MARK.format(match.group(1), match.group(2))
            listed = executor_input_dict.get(match.group(1), {}).get("artifacts", {}).get(match.group(2)) or {}
            lists[mark] = json.dumps(listed.get("artifacts", []))
            element = element.replace(match.group(0), mark)
        resolved = placeholder_utils.resolve_individual_placeholder(
            element=element.replace("{{$}}", _EXECUTOR_INPUT_MARK),
            executor_input_dict=executor_input_dict,
            pipeline_resource_name=launch.run_id,
            task_resource_name=launch.label,
            pipeline_root=launch.pipeline_root,
            pipeline_job_id=launch.run_id,
            pipeline_task_id=task_id,
        )
        resolved = resolved.replace(_EXECUTOR_INPUT_MARK, executor_input_json)
        for mark, value in lists.items():
            resolved = resolved.replace(mark, value)
        argv.append(resolved)
    return argv


def build_executor_input(launch: handler.TaskLaunch) -> pipeline_spec_pb2.ExecutorInput:
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
