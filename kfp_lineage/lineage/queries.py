"""Lineage queries over any MLMD store written by kfp-lineage or the KFP backend: find artifacts and runs, trace
upstream, impact downstream, describe one run or one artifact.

Every walk costs a fixed number of batched reads per level (kfp_lineage.lineage.reader: plain ml-metadata calls,
or read-only SQL on a SQLite store), never one call per node and never filter_query. Artifacts and executions
already seen are not walked again, so cycles and diamonds end, and `depth` bounds long chains.
"""

from __future__ import annotations

import collections
import re
from typing import Dict, Iterable, List, Optional, Sequence, Set, Union

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage import errors
from kfp_lineage.lineage import graph as lineage_graph
from kfp_lineage.lineage import mlmd_reader
from kfp_lineage.lineage import reader as lineage_reader
from kfp_lineage.mlmd import vocabulary

DEFAULT_DEPTH = 20
DEFAULT_RUN_LIMIT = 20
# A trace lists what consumed the traced artifact (evaluations, deployments); past this many consumers the
# newest are kept and the artifact is marked truncated (`kfp-lineage impact` lists them all).
MAX_TRACE_CONSUMERS = 200
# Parent DAG chains longer than this are treated as broken (a cycle in parent_dag_id).
_MAX_NESTING = 1000

# What `impact` reads unless full=True: for every execution the properties that place it (task, run, cache hit;
# a loop iteration is its parent DAG's iteration_index, not read here); for models and endpoints their name, URI,
# state and endpoint properties; for every other artifact its id and type.
SUMMARY_EXECUTION_PROPERTIES = (vocabulary.TASK_NAME, vocabulary.PARENT_DAG_ID)
CACHE_HIT_PROPERTIES = (vocabulary.CACHED_EXECUTION_ID,)  # read for CACHED executions only
# The first one marks a generic artifact as an endpoint.
SUMMARY_ENDPOINT_PROPERTIES = (vocabulary.ENDPOINT_URI, vocabulary.VERTEX_RESOURCE_NAME, vocabulary.DEPLOYED_AT,
                               vocabulary.DEPLOYED_BY)
# Generic artifact types that may be an endpoint (recording endpoint_uri); google.* types are checked too.
ENDPOINT_CANDIDATE_TYPES = frozenset({vocabulary.GENERIC_ARTIFACT_TYPE})
_UNFINISHED_STATES = frozenset({"RUNNING", "NEW", "UNKNOWN"})

ArtifactRef = Union[mlmd_pb.Artifact, lineage_graph.Artifact, int]


def find_artifact(store: metadata_store.MetadataStore, reference: str) -> mlmd_pb.Artifact:
    """Finds one artifact by MLMD id, by URI, or by `RUN_ID/TASK/OUTPUT` (RUN_ID may be `latest`).

    TASK is a task name, or a task path inside its run (`condition-1/deploy`, `for-loop-2[0]/train`).

    Args:
        store: an open ml-metadata store.
        reference: the artifact reference as a user typed it.

    Returns:
        The artifact.

    Raises:
        InvalidInputError: nothing matches (the message says why: no such id, URI, run, task or output, or an
            empty store), or a URI or task output matches several artifacts (their ids are listed).
    """
    if reference.isdigit():
        found = store.get_artifacts_by_id([int(reference)])
        if not found:
            _refuse_empty_store(store)
            raise errors.InvalidInputError(
                f"no artifact with id {reference} in this store: `kfp-lineage runs` and `kfp-lineage show RUN_ID` "
                "list the artifacts"
            )
        return found[0]
    if "://" not in reference and not reference.startswith("/") and reference.count("/") >= 2:
        return _find_task_output(store, reference)
    found = store.get_artifacts_by_uri(reference)
    if not found:
        _refuse_empty_store(store)
        raise errors.InvalidInputError(
            f"no artifact has URI {reference}: pass an artifact id, a URI, or RUN_ID/TASK/OUTPUT"
        )
    if len(found) > 1:
        ids = ", ".join(str(a.id) for a in sorted(found, key=lambda a: a.id))
        raise errors.InvalidInputError(f"{len(found)} artifacts have URI {reference} (ids {ids}): pass one id")
    return found[0]


def _refuse_empty_store(store: metadata_store.MetadataStore) -> None:
    if store.get_artifacts(list_options=metadata_store.ListOptions(limit=1)):
        return
    if mlmd_reader.MlmdReader(store).runs(1):
        raise errors.InvalidInputError(
            "this store's runs recorded no artifacts (only parameters): `kfp-lineage show RUN_ID` shows a run")
    raise errors.InvalidInputError("the store has no artifacts yet: run a pipeline with `kfp-lineage run` first")


def latest_run(store: metadata_store.MetadataStore) -> mlmd_pb.Context:
    """The most recently created system.PipelineRun context.

    Args:
        store: an open ml-metadata store.

    Returns:
        The run's context.

    Raises:
        InvalidInputError: the store has no runs.
    """
    runs = mlmd_reader.MlmdReader(store).runs(1)
    if not runs:
        raise errors.InvalidInputError("the store has no pipeline runs yet: run one with `kfp-lineage run`")
    return store.get_context_by_type_and_name(vocabulary.RUN_CONTEXT_TYPE, runs[0].run_id)


def _find_run_context(store: metadata_store.MetadataStore, run_id: str) -> mlmd_pb.Context:
    run = latest_run(store) if run_id == "latest" else store.get_context_by_type_and_name(
        vocabulary.RUN_CONTEXT_TYPE, run_id)
    if run is None:
        raise errors.InvalidInputError(f"no run {run_id!r} in this store: `kfp-lineage runs` lists them")
    return run


# `<loop>/iteration-<i>` (how runs, lineage specs and `check` name a loop iteration) as `<loop>[<i>]`.
_ITERATION_SEGMENT = re.compile(r"/iteration-(\d+)(?=/|$)")


def _find_task_output(store: metadata_store.MetadataStore, reference: str) -> mlmd_pb.Artifact:
    run_id, rest = reference.split("/", 1)
    task_path, output = rest.rsplit("/", 1)
    run = _find_run_context(store, run_id)
    reader = mlmd_reader.MlmdReader(store)
    executions = reader.run_executions(run.id)
    paths = task_paths(executions)
    wanted = {task_path, _ITERATION_SEGMENT.sub(r"[\1]", task_path)}  # run's `for-loop-2/iteration-0` form too
    tasks = [e for e in executions if paths.get(e.id) in wanted]
    if not tasks and "/" not in task_path:  # a bare task name, wherever it sits in the run
        tasks = [e for e in executions if not e.is_dag and e.task_name == task_path]
    if not tasks:
        raise errors.InvalidInputError(
            f"run {run.name} has no task {task_path!r}: `kfp-lineage show {run.name}` lists its tasks")
    if all(e.is_dag for e in tasks):
        raise errors.InvalidInputError(
            f"{task_path!r} in run {run.name} is a pipeline or control-flow group, whose outputs are its tasks' "
            f"outputs: name the inner task (`kfp-lineage show {run.name}` lists them)")
    tasks = [e for e in tasks if not e.is_dag]
    events = reader.events(execution_ids=sorted(e.id for e in tasks), types=("OUTPUT",))
    ids = sorted({e.artifact_id for e in events if e.key == output})
    if not ids:
        raise errors.InvalidInputError(
            f"task {task_path!r} of run {run.name} recorded no output {output!r}: "
            f"`kfp-lineage show {run.name}` lists its outputs")
    if len(ids) > 1:
        raise errors.InvalidInputError(
            f"task {task_path!r} of run {run.name} has {len(ids)} outputs {output!r} (ids "
            f"{', '.join(map(str, ids))}): pass one id"
        )
    return store.get_artifacts_by_id(ids)[0]


def trace(store: metadata_store.MetadataStore, artifact: ArtifactRef, depth: int = DEFAULT_DEPTH, *,
          sql: bool = True) -> lineage_graph.LineageGraph:
    """The upstream lineage of an artifact: its producer, the producer's inputs, their producers, and so on, plus
    what consumed the artifact directly (its evaluations and deployments).

    A cache hit's OUTPUT events point at the original artifacts; the producer is the original (non-CACHED)
    execution.

    Args:
        store: an open ml-metadata store.
        artifact: the artifact, or its id.
        depth: how many producer steps to walk; the producers at the limit are listed in `truncated` when they
            have inputs left out.
        sql: allow the read-only SQL reader on SQLite stores (False: ml-metadata calls only).

    Returns:
        The lineage graph, view "trace".

    Raises:
        InvalidInputError: no artifact has this id.
    """
    reader = lineage_reader.reader_for(store, sql)
    graph = lineage_graph.LineageGraph(view="trace", depth=depth)
    root_id = _start(reader, graph, artifact)
    root_events = reader.events(artifact_ids=[root_id])
    walked: Set[int] = set()
    level = [root_id]
    level_outputs = [e for e in root_events if e.type == "OUTPUT"]
    for current in range(depth + 1):
        _add_producers(reader, graph, level_outputs)
        producer_ids = sorted({graph.artifacts[a].producer_id for a in level
                               if graph.artifacts[a].producer_id is not None} - walked)
        if not producer_ids:
            break
        walked.update(producer_ids)
        inputs = reader.events(execution_ids=producer_ids, types=("INPUT",))
        if current == depth:
            graph.truncated.extend(("execution", i) for i in sorted({e.execution_id for e in inputs}))
            break
        new_ids = sorted({e.artifact_id for e in inputs} - graph.artifacts.keys())
        graph.artifacts.update(reader.artifacts(new_ids))
        for event in inputs:
            if event.artifact_id in graph.artifacts:
                graph.add_event(event)
        level = [i for i in new_ids if i in graph.artifacts]
        level_outputs = reader.events(artifact_ids=level, types=("OUTPUT",))
    _add_direct_consumers(reader, graph, root_id, [e for e in root_events if e.type == "INPUT"])
    _resolve_runs(reader, graph)
    _name_namesakes(reader, graph)
    return graph


def impact(store: metadata_store.MetadataStore, artifact: ArtifactRef, depth: int = DEFAULT_DEPTH, *,
           full: bool = False, sql: bool = True) -> lineage_graph.LineageGraph:
    """Everything downstream of an artifact: the executions that read it, what they wrote, what read that, and so
    on (models, metrics, endpoints), each with its run. Cache hits that re-used an output are included.

    Args:
        store: an open ml-metadata store.
        artifact: the artifact, or its id.
        depth: how many consumer steps to walk; artifacts at the limit that have consumers are listed in
            `truncated`.
        full: read every property of every node and every event key. By default only what the text view shows
            is read, which keeps an impact over thousands of runs fast: executions with
            SUMMARY_EXECUTION_PROPERTIES (and CACHE_HIT_PROPERTIES of cache hits); models and endpoints with
            their name, URI, state and SUMMARY_ENDPOINT_PROPERTIES; every other artifact by id and type only
            (`details` False); the input names of INPUT events (OUTPUT event keys are "").
        sql: allow the read-only SQL reader on SQLite stores (False: ml-metadata calls only).

    Returns:
        The lineage graph, view "impact"; it also holds the artifact's producer.

    Raises:
        InvalidInputError: no artifact has this id.
    """
    reader = lineage_reader.reader_for(store, sql)
    return _impact(reader, artifact, depth, full)


def _impact(reader: lineage_reader.Reader, artifact: ArtifactRef, depth: int, full: bool
            ) -> lineage_graph.LineageGraph:
    """impact's walk, level by level, with its reader."""
    graph = lineage_graph.LineageGraph(view="impact", depth=depth, full=full)
    execution_properties = None if full else SUMMARY_EXECUTION_PROPERTIES
    root_id = _start(reader, graph, artifact)
    root_events = reader.events(artifact_ids=[root_id])
    _add_producers(reader, graph, [e for e in root_events if e.type == "OUTPUT"], execution_properties)
    seen_executions: Set[int] = set(graph.executions)
    inputs = [e for e in root_events if e.type == "INPUT"]
    for current in range(depth + 1):
        if not inputs:
            break
        if current == depth:
            graph.truncated.extend(("artifact", i) for i in sorted({e.artifact_id for e in inputs}))
            break
        new_ids = sorted({e.execution_id for e in inputs} - seen_executions)
        seen_executions.update(new_ids)
        consumers = reader.executions(new_ids, execution_properties, dags=False)
        if not full:
            hits = [i for i, e in consumers.items() if e.state == "CACHED"]
            for execution_id, values in reader.execution_properties(hits, CACHE_HIT_PROPERTIES).items():
                consumers[execution_id].properties.update(values)
        graph.executions.update(consumers)
        executions = graph.executions
        artifacts = graph.artifacts
        graph.add_events(e for e in inputs if e.execution_id in executions)  # new consumers and ones seen earlier
        if full:
            outputs = reader.events(execution_ids=sorted(consumers), types=("OUTPUT",))
            found = reader.artifacts(sorted({e.artifact_id for e in outputs} - artifacts.keys()))
        else:
            outputs, types = reader.output_events(sorted(consumers))
            found = _summary_artifacts(reader, {i: t for i, t in types.items() if i not in artifacts})
        artifacts.update(found)
        graph.add_events(e for e in outputs if e.artifact_id in artifacts)
        _choose_producers(graph, [e for e in outputs if e.artifact_id in found])
        inputs = reader.events(artifact_ids=sorted(found), types=("INPUT",))
    _resolve_runs(reader, graph)
    _name_namesakes(reader, graph)
    return graph


def _summary_artifacts(reader: lineage_reader.Reader, types: Dict[int, str]) -> Dict[int, lineage_graph.Artifact]:
    """Models and endpoints with their name, URI, state and endpoint properties; every other artifact as a stub
    that only knows its id and type (`details` False). `types`: artifact id -> type name."""
    names = set(types.values())
    maybe_endpoint = {t for t in names if t in ENDPOINT_CANDIDATE_TYPES or t.startswith(vocabulary.GOOGLE_TYPE_PREFIX)}
    always_key = {t for t in names if lineage_graph.is_model_type(t) or t in lineage_graph.ENDPOINT_TYPES}
    # A generic artifact is an endpoint when it records endpoint_uri. One read of the endpoint properties of every
    # candidate both finds the endpoints and gives their properties.
    candidates = [i for i, t in types.items() if t in maybe_endpoint]
    endpoint_properties = reader.artifact_properties(candidates, SUMMARY_ENDPOINT_PROPERTIES)
    endpoints = {i for i, values in endpoint_properties.items() if SUMMARY_ENDPOINT_PROPERTIES[0] in values}
    key = [i for i, t in types.items() if t in always_key or i in endpoints]
    found = reader.artifacts(key, ())
    for artifact_id in key:
        values = endpoint_properties.get(artifact_id)
        if values is not None:  # only candidates have them, and those in `key` are the wanted ones
            found[artifact_id].properties = values
    stub = lineage_graph.Artifact
    # Positional for speed: id, type, uri, name, state, create_time, properties, run_id, producer_id, details.
    stubs = {i: stub(i, t, "", "", "", 0, {}, None, None, False) for i, t in types.items() if i not in found}
    stubs.update(found)
    return stubs


def describe_artifact(store: metadata_store.MetadataStore, artifact: ArtifactRef, *,
                      sql: bool = True) -> lineage_graph.LineageGraph:
    """One artifact with all its properties, the execution that made it, cache hits that re-used it, and the
    executions that read it (DAG executions that only passed it on are left out).

    Args:
        store: an open ml-metadata store.
        artifact: the artifact, or its id.
        sql: allow the read-only SQL reader on SQLite stores.

    Returns:
        The lineage graph, view "artifact".

    Raises:
        InvalidInputError: no artifact has this id.
    """
    reader = lineage_reader.reader_for(store, sql)
    graph = lineage_graph.LineageGraph(view="artifact")
    root_id = _start(reader, graph, artifact)
    events = reader.events(artifact_ids=[root_id])
    executions = reader.executions(sorted({e.execution_id for e in events}))
    for event in events:
        execution = executions.get(event.execution_id)
        if execution is not None and not execution.is_dag:
            graph.executions[execution.id] = execution
            graph.add_event(event)
    _choose_producers(graph, [e for e in events if e.type == "OUTPUT" and e.execution_id in graph.executions])
    _resolve_runs(reader, graph)
    _name_namesakes(reader, graph)
    return graph


def describe_run(store: metadata_store.MetadataStore, run_id: str, *, sql: bool = True
                 ) -> lineage_graph.LineageGraph:
    """One run: every execution (DAGs included, each with its task path), the artifacts they read and wrote, and
    the run's summary (state, start, end, task counts) in `graph.runs[run_id]`.

    Args:
        store: an open ml-metadata store.
        run_id: a run id, or `latest`.
        sql: allow the read-only SQL reader on SQLite stores.

    Returns:
        The lineage graph, view "run".

    Raises:
        InvalidInputError: no such run, or `latest` on a store without runs.
    """
    reader = lineage_reader.reader_for(store, sql)
    run = _find_run(reader, run_id)
    executions = reader.run_executions(run.context_id)
    paths = task_paths(executions)
    graph = lineage_graph.LineageGraph(view="run", run_id=run.run_id)
    for execution in sorted(executions, key=lambda e: e.id):
        execution.path = paths.get(execution.id)
        execution.run_id = run.run_id
        graph.executions[execution.id] = execution
    events = reader.events(execution_ids=sorted(graph.executions))
    graph.artifacts.update(reader.artifacts(sorted({e.artifact_id for e in events})))
    for event in events:
        if event.artifact_id in graph.artifacts:
            graph.add_event(event)
    _choose_producers(graph, [e for e in events if e.type == "OUTPUT" and e.artifact_id in graph.artifacts])
    # Artifacts made elsewhere (sources, a cache hit's originals): find their producers and runs.
    outside = sorted(a.id for a in graph.artifacts.values()
                     if a.producer_id is None or graph.executions[a.producer_id].state == "CACHED")
    if outside:
        producers = lineage_graph.LineageGraph(view="run")
        producers.artifacts = {i: graph.artifacts[i] for i in outside}
        _add_producers(reader, producers, reader.events(artifact_ids=outside, types=("OUTPUT",)),
                       SUMMARY_EXECUTION_PROPERTIES)
        _resolve_runs(reader, producers)
    for artifact in graph.artifacts.values():
        if artifact.run_id is None and artifact.producer_id in graph.executions:
            artifact.run_id = run.run_id
    summarize_run(run, executions)
    graph.runs[run.run_id] = run
    return graph


def describe(store: metadata_store.MetadataStore, reference: str, *, sql: bool = True
             ) -> lineage_graph.LineageGraph:
    """A run (by run id or `latest`) or else an artifact (by id, URI or RUN_ID/TASK/OUTPUT), described.

    Args:
        store: an open ml-metadata store.
        reference: what the user typed after `kfp-lineage show`.
        sql: allow the read-only SQL reader on SQLite stores.

    Returns:
        describe_run's graph for a run, describe_artifact's for an artifact.

    Raises:
        InvalidInputError: nothing matches, or an artifact reference is ambiguous.
    """
    if reference == "latest" or store.get_context_by_type_and_name(vocabulary.RUN_CONTEXT_TYPE, reference):
        return describe_run(store, reference, sql=sql)
    if "/" not in reference and "://" not in reference and not reference.isdigit():
        _refuse_empty_store(store)
        raise errors.InvalidInputError(
            f"no run or artifact {reference!r} in this store: pass a run id (`kfp-lineage runs` lists them), "
            "an artifact id, a URI or RUN_ID/TASK/OUTPUT")
    return describe_artifact(store, find_artifact(store, reference), sql=sql)


def list_runs(store: metadata_store.MetadataStore, pipeline: Optional[str] = None,
              limit: int = DEFAULT_RUN_LIMIT, *, sql: bool = True) -> List[lineage_graph.Run]:
    """The newest runs, newest first, each summarized: pipeline, state, start, end, duration, task counts.

    Args:
        store: an open ml-metadata store.
        pipeline: only runs of this pipeline (its `pipelineInfo.name`).
        limit: at most this many runs.
        sql: allow the read-only SQL reader on SQLite stores.

    Returns:
        The runs with their summary fields filled.

    Raises:
        InvalidInputError: the store has no runs, or no pipeline of that name.
    """
    reader = lineage_reader.reader_for(store, sql)
    runs = reader.runs(limit, pipeline)
    if runs is None:
        known = ", ".join(reader.pipelines()) or "none"
        raise errors.InvalidInputError(f"no pipeline {pipeline!r} in this store: its pipelines are {known}")
    if not runs and pipeline is None:
        raise errors.InvalidInputError("the store has no pipeline runs yet: run one with `kfp-lineage run`")
    for run in runs:
        summarize_run(run, reader.run_executions(run.context_id, (vocabulary.PARENT_DAG_ID, vocabulary.TASK_NAME)))
    return runs


def summarize_run(run: lineage_graph.Run, executions: Sequence[lineage_graph.Execution]) -> None:
    """Fills a run's state, start, end and task counts from its executions.

    The state is the root DAG's. A root left RUNNING (the KFP backend never closes it) is read from the tasks:
    RUNNING while one runs, else FAILED when one failed, else COMPLETE.
    """
    roots = sorted((e for e in executions if e.parent_dag_id is None), key=lambda e: (not e.name, e.id))
    root = roots[0] if roots else None
    tasks = [e for e in executions if e is not root]
    run.task_states = dict(collections.Counter(e.state for e in tasks))
    run.start_time = min((e.create_time for e in executions if e.create_time), default=run.create_time or None)
    run.end_time = max((e.update_time for e in executions if e.update_time), default=None)
    if root is not None and root.state not in _UNFINISHED_STATES:
        run.state = root.state
    elif any(e.state in _UNFINISHED_STATES for e in tasks) or not tasks:
        run.state = "RUNNING"
    elif "FAILED" in run.task_states:
        run.state = "FAILED"
    else:
        run.state = "COMPLETE"


def task_paths(executions: Iterable[lineage_graph.Execution]) -> Dict[int, str]:
    """execution id -> task path in its run ("" for the root DAG; "condition-1/deploy"; a loop iteration DAG
    adds `[index]` to its loop's segment: "for-loop-2[0]/train"). A parent_dag_id cycle ends the path."""
    by_id = {e.id: e for e in executions}
    paths: Dict[int, str] = {}
    for execution in by_id.values():
        chain: List[lineage_graph.Execution] = []
        node: Optional[lineage_graph.Execution] = execution
        while node is not None and node.id not in paths and node not in chain:
            chain.append(node)
            node = by_id.get(node.parent_dag_id) if node.parent_dag_id is not None else None
        base = paths.get(node.id, "") if node is not None else None
        for member in reversed(chain):
            parent = by_id.get(member.parent_dag_id) if member.parent_dag_id is not None else None
            if member.parent_dag_id is None:
                path = ""
            elif parent is None or base is None:
                path = _segment(member)  # the parent is outside the run, or the chain loops
            elif member.iteration_index is not None and member.task_name == parent.task_name:
                path = f"{base}[{member.iteration_index}]"
            else:
                path = f"{base}/{_segment(member)}" if base else _segment(member)
            paths[member.id] = path
            base = path
    return paths


def _name_namesakes(reader: lineage_reader.Reader, graph: lineage_graph.LineageGraph) -> None:
    """Gives a task path (`for-loop-2[0]/train`, `inner/train`) to executions that share their task name with
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


def _segment(execution: lineage_graph.Execution) -> str:
    index = execution.iteration_index
    return execution.task_name + (f"[{index}]" if index is not None else "")


def _start(reader: lineage_reader.Reader, graph: lineage_graph.LineageGraph, artifact: ArtifactRef) -> int:
    artifact_id = artifact if isinstance(artifact, int) else artifact.id
    graph.artifact_id = artifact_id
    graph.artifacts.update(reader.artifacts([artifact_id]))
    if artifact_id not in graph.artifacts:
        raise errors.InvalidInputError(f"no artifact with id {artifact_id} in this store")
    return artifact_id


def _find_run(reader: lineage_reader.Reader, run_id: str) -> lineage_graph.Run:
    if run_id == "latest":
        runs = reader.runs(1)
        if not runs:
            raise errors.InvalidInputError("the store has no pipeline runs yet: run one with `kfp-lineage run`")
        return runs[0]
    run = reader.run(run_id)
    if run is None:
        raise errors.InvalidInputError(f"no run {run_id!r} in this store: `kfp-lineage runs` lists them")
    return run


def _add_producers(reader: lineage_reader.Reader, graph: lineage_graph.LineageGraph,
                   output_events: Sequence[lineage_graph.Event],
                   properties: Optional[Sequence[str]] = None) -> None:
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


def _choose_producers(graph: lineage_graph.LineageGraph, output_events: Sequence[lineage_graph.Event]) -> None:
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


def _add_direct_consumers(reader: lineage_reader.Reader, graph: lineage_graph.LineageGraph, artifact_id: int,
                          input_events: Sequence[lineage_graph.Event]) -> None:
    """Adds the executions that read the artifact (not DAGs) and what they wrote (metrics, endpoints, ...)."""
    ids = sorted({e.execution_id for e in input_events})
    executions = reader.executions(ids)
    consumers = sorted((e for e in executions.values() if not e.is_dag), key=lambda e: e.id)
    if len(consumers) > MAX_TRACE_CONSUMERS:
        consumers = consumers[-MAX_TRACE_CONSUMERS:]
        graph.truncated.append(("artifact", artifact_id))
    for execution in consumers:
        graph.executions.setdefault(execution.id, execution)
    for event in input_events:
        if event.execution_id in graph.executions:
            graph.add_event(event)
    outputs = reader.events(execution_ids=[e.id for e in consumers], types=("OUTPUT",))
    made = reader.artifacts(sorted({e.artifact_id for e in outputs} - graph.artifacts.keys()))
    graph.artifacts.update(made)
    for event in outputs:
        if event.artifact_id in made:
            graph.add_event(event)
    _choose_producers(graph, [e for e in outputs if e.artifact_id in made])


def _resolve_runs(reader: lineage_reader.Reader, graph: lineage_graph.LineageGraph) -> None:
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
