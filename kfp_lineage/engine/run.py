"""The public entry point for running a pipeline locally with lineage: `run_pipeline`."""

from __future__ import annotations

import os
import re
from typing import Any, Mapping, Optional, Sequence, Union

from kfp.dsl import base_component

from kfp_lineage import errors, run_ids
from kfp_lineage.engine import results
from kfp_lineage.engine import scheduler
from kfp_lineage.engine import stopping
from kfp_lineage.ir import preflight
from kfp_lineage.ir import targets
from kfp_lineage.engine import progress
from kfp_lineage.engine import task_environments
from kfp_lineage.engine.exec import environment_plan
from kfp_lineage.engine.exec import environments
from kfp_lineage.engine.exec import factory
from kfp_lineage.mlmd import indexes as store_indexes
from kfp_lineage.mlmd import recorder
from kfp_lineage.ir import spec
from kfp_lineage.mlmd import store as store_module

LAUNCHER_ENV_VAR = "KFP_LINEAGE_LAUNCHER"
DEFAULT_PIPELINE_ROOT = os.path.join(".kfp-lineage", "pipeline-root")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def run_pipeline(
    pipeline: Union[str, os.PathLike, base_component.BaseComponent, spec.LoadedPipeline],
    arguments: Optional[Mapping[str, Any]] = None,
    *,
    store: Union[None, str, store_module.StoreURL] = None,
    pipeline_root: Optional[str] = None,
    run_id: Optional[str] = None,
    max_parallel: Optional[int] = None,
    task_timeout: Optional[float] = None,
    enable_cache: bool = True,
    launcher: Optional[str] = None,
    reporter: Optional[progress.Reporter] = None,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    target: str = targets.DEFAULT_TARGET,
    strict: bool = False,
    task_env: Optional[str] = None,
    env_cache: Optional[str] = None,
    image_sources: Optional[Mapping[str, str]] = None,
    find_links: Sequence[str] = (),
) -> results.RunResult:
    """Runs a compiled pipeline on this machine and records its lineage in an ml-metadata store.

    Args:
        pipeline: a compiled IR YAML path, `FILE.py[:FUNC]`, a `@dsl.pipeline` object, or a LoadedPipeline.
        arguments: pipeline parameters; strings are converted to the declared types.
        store: store URL (see store.parse_store_url); None means `.kfp-lineage/mlmd.sqlite`.
        pipeline_root: directory for artifacts and logs; None means `.kfp-lineage/pipeline-root`.
        run_id: the run's id; None generates one.
        max_parallel: how many tasks may run at once; None means the number of CPUs.
        task_timeout: seconds after which a task is killed and FAILED; None means no limit.
        launcher: "fork" (default; Python tasks fork from a warm server process) or "subprocess" (every task a
            fresh process, as kfp.local does); None reads KFP_LINEAGE_LAUNCHER, else "fork".
        enable_cache: reuse results of identical earlier tasks of this pipeline (each task's enable_caching
            still applies); False runs every task.
        reporter: receives progress events; None reports nothing.
        env: the tasks' environment; None means this process's environment.
        cwd: the tasks' working directory; None means this process's.
        target: where the pipeline will run, "kfp" (Kubeflow Pipelines 2.17) or "vertex" (Vertex AI Pipelines):
            constructs that target rejects are reported as warnings (ir/targets.py).
        strict: make those findings an error (TargetMismatchError) before anything is written.
        task_env: where tasks with a pip prefix run: "auto" (the runner's environment when it meets the task's
            requirements and image Python exactly, else an isolated environment built for them), "isolated"
            (always an isolated one) or "current" (always the runner's; a missing package is refused); None
            reads KFP_LINEAGE_TASK_ENV, else "auto". Isolated environments are built (with uv) before anything
            is written, and reused from the cache by later runs.
        env_cache: the directory of cached task environments; None reads KFP_LINEAGE_ENV_CACHE, else the user
            cache directory's kfp-lineage/envs.
        image_sources: image -> the directory it is built from: a containerized Python component in such an image
            runs in an isolated environment holding what the directory's Dockerfile installs, with the directory's
            code (engine/exec/image_sources.py); the run records the image as the spec names it.
        find_links: directories of wheels (or URLs of pages of links) that building an environment also looks in,
            as pip's --find-links; the spec's own index options still apply.

    While it runs (in the main thread), SIGINT, SIGTERM and SIGHUP stop the run cleanly instead of killing this
    process: running tasks are killed and recorded CANCELED, then RunCanceled is raised. Every path leaves the
    store consistent (no execution left RUNNING) and no task process running.

    Returns:
        The run's result; `result.state` is COMPLETE or FAILED (a failed task does not raise).

    Raises:
        RunCanceled: a signal stopped the run (a KeyboardInterrupt; `exit_code` 130 for SIGINT, 143 for SIGTERM).
        RunAbortedError: the runner failed on an unexpected error; the run was recorded FAILED and the message
            names the file with the traceback.
        InvalidInputError: bad spec, arguments, options or store, a task environment that cannot be built
            (EnvironmentBuildError), or in "current" mode a missing package; raised before anything is written.
        UnsupportedFeatureError: the pipeline uses a feature the local runner cannot run.
        TargetMismatchError: with strict, the pipeline uses a construct its target rejects.
    """
    loaded = pipeline if isinstance(pipeline, spec.LoadedPipeline) else spec.load_pipeline(pipeline)
    values = spec.validate_arguments(loaded.spec, arguments or {})
    reporter = reporter or progress.Reporter()
    if max_parallel is not None and max_parallel < 1:
        raise errors.InvalidInputError(f"max_parallel must be at least 1, got {max_parallel}")
    if task_timeout is not None and task_timeout <= 0:
        raise errors.InvalidInputError(f"task_timeout must be positive, got {task_timeout}")
    url = store if isinstance(store, store_module.StoreURL) else store_module.parse_store_url(store)
    launcher = launcher or os.environ.get(LAUNCHER_ENV_VAR) or factory.DEFAULT_HANDLER
    factory.check_handler_name(launcher)
    run_id = run_id or run_ids.new_run_id(loaded.name)
    if not _RUN_ID.match(run_id):
        raise errors.InvalidInputError(
            f"run id {run_id!r} is not allowed: use letters, digits, '.', '_' and '-' (at most 128)"
        )
    mode = environment_plan.check_mode(task_env or os.environ.get(environment_plan.MODE_ENV_VAR))
    # Its requirement problems are the plan's business (current mode).
    preflight.check_pipeline(loaded.spec, cwd=os.path.abspath(cwd or os.getcwd()),
                             images_with_source=frozenset(image_sources or ()))
    _check_target(loaded, values, target, strict, reporter)
    by_executor = task_environments.prepare_task_environments(
        loaded.spec, mode, environments.resolve_cache_dir(env_cache, os.environ), reporter,
        image_sources=image_sources, find_links=[_find_link(link) for link in find_links])
    metadata_store = store_indexes.open_run_store(url)  # a store it creates gets kfp-lineage's indexes
    options = results.RunOptions(
        pipeline_root=os.path.abspath(pipeline_root or DEFAULT_PIPELINE_ROOT),
        run_id=run_id,
        max_parallel=max_parallel or os.cpu_count() or 1,
        cwd=os.path.abspath(cwd or os.getcwd()),
        env=dict(os.environ if env is None else env),
        task_timeout=task_timeout,
        enable_cache=enable_cache,
        launcher=launcher,
        task_environments=by_executor,
    )
    with stopping.stop_on_signals(stopping.StopRequest()) as stop:
        runner = scheduler.Scheduler(
            loaded.spec, values, recorder.Recorder(metadata_store), options, reporter, store_label=url.redacted,
            stop=stop,
        )
        return runner.run()


def _find_link(link: str) -> str:
    """A --find-links value made absolute (environments are built in another directory); InvalidInputError for a
    path that is not a directory."""
    if "://" in link:
        return link
    if not os.path.isdir(link):
        raise errors.InvalidInputError(f"find-links {link!r} is not a directory: pass a directory of wheels or a URL")
    return os.path.abspath(link)


def _check_target(loaded: spec.LoadedPipeline, values: Mapping[str, Any], target: str, strict: bool,
                  reporter: progress.Reporter) -> None:
    """Warns about (strict: refuses) what the target would reject, so a pipeline passing here passes there."""
    findings = targets.check_target(loaded.spec, target, values)
    if strict and findings:
        more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
        raise targets.TargetMismatchError(f"--target {target} --strict: {findings[0]}{more}")
    for finding in findings:
        reporter.warn(f"on {target}: {finding}")
