"""Task paths: the one notation for a task inside its run, used by run results, views, references and lineage specs.

A task path joins the names of the enclosing DAG tasks and the task's own name with `/`: `train`,
`condition-1/condition-branches-2/deploy`. An iteration of a `dsl.ParallelFor` is the segment `iteration-<i>` under
its loop, so a task inside a loop is `for-loop-2/iteration-0/train`. Output always uses this notation; input may
also write an iteration as `for-loop-2[0]` (what `show`, `trace` and `impact` printed before), which
normalize_path turns into the one notation.

Only the standard library is imported here: the engine, the readers and the pytest plugin all use it.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, NamedTuple, Optional

SEPARATOR = "/"
ITERATION_PREFIX = "iteration-"

_BRACKET_ITERATION = re.compile(r"\[(\d+)\]")  # `for-loop-2[0]`, the other accepted spelling of an iteration
_ITERATION_SEGMENT = re.compile(re.escape(ITERATION_PREFIX) + r"(\d+)")


def join_path(parent: str, name: str) -> str:
    """The path of task `name` inside the DAG at `parent` ("" for the root DAG)."""
    return f"{parent}{SEPARATOR}{name}" if parent else name


def iteration_path(loop_path: str, index: int) -> str:
    """The path of iteration `index` of the loop at `loop_path`: `for-loop-2/iteration-0`."""
    return join_path(loop_path, f"{ITERATION_PREFIX}{index}")


def iteration_index(segment: str) -> Optional[int]:
    """The index of an iteration segment (`iteration-3` gives 3), None for any other segment."""
    match = _ITERATION_SEGMENT.fullmatch(segment)
    return int(match.group(1)) if match else None


def normalize_path(path: str) -> str:
    """A task path as typed (either spelling of a loop iteration) in the one notation:
    `for-loop-2[0]/train` and `for-loop-2/iteration-0/train` both give `for-loop-2/iteration-0/train`."""
    if "[" not in path:
        return path
    return _BRACKET_ITERATION.sub(lambda m: f"{SEPARATOR}{ITERATION_PREFIX}{m.group(1)}", path)


def normalize_producer(producer: str) -> str:
    """A `TASK_PATH.OUTPUT` reference with its task path normalized (the output key is left as it is)."""
    task, dot, output = producer.rpartition(".")
    return f"{normalize_path(task)}{dot}{output}" if dot else normalize_path(producer)


def last_segment(path: str) -> str:
    """The task's own name: the last segment of its path."""
    return path.rsplit(SEPARATOR, 1)[-1]


class TaskNode(NamedTuple):
    """What places one execution in its run: its parent DAG execution, its task name in that DAG, and, for a loop
    iteration, its index (a loop iteration carries its loop's task name)."""

    parent_id: Optional[int]
    task_name: str
    iteration_index: Optional[int]


def paths_of(nodes: Mapping[int, TaskNode]) -> Dict[int, str]:
    """node id -> task path, for every node of one run.

    The root DAG (no parent) gets "". A node whose parent is not among `nodes` starts its own path (its name, or
    `<name>/iteration-<i>` for an iteration); a parent chain that loops back on itself ends where it loops.
    """
    paths: Dict[int, str] = {}
    for node_id in nodes:
        chain: List[int] = []
        current: Optional[int] = node_id
        while current is not None and current in nodes and current not in paths and current not in chain:
            chain.append(current)
            current = nodes[current].parent_id
        base = paths.get(current, "") if current is not None and current not in chain else None
        for member_id in reversed(chain):
            member = nodes[member_id]
            parent = nodes.get(member.parent_id) if member.parent_id is not None else None
            if member.parent_id is None:
                path = ""
            elif parent is None or base is None:
                path = _own_segment(member)  # the parent is outside the run, or the chain loops
            elif member.iteration_index is not None and member.task_name == parent.task_name:
                path = iteration_path(base, member.iteration_index)
            else:
                path = join_path(base, _own_segment(member))
            paths[member_id] = path
            base = path
    return paths


def _own_segment(node: TaskNode) -> str:
    if node.iteration_index is None:
        return node.task_name
    return iteration_path(node.task_name, node.iteration_index)
