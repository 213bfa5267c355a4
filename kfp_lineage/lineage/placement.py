"""Where the nodes of a lineage graph come from: the artifact a walk starts at, the execution that produced each
artifact (an original run over cache hits), the run of each execution, and task paths for executions that share a
task name. Shared by the walks (walk.py) and the descriptions (describe.py).
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Sequence, Union

from kfp_lineage import errors
from kfp_lineage import task_paths as task_paths_module
from kfp_lineage.lineage import graph as lineage_graph
from kfp_lineage.lineage import reader as lineage_reader
from kfp_lineage.mlmd import vocabulary

if TYPE_CHECKING:
    from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

# Parent DAG chains longer than this are treated as broken (a cycle in parent_dag_id).
_MAX_NESTING = 1000

# The properties that place an execution in its run and its task (a loop iteration is its parent DAG's
# iteration_index, read only where paths are needed).
PLACE_PROPERTIES = (vocabulary.TASK_NAME, vocabulary.PARENT_DAG_ID)

# A str is any reference `kfp-lineage trace` takes: an id ("13"), a URI or RUN_ID/TASK/OUTPUT (references.py).
ArtifactRef = Union["mlmd_pb.Artifact", lineage_graph.Artifact, int, str]


def start_graph(reader: lineage_reader.Reader, graph: lineage_graph.LineageGraph, artifact: ArtifactRef) -> int:
    """Puts the artifact a walk starts at into the graph (graph.artifact_id) and returns its id.

    Raises:
        InvalidInputError: no artifact has this id.
    """
    artifact_id = artifact if isinstance(artifact, int) else artifact.id
    graph.artifact_id = artifact_id
    graph.artifacts.update(reader.artifacts([artifact_id]))
    if artifact_id not in graph.artifacts:
        raise errors.InvalidInputError(f"no artifact with id {artifact_id} in this store")
    return artifact_id


def add_producers(reader: lineage_reader.Reader, graph: lineage_graph.LineageGraph,
                  output_events: Sequence[lineage_graph.Event], properties: Optional[Sequence[str]] = None) -> None:
    """Adds to the graph, for each artifact of these OUTPUT events, the one execution that made it."""
    if not output_events:
        return
    missing = sorted({e.execution_id for e in output_events} - graph.executions.keys())
    loaded = reader.executions(missing, properties)
    candidates: Dict[int, List[lineage_graph.Event]] = {}
    for event in output_events:
        if event.execution_id in loaded or event.execution_id in graph.executions:
            candidates.setdefault(event.artifact_id, []).append(event)
    for artifact_id, events in candidates.items():
        chosen = min(events, key=lambda e: _producer_rank(graph.executions.get(e.execution_id)
                                                          or loaded[e.execution_id]))
        execution = graph.executions.get(chosen.execution_id) or loaded[chosen.execution_id]
        graph.executions[execution.id] = execution
        graph.add_event(chosen)
        graph.artifacts[artifact_id].producer_id = execution.id


def choose_producers(graph: lineage_graph.LineageGraph, output_events: Sequence[lineage_graph.Event]) -> None:
    """Sets each artifact's producer among executions already in the graph: the original over cache hits."""
    best: Dict[int, lineage_graph.Execution] = {}
    executions = graph.executions
    for _, artifact_id, execution_id, _ in output_events:
        execution = executions.get(execution_id)
        if execution is None:
            continue
        current = best.get(artifact_id)
        if current is None:
            best[artifact_id] = execution
        elif (current.state == "CACHED" and execution.state != "CACHED") or (
                (current.state == "CACHED") == (execution.state == "CACHED") and execution.id < current.id):
            best[artifact_id] = execution  # _producer_rank, inlined: this loop sees every output
    artifacts = graph.artifacts
    for artifact_id, execution in best.items():
        artifacts[artifact_id].producer_id = execution.id


def _producer_rank(execution: lineage_graph.Execution) -> tuple:
    """Lower is a better producer: a real run beats a cache hit, then the earliest wins."""
    return (execution.state == "CACHED", execution.id)


def resolve_runs(reader: lineage_reader.Reader, graph: lineage_graph.LineageGraph) -> None:
    """Sets every execution's and artifact's run id, walking parent_dag_id up to the root DAG (`run/<run id>`),
    a batch per nesting level; and fills graph.runs with each run's pipeline."""
    parent_of: Dict[int, Optional[int]] = {}
    name_of: Dict[int, str] = {}
    for execution in graph.executions.values():
        parent_of[execution.id] = execution.parent_dag_id
        name_of[execution.id] = execution.name
    frontier = {p for p in parent_of.values() if p is not None and p not in parent_of}
    for _ in range(_MAX_NESTING):
        if not frontier:
            break
        found = reader.execution_parents(sorted(frontier))
        for execution_id in frontier:
            parent_of[execution_id], name_of[execution_id] = found.get(execution_id, (None, ""))
        frontier = {p for p, _ in found.values() if p is not None and p not in parent_of}
    run_of: Dict[int, Optional[str]] = {}  # execution id -> run id, filled root first (memoized walk)

    def resolve(execution_id: int) -> Optional[str]:
        chain: List[int] = []
        node = execution_id
        while node not in run_of:
            if node in chain or len(chain) >= _MAX_NESTING:  # a parent_dag_id cycle: ask the run context
                run_of[node] = reader.run_of_execution(execution_id)
                break
            chain.append(node)
            parent = parent_of.get(node)
            if parent is None:
                root_run = vocabulary.run_id_of_root(name_of.get(node, ""))
                run_of[node] = root_run if root_run is not None else reader.run_of_execution(node)
                break
            node = parent
        for member in chain:
            run_of.setdefault(member, run_of[node])
        return run_of[execution_id]

    for execution in graph.executions.values():
        if execution.run_id is None:
            parent = parent_of[execution.id]
            # Most executions sit under an already resolved DAG: the walk would stop there after one step.
            if parent is not None and parent in run_of and execution.id not in run_of:
                run_of[execution.id] = execution.run_id = run_of[parent]
            else:
                execution.run_id = resolve(execution.id)
    executions = graph.executions
    for artifact in graph.artifacts.values():
        if artifact.run_id is None and artifact.producer_id is not None:
            producer = executions.get(artifact.producer_id)
            if producer is not None:
                artifact.run_id = producer.run_id
    run_ids = sorted({e.run_id for e in graph.executions.values() if e.run_id} - graph.runs.keys())
    pipelines = reader.pipelines_of(run_ids) if run_ids else {}
    for run_id in run_ids:
        graph.runs[run_id] = lineage_graph.Run(run_id=run_id, pipeline=pipelines.get(run_id))


def task_paths(executions: Iterable[lineage_graph.Execution]) -> Dict[int, str]:
    """execution id -> task path in its run, in kfp_lineage.task_paths' notation ("" for the root DAG;
    "condition-1/deploy"; "for-loop-2/iteration-0/train" inside a loop). A parent_dag_id cycle ends the path."""
    return task_paths_module.paths_of({
        e.id: task_paths_module.TaskNode(e.parent_dag_id, e.task_name, e.iteration_index) for e in executions})


def name_namesakes(reader: lineage_reader.Reader, graph: lineage_graph.LineageGraph) -> None:
    """Gives a task path (`for-loop-2/iteration-0/train`, `inner/train`) to executions that share their task name with
    another execution of the same run in the graph, so the views can tell them apart; the rest keep their short
    name. Reads the parent DAGs of those executions only, a batch per nesting level."""
    by_name: Dict[tuple, List[lineage_graph.Execution]] = collections.defaultdict(list)
    for execution in graph.executions.values():
        if not execution.is_dag and execution.path is None:
            by_name[(execution.run_id, execution.task_name)].append(execution)
    namesakes = [e for group in by_name.values() if len(group) > 1 for e in group]
    if not namesakes:
        return
    known: Dict[int, lineage_graph.Execution] = {e.id: e for e in namesakes}
    wanted = (vocabulary.TASK_NAME, vocabulary.ITERATION_INDEX, vocabulary.PARENT_DAG_ID)
    frontier = {e.parent_dag_id for e in namesakes} - {None}
    for _ in range(_MAX_NESTING):
        missing = sorted(i for i in frontier if i not in known)
        if not missing:
            break
        found = reader.executions(missing, wanted)
        known.update(found)
        frontier = {e.parent_dag_id for e in found.values()} - {None}
    paths = task_paths(known.values())
    for execution in namesakes:
        execution.path = paths.get(execution.id)

