"""Checks made before a run starts: features the local runner cannot run, and the tasks' requirements.

Nothing is written and nothing runs before these pass, so a pipeline that cannot run locally fails in
milliseconds with the feature's name, not halfway through.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import AbstractSet, List, Optional, Sequence

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage import errors
from kfp_lineage.ir import conditions
from kfp_lineage.ir import newer_fields
from kfp_lineage.ir import resolution
from kfp_lineage.ir import requirements

ComponentSpec = pipeline_spec_pb2.ComponentSpec


def deployment_config(pipeline_spec: pipeline_spec_pb2.PipelineSpec) -> pipeline_spec_pb2.PipelineDeploymentConfig:
    """The spec's `deploymentSpec` (a Struct in the IR) as a typed message."""
    deployment = pipeline_spec_pb2.PipelineDeploymentConfig()
    json_format.ParseDict(json_format.MessageToDict(pipeline_spec.deployment_spec), deployment)
    return deployment


_PATH_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")


def _check_path_part(value: str, what: str) -> None:
    """Task names and output keys become directory names under the pipeline root; none may climb out of it."""
    if not _PATH_PART.match(value) or value in (".", ".."):
        raise errors.InvalidInputError(
            f"{what} cannot be used in a path under the pipeline root: use letters, digits, '_', '.' and '-'"
        )


def check_pipeline(pipeline_spec: pipeline_spec_pb2.PipelineSpec, cwd: Optional[str] = None,
                   images_with_source: AbstractSet[str] = frozenset()) -> List[requirements.RequirementProblem]:
    """Checks every task of every DAG.

    Args:
        pipeline_spec: the spec.
        cwd: the tasks' working directory, where a relative script a command names must be (default: this
            process's).
        images_with_source: images the run builds from a source directory (`--image-source`): their containerized
            Python components run from that directory, so they are not refused.

    Returns:
        Requirement problems of lightweight components (missing or mismatched packages), for the caller to report;
        nothing is installed.

    Raises:
        UnsupportedFeatureError: naming the first unsupported feature and the task using it.
    """
    newer_fields.check_local_run(pipeline_spec)  # first: the installed classes may not read what it refuses
    deployment = deployment_config(pipeline_spec)
    problems: List[requirements.RequirementProblem] = []
    seen_requirements: set = set()
    checked_dags: set = set()  # a DAG component used by several tasks is checked once, not once per path

    def check_dag(component: ComponentSpec, where: str) -> None:
        for name, task in component.dag.tasks.items():
            label = f"{where}/{name}" if where else name
            _check_path_part(name, f"task name {label!r}")
            if task.trigger_policy.condition:
                conditions.check_condition_syntax(task.trigger_policy.condition)
            for parameter in task.inputs.parameters.values():
                if parameter.parameter_expression_selector:
                    resolution.check_selector_syntax(parameter.parameter_expression_selector)
            for dependency in resolution.task_dependencies(task):
                if dependency not in component.dag.tasks:
                    raise errors.InvalidInputError(
                        f"task {label!r} depends on task {dependency!r}, which its DAG does not have: recompile the "
                        "pipeline"
                    )
            if task.component_ref.name not in pipeline_spec.components:
                raise errors.InvalidInputError(
                    f"task {label!r} refers to component {task.component_ref.name!r}, which the spec does not "
                    "define: recompile the pipeline"
                )
            child = pipeline_spec.components[task.component_ref.name]
            if child.WhichOneof("implementation") == "dag":
                if task.component_ref.name not in checked_dags:
                    checked_dags.add(task.component_ref.name)
                    check_dag(child, label)
                continue
            for output in child.output_definitions.artifacts:
                _check_path_part(output, f"output {output!r} of task {label!r}")
            if child.executor_label not in deployment.executors:
                raise errors.InvalidInputError(
                    f"task {label!r} uses executor {child.executor_label!r}, which deploymentSpec does not define: "
                    "recompile the pipeline"
                )
            executor = deployment.executors[child.executor_label]
            kind = executor.WhichOneof("spec")
            if kind == "importer":
                continue
            if kind != "container":
                raise errors.UnsupportedFeatureError(
                    f"task {label!r} uses a {kind} executor, which the local runner does not support: "
                    "run it on a cluster"
                )
            prefix = requirements.split_pip_prefix(list(executor.container.command))
            command = list(prefix.command) if prefix else list(executor.container.command)
            _check_program(label, executor.container, command, cwd, images_with_source)
            for requirement in prefix.requirements if prefix else ():
                if requirement not in seen_requirements:
                    seen_requirements.add(requirement)
                    problems.extend(requirements.check_requirements([requirement]))

    _check_root_inputs(pipeline_spec)
    check_dag(pipeline_spec.root, "")
    return problems


def _check_root_inputs(pipeline_spec: pipeline_spec_pb2.PipelineSpec) -> None:
    """A PipelineTaskFinalStatus root input (a component compiled alone) has no value anywhere: the backend's API
    server refuses one, and the task would get None."""
    for name, definition in pipeline_spec.root.input_definitions.parameters.items():
        if definition.parameter_type == pipeline_spec_pb2.ParameterType.TASK_FINAL_STATUS:
            raise errors.UnsupportedFeatureError(
                f"pipeline input {name!r} is a dsl.PipelineTaskFinalStatus, which only the exit task of a "
                "dsl.ExitHandler receives: this spec is a component compiled alone; use it as the exit task of a "
                "pipeline's dsl.ExitHandler"
            )


# Programs that take a script file as their first argument.
_SCRIPT_RUNNERS = re.compile(r"^(?:sh|bash|dash|zsh|ksh|python(?:\d+(?:\.\d+)?)?|perl|ruby|node|Rscript)$")


def _check_program(label: str, container: pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec,
                   command: Sequence[str], cwd: Optional[str], images_with_source: AbstractSet[str]) -> None:
    """Refuses a task whose program is in its image only: no command (the image's entrypoint), a containerized
    Python component (`kfp component build`: its code is in the image), a program or a script file missing here."""
    image = container.image
    if not command:
        raise errors.UnsupportedFeatureError(
            f"task {label!r} has no command: it runs its image's entrypoint ({image!r}), which is not on this "
            "machine: give the container a command, or run the pipeline on a cluster"
        )
    argv = list(command) + list(container.args)
    if "kfp.dsl.executor_main" in argv and "--component_module_path" not in argv:
        if image in images_with_source:
            return
        raise errors.UnsupportedFeatureError(
            f"task {label!r} is a containerized Python component: its code is in image {image!r}, not in the spec: "
            f"run it from the directory the image is built from (--image-source {image}=DIR), run the pipeline on "
            "a cluster, or compile the component as a lightweight one (@dsl.component without target_image)"
        )
    program = command[0]
    if "{{" in program:
        return
    if shutil.which(program) is None:
        raise errors.UnsupportedFeatureError(
            f"task {label!r} runs {program!r} from image {image!r}, and that program is not available on this "
            "machine: install it, or run the pipeline on a cluster"
        )
    script = argv[1] if len(argv) > 1 else ""
    if (_SCRIPT_RUNNERS.match(os.path.basename(program)) and script and not script.startswith("-")
            and "{{" not in script and "\n" not in script and " " not in script):
        where = cwd or os.getcwd()
        if not os.path.exists(os.path.join(where, script)):
            raise errors.UnsupportedFeatureError(
                f"task {label!r} runs '{program} {script}', and {script} is a file of image {image!r}, not on this "
                f"machine (looked in {where}): run the pipeline on a cluster, or from a directory that has it"
            )
