"""Run compiled KFP pipelines locally and record KFP-compatible ML Metadata lineage.

The public API is re-exported here lazily, so `import kfp_lineage` stays cheap and the CLI can set up
logging and warning filters before kfp and ml-metadata load.
"""

from typing import Any

_EXPORTS = {
    # errors
    "LineageError": "kfp_lineage.errors",
    "InvalidInputError": "kfp_lineage.errors",
    "StoreError": "kfp_lineage.errors",
    "UnsupportedFeatureError": "kfp_lineage.errors",
    "RemoteError": "kfp_lineage.errors",
    "LineageSpecError": "kfp_lineage.expect.spec",
    # running
    "run_pipeline": "kfp_lineage.engine.run",
    "load_pipeline": "kfp_lineage.ir.spec",
    "RunResult": "kfp_lineage.engine.results",
    "TaskResult": "kfp_lineage.engine.results",
    # reading lineage
    "find_artifact": "kfp_lineage.lineage.references",
    "trace": "kfp_lineage.lineage.walk",
    "impact": "kfp_lineage.lineage.walk",
    "describe": "kfp_lineage.lineage.describe",
    "list_runs": "kfp_lineage.lineage.runs",
    # expected lineage
    "load_lineage_spec": "kfp_lineage.expect.spec",
    "check_lineage": "kfp_lineage.expect.check",
    "expect_lineage": "kfp_lineage.expect.check",
    # keeping the store truthful
    "recover": "kfp_lineage.mlmd.recovery",
    "verify_artifacts": "kfp_lineage.lineage.verify",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kfp_lineage' has no attribute {name!r}")
