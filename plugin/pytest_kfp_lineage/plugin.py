"""The pytest11 entry point: kfp-lineage's fixtures (`mlmd_store`, `run_pipeline`, `assert_lineage`) over its CLI.

Registers nothing where kfp-lineage itself is installed (its in-process plugin, entry point `kfp_lineage`, serves
the same fixtures), unless KFP_LINEAGE_PLUGIN=cli asks for this one.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
from typing import Any, Callable, Mapping, Optional

import pytest

from pytest_kfp_lineage import cli
from pytest_kfp_lineage import lineage

PLUGIN_ENV_VAR = "KFP_LINEAGE_PLUGIN"


def _in_process_plugin_installed() -> bool:
    return any(entry.name == "kfp_lineage" for entry in importlib.metadata.entry_points(group="pytest11"))


ACTIVE = os.environ.get(PLUGIN_ENV_VAR) == "cli" or not _in_process_plugin_installed()


@dataclasses.dataclass
class MLMDStore:
    """A test's ml-metadata store: its URL (for run_pipeline(store=...)) and its file."""

    url: str
    path: str

    @property
    def store(self) -> Any:
        """Not available here: this environment has no ml-metadata (the tool has it)."""
        raise cli.KfpLineageError(
            "mlmd_store.store needs ml-metadata, which only the kfp-lineage tool's environment has: read the lineage "
            "with assert_lineage(run), or `kfp-lineage show RUN_ID --store " + self.url + " --json`"
        )


if ACTIVE:

    @pytest.fixture
    def mlmd_store(tmp_path: Any) -> MLMDStore:
        """A fresh SQLite ml-metadata store in tmp_path."""
        path = os.path.join(str(tmp_path), "mlmd.sqlite")
        return MLMDStore(url=f"sqlite:///{path}", path=path)

    @pytest.fixture
    def run_pipeline(mlmd_store: MLMDStore, tmp_path: Any) -> Callable[..., cli.RunResult]:
        """Runs a pipeline into `mlmd_store` with `kfp-lineage run`: `run_pipeline(pipeline, arguments=None,
        allow_failure=False, **options)`, as kfp-lineage's own fixture does.

        `pipeline` is a compiled YAML path, `FILE.py[:FUNC]` or a `@dsl.pipeline` object (compiled with this
        environment's kfp); `options` are run_id, max_parallel, task_timeout, enable_cache, env, launcher,
        pipeline_root (default tmp_path/pipeline-root) and cwd (default tmp_path). A run that ends FAILED fails the
        test with the failed task's error, unless allow_failure=True.
        """

        def run(pipeline: Any, arguments: Optional[Mapping[str, Any]] = None, *, allow_failure: bool = False,
                **options: Any) -> cli.RunResult:
            __tracebackhide__ = True
            unknown = sorted(set(options) - set(cli.options_accepted()))
            if unknown:
                raise TypeError(f"run_pipeline() got an unexpected keyword argument {unknown[0]!r}; through the "
                                f"kfp-lineage command it takes {', '.join(cli.options_accepted())}")
            options.setdefault("pipeline_root", os.path.join(str(tmp_path), "pipeline-root"))
            options.setdefault("cwd", str(tmp_path))
            result = cli.run_pipeline(pipeline, arguments, store=mlmd_store.url,
                                      workdir=os.path.join(str(tmp_path), "compiled"), **options)
            if not result.succeeded and not allow_failure:
                failed = [f"{t.key}: {t.error} (log: {t.log_path})" for t in result.tasks.values()
                          if t.state == "FAILED" and t.error]
                pytest.fail(f"run {result.run_id} ended {result.state}: "
                            + ("; ".join(failed) or "no task error recorded"))
            return result

        return run

    @pytest.fixture(name="assert_lineage")
    def assert_lineage_fixture(mlmd_store: MLMDStore) -> Callable[..., lineage.LineageAssertion]:
        """`assert_lineage(run)` reading the run from `mlmd_store`."""

        def check(run: Any) -> lineage.LineageAssertion:
            return lineage.assert_lineage(run, mlmd_store.url)

        return check
