"""Choosing where each task runs: in the runner's own environment, or in an isolated environment built for its
compiled requirements.

Three modes (`--task-env`, KFP_LINEAGE_TASK_ENV):
    auto      the runner's environment when it satisfies the task exactly (the image's Python X.Y, or none named,
              and every requirement, kfp's pin included, met by the installed versions), else an isolated one;
    isolated  an isolated environment for every task that has a pip prefix;
    current   the runner's environment always; a missing package refuses the run, a different version is a warning.
A task without a pip prefix (a container component) runs as it is; one whose program is not Python and is on
this machine gets a notice that it does not run in its image (preflight.py refuses one whose program is missing).
The exception: a containerized Python component whose image is mapped to the directory it is built from
(`--image-source IMAGE=DIR`, image_sources.py) runs, in every mode, in an isolated environment holding what that
directory's Dockerfile installs, with the directory's code.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage import errors
from kfp_lineage.engine.exec import environment_spec
from kfp_lineage.engine.exec import forkserver
from kfp_lineage.engine.exec import image_sources as image_sources_module
from kfp_lineage.engine.exec import interpreters
from kfp_lineage.ir import preflight
from kfp_lineage.ir import requirements

MODE_ENV_VAR = "KFP_LINEAGE_TASK_ENV"
MODES = ("auto", "isolated", "current")
DEFAULT_MODE = "auto"

CURRENT = "current"
ISOLATED = "isolated"

# pip options that change nothing about what an environment holds (the rest are named in a notice when ignored).
_HARMLESS_PIP_OPTIONS = {
    "-q", "--quiet", "-v", "--verbose", "--no-warn-script-location", "-U", "--upgrade", "--user", "--no-cache-dir",
    "--disable-pip-version-check", "--force-reinstall", "--ignore-installed", "-I", "--prefer-binary",
    "--break-system-packages", "--no-color", "--progress-bar", "--root-user-action", "--no-input",
}

InterpreterFinder = Callable[[str], Optional[interpreters.Interpreter]]


@dataclasses.dataclass(frozen=True)
class TaskRequest:
    """A task as the planner sees it: its label, its executor and that executor's image, command and arguments."""

    label: str
    executor: str
    image: str
    command: Tuple[str, ...]
    args: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Decision:
    """Where the tasks of one executor run.

    Attributes:
        kind: CURRENT (the runner's environment, as today) or ISOLATED (`spec`'s environment).
        reason: why, for the task's log (`kfp==2.17.3 (installed: 2.13.0)`, `image asks for Python 3.12`).
        spec: the environment to run in when ISOLATED.
        python: the Python X.Y the tasks run on.
        source: for an image mapped with --image-source, what its directory holds; the tasks run with the
            directory first on PYTHONPATH and `arguments` after their command.
        arguments: `--component_module_path FILE` for such a task (executor_main finds no kfp_config.ini outside
            the image).
    """

    executor: str
    tasks: Tuple[str, ...]
    kind: str
    reason: str
    python: str
    spec: Optional[environment_spec.EnvironmentSpec] = None
    source: Optional[image_sources_module.ImageSource] = None
    arguments: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class EnvironmentPlan:
    """The decisions for every executor of a run, and the one-line notices to show before it starts."""

    mode: str
    decisions: Dict[str, Decision]
    notices: Tuple[str, ...] = ()

    def specs(self) -> Dict[str, Tuple[environment_spec.EnvironmentSpec, Tuple[str, ...]]]:
        """digest -> (spec, labels of every task using it), for environments.prepare; executors asking for the
        same requirement set share one environment."""
        found: Dict[str, Tuple[environment_spec.EnvironmentSpec, Tuple[str, ...]]] = {}
        for decision in self.decisions.values():
            if decision.spec is not None:
                spec, labels = found.get(decision.spec.digest, (decision.spec, ()))
                found[decision.spec.digest] = (spec, labels + decision.tasks)
        return found


def check_mode(mode: Optional[str]) -> str:
    """The mode, DEFAULT_MODE for None or ""; raises InvalidInputError naming the allowed values."""
    chosen = mode or DEFAULT_MODE
    if chosen not in MODES:
        raise errors.InvalidInputError(
            f"task environment mode {chosen!r} is not known: use {', '.join(MODES)} (--task-env or {MODE_ENV_VAR})")
    return chosen


def tasks_of_pipeline(pipeline_spec: pipeline_spec_pb2.PipelineSpec) -> List[TaskRequest]:
    """The container tasks of each distinct DAG, once (labelled `parent/child` by the first path that reaches a
    sub-DAG), in spec order; importers and DAG tasks have no environment and are left out."""
    deployment = preflight.deployment_config(pipeline_spec)
    found: List[TaskRequest] = []
    visited = set()

    def walk(component: pipeline_spec_pb2.ComponentSpec, where: str) -> None:
        for name, task in component.dag.tasks.items():
            label = f"{where}/{name}" if where else name
            child = pipeline_spec.components[task.component_ref.name]
            if child.WhichOneof("implementation") == "dag":
                if task.component_ref.name not in visited:
                    visited.add(task.component_ref.name)
                    walk(child, label)
                continue
            executor = deployment.executors[child.executor_label]
            if executor.WhichOneof("spec") == "container":
                found.append(TaskRequest(label=label, executor=child.executor_label, image=executor.container.image,
                                         command=tuple(executor.container.command),
                                         args=tuple(executor.container.args)))

    walk(pipeline_spec.root, "")
    return found


def plan_environments(tasks: Iterable[TaskRequest], mode: str = DEFAULT_MODE,
                      find_interpreter: Optional[InterpreterFinder] = None,
                      platform: Optional[str] = None,
                      image_sources: Optional[Mapping[str, str]] = None) -> EnvironmentPlan:
    """Decides, per executor, whether its tasks run in the runner's environment or in an isolated one.

    Args:
        tasks: the run's tasks (tasks_of_pipeline).
        mode: auto, isolated or current.
        find_interpreter: X.Y -> an interpreter or None (default interpreters.find_interpreter: PATH, pyenv, uv's
            Python directory; no process started).
        platform: for the environments' digests (default: this machine's).
        image_sources: image -> the directory it is built from (image_sources.parse_image_sources).

    Returns:
        The plan. An image asking for a Python this machine lacks gives a notice, and its tasks use the runner's
        Python.

    Raises:
        InvalidInputError: an unknown mode; in `current` mode, a task needs a package that is not installed; a
            mapped image's task is not a containerized Python component, or its directory cannot say what it holds.
    """
    mode = check_mode(mode)
    sources = dict(image_sources or {})
    read_sources: Dict[str, image_sources_module.ImageSource] = {}
    find = find_interpreter or interpreters.find_interpreter
    runner = interpreters.runner_interpreter()
    by_executor: Dict[str, List[TaskRequest]] = {}
    for task in tasks:
        by_executor.setdefault(task.executor, []).append(task)
    decisions: Dict[str, Decision] = {}
    notices: List[str] = []
    looked_up: Dict[str, Optional[interpreters.Interpreter]] = {}
    warned_requirements: set = set()
    # In task-name order, so the first refusal and the notices do not depend on the order kfp wrote the spec in.
    for executor, group in sorted(by_executor.items(), key=lambda item: item[1][0].label):
        first = group[0]
        labels = tuple(task.label for task in group)
        if first.image in sources:
            if first.image not in read_sources:
                read_sources[first.image] = image_sources_module.read_image_source(first.image, sources[first.image])
            source = read_sources[first.image]
            interpreter = _interpreter_for(source.python_version, f"image {source.base_image!r}", first.label,
                                           runner, find, looked_up, notices)
            spec = environment_spec.EnvironmentSpec(installs=source.installs, python_version=interpreter.version,
                                                    interpreter=interpreter.path,
                                                    platform=platform or environment_spec.current_platform())
            decisions[executor] = Decision(executor, labels, ISOLATED, f"image {first.image!r} built from "
                                           f"{source.directory}", interpreter.version, spec, source,
                                           _source_arguments(first, source))
            continue
        prefix = requirements.split_pip_prefix(list(first.command))
        if prefix is None:
            notice = _host_program_notice(first, len(labels))
            if notice:
                notices.append(notice)
            decisions[executor] = Decision(executor, labels, CURRENT, "no pip install prefix", runner.version)
            continue
        if mode == "current":
            _refuse_missing(prefix, first.label, warned_requirements, notices)
            decisions[executor] = Decision(executor, labels, CURRENT, "--task-env current", runner.version)
            continue
        asked = requirements.python_version_for_image(first.image)
        interpreter = _interpreter_for(asked, f"image {first.image!r}", first.label, runner, find, looked_up,
                                       notices)
        unmet = _unmet_requirements(prefix)
        if mode == "auto" and interpreter == runner and not unmet:
            decisions[executor] = Decision(executor, labels, CURRENT,
                                           "the runner's environment meets every requirement", runner.version)
            continue
        if interpreter != runner:
            reason = f"image {first.image!r} asks for Python {asked}"
        elif unmet:
            reason = f"needs {unmet[0]}" + (f" and {len(unmet) - 1} more" if len(unmet) > 1 else "")
        else:
            reason = "--task-env isolated"
        ignored = [option for install in prefix.installs for option in install.other_options
                   if option.split()[0] not in _HARMLESS_PIP_OPTIONS]
        if ignored:
            notices.append(f"task {first.label!r}: pip option{'s' if len(ignored) > 1 else ''} {', '.join(ignored)} "
                           "cannot apply outside its image; ignored in its environment")
        spec = environment_spec.spec_for_prefix(prefix, interpreter, platform)
        decisions[executor] = Decision(executor, labels, ISOLATED, reason, interpreter.version, spec)
    unused = sorted(set(sources) - {task.image for group in by_executor.values() for task in group})
    notices += [f"--image-source {image}: no task of this pipeline runs that image" for image in unused]
    return EnvironmentPlan(mode=mode, decisions=decisions, notices=tuple(notices))


def _interpreter_for(asked: Optional[str], what: str, label: str, runner: interpreters.Interpreter,
                     find: InterpreterFinder, looked_up: Dict[str, Optional[interpreters.Interpreter]],
                     notices: List[str]) -> interpreters.Interpreter:
    """The interpreter of Python `asked` (the runner's when None or missing here, with a notice the first time)."""
    if asked is None or asked == runner.version:
        return runner
    if asked not in looked_up:
        looked_up[asked] = find(asked)
        if looked_up[asked] is None:
            notices.append(f"{what} asks for Python {asked}, which is not on this machine (PATH, pyenv, uv): task "
                           f"{label!r} runs on Python {runner.version}")
    return looked_up[asked] or runner


def _source_arguments(task: TaskRequest, source: image_sources_module.ImageSource) -> Tuple[str, ...]:
    """`--component_module_path FILE` for a mapped image's task; InvalidInputError for one that is not a
    containerized Python component."""
    function = image_sources_module.executor_function(task.command, task.args)
    if function is None:
        raise errors.InvalidInputError(
            f"task {task.label!r} runs image {task.image!r}, which --image-source maps to {source.directory}, but its "
            f"command is not `{' '.join(image_sources_module.EXECUTOR_COMMAND)}`: only containerized Python "
            "components run from their source; drop the mapping for this image")
    return ("--component_module_path", source.module_path(function, task.label))


_PYTHON_PROGRAM = re.compile(r"^python(?:3(?:\.\d+)?)?$")


def _host_program_notice(task: TaskRequest, task_count: int) -> Optional[str]:
    """For a container component whose program is this machine's and not Python, the one line saying it does not
    run in its image; None for a Python program (it runs on the `python3` of the task's PATH), a placeholder, or a
    program missing here (preflight refuses that)."""
    if not task.command or forkserver.python_task_arguments(list(task.command)) is not None:
        return None
    program = task.command[0]
    if "{{" in program or _PYTHON_PROGRAM.match(os.path.basename(program)) or shutil.which(program) is None:
        return None
    more = f" (and {task_count - 1} more task{'s' if task_count > 2 else ''})" if task_count > 1 else ""
    return (f"task {task.label!r}{more} runs {program!r} from this machine, not in its image {task.image!r}")


def _unmet_requirements(prefix: requirements.PipPrefix) -> List[str]:
    """The prefix's requirements the runner's environment does not meet, described; URLs and paths count as unmet
    (no installed version can be shown to be them)."""
    unmet = [f"{text} (not checkable here)" for text in prefix.requirements if not requirements.is_checkable(text)]
    unmet += [problem.describe() for problem in requirements.check_requirements(prefix.requirements)]
    return unmet


def _refuse_missing(prefix: requirements.PipPrefix, label: str, warned: set, notices: List[str]) -> None:
    """Today's rule for the runner's environment: a missing package refuses the run; another version warns."""
    for problem in requirements.check_requirements(prefix.requirements):
        if problem.installed is None:
            raise errors.InvalidInputError(
                f"task {label!r} needs {problem.describe()}; with --task-env current kfp-lineage never installs "
                f"packages: install it into this environment (pip install '{problem.requirement}'), or use "
                "--task-env auto")
        if problem.requirement not in warned:
            warned.add(problem.requirement)
            notices.append(f"task {label!r} asks for {problem.describe()}; running with the installed version")
