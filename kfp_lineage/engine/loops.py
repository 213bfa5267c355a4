"""dsl.ParallelFor: which iteration starts next (under the loop's parallelism limit, failing fast), and the loop's
state and outputs once every iteration ended.

Bookkeeping only: the scheduler records each iteration's DAG execution and runs it as a frame keyed
`<loop>/iteration-<i>`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Dict, List, Optional, Tuple

from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage import task_paths
from kfp_lineage.engine import results
from kfp_lineage.ir import dataflow
from kfp_lineage.ir import resolution
from kfp_lineage.mlmd import vocabulary


@dataclasses.dataclass
class Iteration:
    """One iteration to start: its inputs (the loop's, plus the item) and its DAG execution's properties."""

    index: int
    key: str
    parameters: Dict[str, Any]
    artifacts: Dict[str, List[dataflow.InputArtifact]]
    properties: Dict[str, Any]
    input_ids: Dict[str, List[int]]


def loop_inputs(task: pipeline_spec_pb2.PipelineTaskSpec, parameters: Dict[str, Any],
                items: Tuple[str, List[Any], bool]) -> Dict[str, Any]:
    """The loop DAG execution's `inputs`, as the driver records them: its resolved input parameters, and for a loop
    over a raw list the whole list under the item input's name (dag.go adds it before creating the execution)."""
    iterator = task.parameter_iterator
    if task.WhichOneof("iterator") == "parameter_iterator" and iterator.items.WhichOneof("kind") == "raw":
        return dict(parameters, **{iterator.item_input: items[1]})
    return dict(parameters)


class Loop:
    """A running ParallelFor task. The scheduler starts the iterations next_iteration gives, and reports each end
    (iteration_done) only after it returned from starting them, so the bookkeeping is never re-entered and a loop
    of any size is iterated, not recursed."""

    def __init__(self, *, name: str, key: str, component: pipeline_spec_pb2.ComponentSpec, execution_id: int,
                 display_name: str, items: Tuple[str, List[Any], bool], parameters: Dict[str, Any],
                 artifacts: Dict[str, List[dataflow.InputArtifact]], limit: int, items_parameter: str = ""):
        """`items` is resolution.loop_items' (item input name, items, whether they are artifacts); `limit` is the
        iterator's parallelism limit (0: none); `items_parameter` the loop's input parameter holding the items
        ("" for a raw list), which an iteration's recorded `inputs` leave out, as the driver does."""
        self.name = name
        self.key = key
        self.component = component
        self.execution_id = execution_id
        self.display_name = display_name
        self.item_input, self.items, self.items_are_artifacts = items
        self.parameters = parameters
        self.artifacts = artifacts
        self.limit = limit
        self.items_parameter = items_parameter
        self.started = time.monotonic()
        self.finished = False
        self._next_index = 0
        self._running = 0
        self._not_started = 0
        self._states: Dict[int, str] = {}
        self._results: Dict[int, dataflow.Produced] = {}

    def iteration_key(self, index: int) -> str:
        return task_paths.iteration_path(self.key, index)

    def next_iteration(self, interrupted: bool) -> Optional[Iteration]:
        """The next iteration to start now, counted as running; None when the limit is reached or none is left.

        Fails fast, as the loop's Argo DAG does: after a failed iteration (or an interrupt) no iteration starts,
        and the loop will fail.
        """
        if self._next_index >= len(self.items) or (0 < self.limit <= self._running):
            return None
        if interrupted or results.FAILED in self._states.values():
            self._not_started = len(self.items) - self._next_index
            self._next_index = len(self.items)
            return None
        index = self._next_index
        self._next_index += 1
        self._running += 1
        parameters, artifacts = dict(self.parameters), dict(self.artifacts)
        if self.items_are_artifacts:
            artifacts[self.item_input] = [self.items[index]]
        else:
            parameters[self.item_input] = self.items[index]
        properties = {
            vocabulary.DISPLAY_NAME: self.display_name,  # the loop's taskInfo.name, as the driver writes it
            vocabulary.TASK_NAME: self.name,
            vocabulary.PARENT_DAG_ID: self.execution_id,
            vocabulary.ITERATION_INDEX: index,
            # The driver's iteration inputs: the loop's, the items replaced by the item (resolve.go).
            vocabulary.INPUTS: {k: v for k, v in parameters.items() if k != self.items_parameter},
            vocabulary.TOTAL_DAG_TASKS: len(self.component.dag.tasks),
        }
        input_ids = {name: [a.artifact_id for a in arts] for name, arts in artifacts.items()}
        return Iteration(index, self.iteration_key(index), parameters, artifacts, properties, input_ids)

    def iteration_done(self, index: int, state: str, produced: dataflow.Produced) -> None:
        """Notes how an iteration ended (a results state name) and, when it succeeded, what it produced."""
        self._running -= 1
        self._states[index] = state
        if state in results.SUCCEEDED:
            self._results[index] = produced

    @property
    def ready_to_finish(self) -> bool:
        """Every iteration started has ended, none will start, and the loop was not finished yet."""
        return not self.finished and self._running == 0 and self._next_index >= len(self.items)

    def finish(self, interrupted: bool) -> Tuple[str, dataflow.Produced]:
        """Marks the loop finished; its state and outputs (dsl.Collected, in item order).

        FAILED when an iteration failed; else CANCELED when the run was stopped (`interrupted`); else COMPLETE.
        """
        self.finished = True
        if results.FAILED in self._states.values():
            return results.FAILED, dataflow.Produced()
        if interrupted:
            return results.CANCELED, dataflow.Produced()
        if self._not_started > 0 or any(state not in results.SUCCEEDED for state in self._states.values()):
            return results.FAILED, dataflow.Produced()
        produced = resolution.collect_iterations(self.component, [self._results[i] for i in sorted(self._results)])
        return results.COMPLETE, produced
