"""Run compiled KFP pipelines locally and record KFP-compatible ML Metadata lineage.

The public API is re-exported here lazily, so `import kfp_lineage` stays cheap and the CLI can set up
logging and warning filters before kfp and ml-metadata load.
"""

from typing import Any

__all__ = [
    "LineageError",
    "InvalidInputError",
    "StoreError",
    "UnsupportedFeatureError",
    "RunResult",
    "TaskResult",
    "run_pipeline",
    "load_pipeline",
    "find_artifact",
    "trace",
]

_EXPORTS = {
    "LineageError": "kfp_lineage.errors",
    "InvalidInputError": "kfp_lineage.errors",
    "StoreError": "kfp_lineage.errors",
    "UnsupportedFeatureError": "kfp_lineage.errors",
    "RunResult": "kfp_lineage.orchestrator",
    "TaskResult": "kfp_lineage.orchestrator",
    "run_pipeline": "kfp_lineage.run",
    "load_pipeline": "kfp_lineage.spec",
    "find_artifact": "kfp_lineage.queries",
    "trace": "kfp_lineage.queries",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kfp_lineage' has no attribute {name!r}")
