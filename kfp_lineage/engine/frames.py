"""A DAG being run (the root, a sub-pipeline, a condition branch, one loop iteration): its inputs, its tasks'
states, what they produced, and who to tell when it ends."""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Dict, List, Mapping, Tuple

from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage.ir import dataflow
from kfp_lineage.ir import resolution

# on_done(state, produced, duration, error), called once when every task of the frame is final
DoneCallback = Callable[[str, dataflow.Produced, float, str], None]


@dataclasses.dataclass
class Frame:
    """One running DAG; `states` maps each task name to a results state name once the task was considered."""

    key: str  # the DAG's path in the run ("" for the root), the prefix of its tasks' keys
    component: pipeline_spec_pb2.ComponentSpec
    execution_id: int
    parameters: Dict[str, Any]
    artifacts: Dict[str, List[dataflow.InputArtifact]]
    on_done: DoneCallback
    states: Dict[str, str] = dataclasses.field(default_factory=dict)
    outputs: Dict[str, dataflow.Produced] = dataclasses.field(default_factory=dict)
    final_statuses: Dict[str, dataflow.FinalStatus] = dataclasses.field(default_factory=dict)
    started: float = dataclasses.field(default_factory=time.monotonic)
    finished: bool = False

    @property
    def tasks(self) -> Mapping[str, pipeline_spec_pb2.PipelineTaskSpec]:
        return self.component.dag.tasks

    @functools.cached_property
    def dependencies(self) -> Dict[str, Tuple[str, ...]]:
        """Each task's name -> the sibling tasks it waits for (resolution.task_dependencies)."""
        return {name: resolution.task_dependencies(task) for name, task in self.tasks.items()}

    def child_key(self, name: str) -> str:
        """The key of this DAG's task `name`, e.g. `for-loop-2/iteration-0/train`."""
        return f"{self.key}/{name}" if self.key else name
