"""The public entry point for running a pipeline locally with lineage: `run_pipeline`."""

from __future__ import annotations

import os
import re
from typing import Any, Mapping, Optional, Union

from kfp.dsl import base_component

from kfp_lineage import errors, run_ids
from kfp_lineage.engine import scheduler as orchestrator
from kfp_lineage.ir import preflight
from kfp_lineage.engine import progress
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
) -> orchestrator.RunResult:
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

    Returns:
        The run's result; `result.state` is COMPLETE or FAILED (a failed task does not raise).

    Raises:
        InvalidInputError: bad spec, arguments, options or store; raised before anything is written.
        UnsupportedFeatureError: the pipeline uses a feature the local runner cannot run.
    """
    loaded = pipeline if isinstance(pipeline, spec.LoadedPipeline) else spec.load_pipeline(pipeline)
    values = spec.validate_arguments(loaded.spec, arguments or {})
    reporter = reporter or progress.Reporter()
    if max_parallel is not None and max_parallel < 1:
        raise errors.InvalidInputError(f"max_parallel must be at least 1, got {max_parallel}")
    if task_timeout is not None and task_timeout <= 0:
        raise errors.InvalidInputError(f"task_timeout must be positive, got {task_timeout}")
    launcher = launcher or os.environ.get(LAUNCHER_ENV_VAR) or "fork"
    if launcher not in ("fork", "subprocess"):
        raise errors.InvalidInputError(f"launcher {launcher!r} is not known: use 'fork' or 'subprocess'")
    run_id = run_id or run_ids.new_run_id(loaded.name)
    if not _RUN_ID.match(run_id):
        raise errors.InvalidInputError(
            f"run id {run_id!r} is not allowed: use letters, digits, '.', '_' and '-' (at most 128)"
        )
    for problem in preflight.check_pipeline(loaded.spec):
        if problem.installed is None:
            raise errors.InvalidInputError(
                f"a task needs {problem.describe()}; kfp-lineage never installs packages: "
                f"install it into this environment (pip install '{problem.requirement}')"
            )
        reporter.warn(f"a task asks for {problem.describe()}; running with the installed version")
    url = store if isinstance(store, store_module.StoreURL) else store_module.parse_store_url(store)
    metadata_store = store_indexes.open_run_store(url)  # a store it creates gets kfp-lineage's indexes
    options = orchestrator.RunOptions(
        pipeline_root=os.path.abspath(pipeline_root or DEFAULT_PIPELINE_ROOT),
        run_id=run_id,
        max_parallel=max_parallel or os.cpu_count() or 1,
        cwd=os.path.abspath(cwd or os.getcwd()),
        env=dict(os.environ if env is None else env),
        task_timeout=task_timeout,
        enable_cache=enable_cache,
        launcher=launcher,
    )
    runner = orchestrator.Orchestrator(
        loaded.spec, values, recorder.Recorder(metadata_store), options, reporter, store_label=url.redacted
    )
    return runner.run()
