"""Choosing where each task runs: in the runner's own environment, or in an isolated environment built for its
compiled requirements.

Three modes (`--task-env`, KFP_LINEAGE_TASK_ENV):
    auto      the runner's environment when it satisfies the task exactly (the image's Python X.Y, or none named,
              and every requirement, kfp's pin included, met by the installed versions), else an isolated one;
    isolated  an isolated environment for every task that has a pip prefix;
    current   the runner's environment always; a missing package refuses the run, a different version is a warning.
A task without a pip prefix (a container component) always runs as it is; one whose program is not Python and is on
this machine gets a notice that it does not run in its image (preflight.py refuses one whose program is missing).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage import errors
from kfp_lineage.engine.exec import environment_spec
from kfp_lineage.engine.exec import forkserver
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
    """A task as the planner sees it: its label, its executor and that executor's image and command."""

    label: str
    executor: str
    image: str
    command: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Decision:
    """Where the tasks of one executor run.

    Attributes:
        kind: CURRENT (the runner's environment, as today) or ISOLATED (`spec`'s environment).
        reason: why, for the task's log (`kfp==2.17.3 (installed: 2.13.0)`, `image asks for Python 3.12`).
        spec: the environment to run in when ISOLATED.
        python: the Python X.Y the tasks run on.
    """

    executor: str
    tasks: Tuple[str, ...]
    kind: str
    reason: str
    python: str
    spec: Optional[environment_spec.EnvironmentSpec] = None


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
                                         command=tuple(executor.container.command)))

    walk(pipeline_spec.root, "")
    return found


def plan_environments(tasks: Iterable[TaskRequest], mode: str = DEFAULT_MODE,
                      find_interpreter: Optional[InterpreterFinder] = None,
                      platform: Optional[str] = None) -> EnvironmentPlan:
    """Decides, per executor, whether its tasks run in the runner's environment or in an isolated one.

    Args:
        tasks: the run's tasks (tasks_of_pipeline).
        mode: auto, isolated or current.
        find_interpreter: X.Y -> an interpreter or None (default interpreters.find_interpreter: PATH, pyenv, uv's
            Python directory; no process started).
        platform: for the environments' digests (default: this machine's).

    Returns:
        The plan. An image asking for a Python this machine lacks gives a notice, and its tasks use the runner's
        Python.

    Raises:
        InvalidInputError: an unknown mode; in `current` mode, a task needs a package that is not installed.
    """
    mode = check_mode(mode)
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
        interpreter = runner
        if asked is not None and asked != runner.version:
            if asked not in looked_up:
                looked_up[asked] = find(asked)
                if looked_up[asked] is None:
                    notices.append(
                        f"image {first.image!r} asks for Python {asked}, which is not on this machine (PATH, pyenv, "
                        f"uv): task {first.label!r} runs on Python {runner.version}")
            interpreter = looked_up[asked] or runner
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
    return EnvironmentPlan(mode=mode, decisions=decisions, notices=tuple(notices))


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
