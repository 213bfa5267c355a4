"""What a run is told and what it reports: task state names, RunOptions, TaskResult and RunResult."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional

from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage.engine.exec import handler
from kfp_lineage.ir import dataflow

COMPLETE, FAILED, CANCELED, CACHED, NOT_RUN = "COMPLETE", "FAILED", "CANCELED", "CACHED", "NOT_RUN"
QUEUED, RUNNING = "QUEUED", "RUNNING"
FINAL = (COMPLETE, FAILED, CANCELED, CACHED, NOT_RUN)
SUCCEEDED = (COMPLETE, CACHED)
# The MLMD execution state each final state is recorded as (NOT_RUN tasks get no execution).
MLMD_STATE = {
    COMPLETE: mlmd_pb.Execution.COMPLETE,
    FAILED: mlmd_pb.Execution.FAILED,
    CANCELED: mlmd_pb.Execution.CANCELED,
    CACHED: mlmd_pb.Execution.CACHED,
}


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How to run: where outputs go, the run id, parallelism, caching, and the task environment."""

    pipeline_root: str
    run_id: str
    max_parallel: int
    cwd: str
    env: Mapping[str, str]
    task_timeout: Optional[float] = None
    enable_cache: bool = True
    launcher: str = "fork"  # a name in engine.exec.factory.HANDLERS: "fork" or "subprocess"
    # Where the tasks of each executor run, by executor label (task_environments.prepare_task_environments); an
    # executor not named runs in the runner's environment.
    task_environments: Mapping[str, handler.TaskEnvironment] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TaskResult:
    """One task's final record in a run (container tasks, DAGs, loop iterations alike)."""

    key: str
    state: str
    execution_id: Optional[int]
    outputs: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)
    duration: float = 0.0
    error: str = ""
    log_path: str = ""
    attempts: int = 0
    cached_execution_id: Optional[int] = None

    def to_json(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {"state": self.state, "execution_id": self.execution_id, "outputs": self.outputs}
        if self.error:
            data["error"] = self.error
        if self.log_path:
            data["log"] = self.log_path
        if self.attempts > 1:
            data["attempts"] = self.attempts
        if self.cached_execution_id is not None:
            data["cached_execution_id"] = self.cached_execution_id
        return data


@dataclasses.dataclass
class RunResult:
    """The outcome of a run, as `kfp-lineage run --json` prints it."""

    run_id: str
    pipeline_name: str
    state: str
    store: str
    pipeline_root: str
    run_root: str
    root_execution_id: int
    duration: float
    tasks: Dict[str, TaskResult]
    outputs: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.state == COMPLETE

    def to_json(self) -> Dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline_name,
            "state": self.state,
            "store": self.store,
            "pipeline_root": self.pipeline_root,
            "duration_seconds": round(self.duration, 3),
            "outputs": self.outputs,
            "tasks": {key: task.to_json() for key, task in self.tasks.items()},
        }


def bound_inputs(task: Any, parameters: Mapping[str, Any]) -> Dict[str, Any]:
    """A container task's `inputs` as the backend's driver records them: the parameters the task binds, without
    those that fall back to the component's default (the launcher fills those in at run time; resolve.go).

    Args:
        task: the task's PipelineTaskSpec.
        parameters: every input parameter the task runs with, defaults included.
    """
    return {name: value for name, value in parameters.items() if name in task.inputs.parameters}


def outputs_json(produced: dataflow.Produced) -> Dict[str, Dict[str, Any]]:
    """What a task or DAG produced, as TaskResult.outputs reports it: `{"value": v}` per parameter,
    `{"artifact_id", "uri"}` per single artifact, `{"artifacts": [...]}` per list of several."""
    outputs: Dict[str, Dict[str, Any]] = {name: {"value": value} for name, value in produced.parameters.items()}
    for name, artifacts in produced.artifacts.items():
        if len(artifacts) == 1:
            outputs[name] = {"artifact_id": artifacts[0].artifact_id, "uri": artifacts[0].uri}
        elif artifacts:
            outputs[name] = {"artifacts": [{"artifact_id": a.artifact_id, "uri": a.uri} for a in artifacts]}
    return outputs
