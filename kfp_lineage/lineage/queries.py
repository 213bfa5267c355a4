"""The lineage queries under their old import path, kept for one release: new code imports the modules that own
them (references.py, walk.py, describe.py, runs.py, placement.py)."""

from __future__ import annotations

from kfp_lineage.lineage.describe import describe, describe_artifact, describe_run
from kfp_lineage.lineage.placement import ArtifactRef, task_paths
from kfp_lineage.lineage.references import find_artifact, latest_run
from kfp_lineage.lineage.runs import DEFAULT_RUN_LIMIT, list_runs, summarize_run
from kfp_lineage.lineage.walk import (
    CACHE_HIT_PROPERTIES, DEFAULT_DEPTH, ENDPOINT_CANDIDATE_TYPES, MAX_TRACE_CONSUMERS, SUMMARY_ENDPOINT_PROPERTIES,
    SUMMARY_EXECUTION_PROPERTIES, impact, trace,
)

__all__ = [
    "ArtifactRef", "CACHE_HIT_PROPERTIES", "DEFAULT_DEPTH", "DEFAULT_RUN_LIMIT", "ENDPOINT_CANDIDATE_TYPES",
    "MAX_TRACE_CONSUMERS", "SUMMARY_ENDPOINT_PROPERTIES", "SUMMARY_EXECUTION_PROPERTIES", "describe",
    "describe_artifact", "describe_run", "find_artifact", "impact", "latest_run", "list_runs", "summarize_run",
    "task_paths", "trace",
]
