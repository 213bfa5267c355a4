"""What flows between tasks: artifacts as a task receives them, what a task or DAG produced, how a task ended.

Plain values shared by input resolution, the scheduler and the task handlers; no MLMD and no processes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping


@dataclasses.dataclass(frozen=True)
class InputArtifact:
    """An artifact as a task receives it: its MLMD id, type, URI and metadata."""

    artifact_id: int
    schema_title: str
    schema_version: str
    uri: str
    metadata: Mapping[str, Any]


@dataclasses.dataclass
class Produced:
    """What a finished task or DAG made available to its siblings: output parameters and artifacts."""

    parameters: Dict[str, Any] = dataclasses.field(default_factory=dict)
    artifacts: Dict[str, List[InputArtifact]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class FinalStatus:
    """How a task ended, for `dsl.PipelineTaskFinalStatus` inputs of exit handlers."""

    state: str
    error: str = ""


def whole_numbers_as_ints(value: Any) -> Any:
    """protobuf Struct numbers are doubles; the backend's Go JSON encoder writes 4.0 as `4`, so a task reading
    a list of ints (e.g. dsl.Collected outputs) gets ints. Python's encoder would write `4.0`; match the backend."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [whole_numbers_as_ints(v) for v in value]
    if isinstance(value, dict):
        return {k: whole_numbers_as_ints(v) for k, v in value.items()}
    return value
