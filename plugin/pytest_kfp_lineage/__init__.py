"""kfp-lineage's pytest fixtures for a project whose kfp differs from the tool's: they drive the kfp-lineage CLI.

Installed beside a project's own kfp (no kfp, no ml-metadata needed here), with the kfp-lineage tool installed on its
own (`uv tool install kfp-lineage`, `pipx install kfp-lineage`). The fixtures (see plugin.py) are those of
kfp_lineage.expect.pytest_plugin; `assert_lineage` and the errors are importable here too.
"""

from pytest_kfp_lineage.cli import KfpLineageError, RunResult, TaskResult
from pytest_kfp_lineage.lineage import LineageAssertion, TaskAssertion, assert_lineage

__all__ = ["KfpLineageError", "RunResult", "TaskResult", "LineageAssertion", "TaskAssertion", "assert_lineage"]
