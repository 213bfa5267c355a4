"""A run's task environments, settled before it writes anything: where each task runs (exec/environment_plan.py),
the isolated environments that needs, found in the cache or built in parallel (exec/environments.py), and what
each task is told about its environment (handler.TaskEnvironment: its PATH, fork server, log lines and cache
fingerprint)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Dict, List, Mapping, Optional, Sequence

from kfp.pipeline_spec import pipeline_spec_pb2
from packaging import requirements as packaging_requirements

from kfp_lineage.engine import progress
from kfp_lineage.engine.exec import environment_plan
from kfp_lineage.engine.exec import environments
from kfp_lineage.engine.exec import handler
from kfp_lineage.engine.exec import image_sources as image_sources_module
from kfp_lineage.ir import requirements


FIND_LINKS_ENV_VAR = "UV_FIND_LINKS"  # uv's --find-links, comma-separated


def prepare_task_environments(pipeline_spec: pipeline_spec_pb2.PipelineSpec, mode: str, cache_dir: str,
                              reporter: progress.Reporter, environ: Optional[Mapping[str, str]] = None,
                              image_sources: Optional[Mapping[str, str]] = None,
                              find_links: Sequence[str] = ()) -> Dict[str, handler.TaskEnvironment]:
    """Decides where each task runs and makes sure every isolated environment exists.

    Args:
        mode: auto, isolated or current (environment_plan.MODES).
        cache_dir: the environment cache (environments.resolve_cache_dir).
        reporter: gets the plan's notices as warnings, and a line before and after each environment built.
        environ: the environment uv runs with (default os.environ, less what points at another environment).
        image_sources: image -> the directory it is built from (--image-source); such tasks run from that source.
        find_links: wheel directories or pages of links every environment build also looks in (--find-links).

    Returns:
        executor label -> its TaskEnvironment, for every executor with a pip prefix (the others run as they are).
        With every isolated environment cached, nothing is started: no uv call, no network.

    Raises:
        InvalidInputError: an unknown mode; in `current` mode, a task needs a package that is not installed.
        EnvironmentBuildError: an environment cannot be built (one line naming the task and the requirement).
    """
    tasks = environment_plan.tasks_of_pipeline(pipeline_spec)
    plan = environment_plan.plan_environments(tasks, mode, image_sources=image_sources)
    for notice in plan.notices:
        reporter.warn(notice)
    specs = plan.specs()
    if find_links:
        environ = dict(os.environ if environ is None else environ)
        environ[FIND_LINKS_ENV_VAR] = ",".join(list(find_links) + [environ.get(FIND_LINKS_ENV_VAR, "")]).strip(",")
    ready = environments.prepare(specs, environments.EnvironmentCache(cache_dir), on_progress=reporter.note,
                                 environ=environ) if specs else {}
    commands = {task.executor: task.command for task in tasks}
    found: Dict[str, handler.TaskEnvironment] = {}
    for executor, decision in plan.decisions.items():
        if decision.kind == environment_plan.ISOLATED:
            built = ready[decision.spec.digest]
            source = decision.source
            found[executor] = handler.TaskEnvironment(
                isolated=True, reason=decision.reason, python=built.python, digest=built.digest, path=built.path,
                packages=tuple(_requirement_line(name, version) for name, version in sorted(built.packages.items())),
                source_dir=source.directory if source else "", arguments=decision.arguments,
                source_digest=image_sources_module.source_digest(source.directory) if source else "")
            continue
        prefix = requirements.split_pip_prefix(list(commands[executor]))
        if prefix is not None:
            found[executor] = handler.TaskEnvironment(
                isolated=False, reason=decision.reason, python=platform.python_version(),
                packages=tuple(sorted(_installed_here(prefix.requirements))))
    return found


def _requirement_line(name: str, version: str) -> str:
    return f"{name} {version}" if version.startswith("@") else f"{name}=={version}"


def _installed_here(requirement_texts: Sequence[str]) -> List[str]:
    """`name==version` of each requirement installed in the runner's environment, in the prefix's order; those
    whose marker excludes this Python are left out."""
    lines: List[str] = []
    for text in requirement_texts:
        try:
            requirement = packaging_requirements.Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate():
                continue
            version = requirements.installed_version(requirement.name)
        except (packaging_requirements.InvalidRequirement, importlib.metadata.PackageNotFoundError):
            continue
        line = f"{requirement.name}=={version}"
        if line not in lines:
            lines.append(line)
    return lines
