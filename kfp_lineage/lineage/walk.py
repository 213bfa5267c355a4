"""Walking lineage across runs: `trace` (upstream of an artifact: its producer, the producer's inputs, and so on,
plus what consumed it directly) and `impact` (everything downstream of an artifact).

Every walk costs a fixed number of batched reads per level (reader.py: plain ml-metadata calls, or read-only SQL
on a SQLite store), never one call per node and never filter_query. Artifacts and executions already seen are not
walked again, so cycles and diamonds end, and `depth` bounds long chains.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Dict, Iterator, Sequence, Set

from kfp_lineage.lineage import graph as lineage_graph
from kfp_lineage.lineage import placement
from kfp_lineage.lineage import reader as lineage_reader
from kfp_lineage.lineage import references
from kfp_lineage.mlmd import vocabulary

DEFAULT_DEPTH = 20
# A trace lists what consumed the traced artifact (evaluations, deployments); past this many consumers the
# newest are kept and the artifact is marked truncated (`kfp-lineage impact` lists them all).
MAX_TRACE_CONSUMERS = 200

# What `impact` reads unless full=True: for every execution the properties that place it (task, run, cache hit;
# a loop iteration is its parent DAG's iteration_index, not read here); for models and endpoints their name, URI,
# state and endpoint properties; for every other artifact its id and type.
SUMMARY_EXECUTION_PROPERTIES = placement.PLACE_PROPERTIES
CACHE_HIT_PROPERTIES = (vocabulary.CACHED_EXECUTION_ID,)  # read for CACHED executions only
# The first one marks a generic artifact as an endpoint.
SUMMARY_ENDPOINT_PROPERTIES = (vocabulary.ENDPOINT_URI, vocabulary.VERTEX_RESOURCE_NAME, vocabulary.DEPLOYED_AT,
                               vocabulary.DEPLOYED_BY)
# Generic artifact types that may be an endpoint (recording endpoint_uri); google.* types are checked too.
ENDPOINT_CANDIDATE_TYPES = frozenset({vocabulary.GENERIC_ARTIFACT_TYPE})

ArtifactRef = placement.ArtifactRef


def trace(store: lineage_reader.Store, artifact: ArtifactRef, depth: int = DEFAULT_DEPTH, *,
          sql: bool = True) -> lineage_graph.LineageGraph:
    """The upstream lineage of an artifact: its producer, the producer's inputs, their producers, and so on, plus
    what consumed the artifact directly (its evaluations and deployments).

    A cache hit's OUTPUT events point at the original artifacts; the producer is the original (non-CACHED)
    execution.

    Args:
        store: an open ml-metadata store, or a Reader (store_access.open_reader).
        artifact: the artifact, its id, or a reference as the CLI takes it ("13", a URI, RUN_ID/TASK/OUTPUT).
        depth: how many producer steps to walk; the producers at the limit are listed in `truncated` when they
            have inputs left out.
        sql: allow the read-only SQL reader on SQLite stores (False: ml-metadata calls only).

    Returns:
        The lineage graph, view "trace".

    Raises:
        InvalidInputError: no artifact has this id.
    """
    artifact = references.artifact_ref(store, artifact)
    reader = lineage_reader.reader_for(store, sql)
    with collector_paused():
        return _trace(reader, artifact, depth)


def _trace(reader: lineage_reader.Reader, artifact: ArtifactRef, depth: int) -> lineage_graph.LineageGraph:
    """trace's walk, level by level, with its reader."""
    graph = lineage_graph.LineageGraph(view="trace", depth=depth)
    root_id = placement.start_graph(reader, graph, artifact)
    root_events = reader.events(artifact_ids=[root_id])
    walked: Set[int] = set()
    level = [root_id]
    level_outputs = [e for e in root_events if e.type == "OUTPUT"]
    for current in range(depth + 1):
        placement.add_producers(reader, graph, level_outputs)
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
    placement.resolve_runs(reader, graph)
    placement.name_namesakes(reader, graph)
    return graph


def impact(store: lineage_reader.Store, artifact: ArtifactRef, depth: int = DEFAULT_DEPTH, *,
           full: bool = False, sql: bool = True) -> lineage_graph.LineageGraph:
    """Everything downstream of an artifact: the executions that read it, what they wrote, what read that, and so
    on (models, metrics, endpoints), each with its run. Cache hits that re-used an output are included.

    Args:
        store: an open ml-metadata store, or a Reader (store_access.open_reader).
        artifact: the artifact, its id, or a reference as the CLI takes it ("13", a URI, RUN_ID/TASK/OUTPUT).
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
    artifact = references.artifact_ref(store, artifact)
    reader = lineage_reader.reader_for(store, sql)
    with collector_paused():
        return _impact(reader, artifact, depth, full)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Holds Python's cyclic garbage collector off for a walk. A large walk allocates tens of thousands of rows,
    nodes and events that form no reference cycle; the collector's passes over them while they pile up cost about
    a fifth of an impact over 1,000 runs. It runs again (and catches up) when the walk returns or raises."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _impact(reader: lineage_reader.Reader, artifact: ArtifactRef, depth: int, full: bool
            ) -> lineage_graph.LineageGraph:
    """impact's walk, level by level, with its reader."""
    graph = lineage_graph.LineageGraph(view="impact", depth=depth, full=full)
    execution_properties = None if full else SUMMARY_EXECUTION_PROPERTIES
    root_id = placement.start_graph(reader, graph, artifact)
    root_events = reader.events(artifact_ids=[root_id])
    placement.add_producers(reader, graph, [e for e in root_events if e.type == "OUTPUT"], execution_properties)
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
        placement.choose_producers(graph, [e for e in outputs if e.artifact_id in found])
        inputs = reader.events(artifact_ids=sorted(found), types=("INPUT",))
    placement.resolve_runs(reader, graph)
    placement.name_namesakes(reader, graph)
    return graph


def _summary_artifacts(reader: lineage_reader.Reader, types: Dict[int, str]) -> Dict[int, lineage_graph.Artifact]:
    """Models and endpoints with their name, URI, state and endpoint properties; every other artifact as a stub
    that only knows its id and type (`details` False). `types`: artifact id -> type name."""
    names = set(types.values())
    maybe_endpoint = {t for t in names if t in ENDPOINT_CANDIDATE_TYPES or t.startswith(vocabulary.GOOGLE_TYPE_PREFIX)}
    always_key = {t for t in names if lineage_graph.is_model_type(t) or t in lineage_graph.ENDPOINT_TYPES}
    # A generic artifact is an endpoint when it records endpoint_uri. One read of the endpoint properties of every
    # candidate both finds the endpoints and gives their properties.
    # The same read names the task logs (generic artifacts too), which the text view leaves out of its counts.
    candidates = [i for i, t in types.items() if t in maybe_endpoint]
    endpoint_properties = reader.artifact_properties(candidates,
                                                     SUMMARY_ENDPOINT_PROPERTIES + (vocabulary.DISPLAY_NAME,))
    logs = {i for i, values in endpoint_properties.items()
            if values.pop(vocabulary.DISPLAY_NAME, None) == vocabulary.EXECUTOR_LOGS}
    endpoints = {i for i, values in endpoint_properties.items() if SUMMARY_ENDPOINT_PROPERTIES[0] in values}
    key = [i for i, t in types.items() if t in always_key or i in endpoints]
    found = reader.artifacts(key, ())
    for artifact_id in key:
        values = endpoint_properties.get(artifact_id)
        if values is not None:  # only candidates have them, and those in `key` are the wanted ones
            found[artifact_id].properties = values
    stub = lineage_graph.Artifact
    # Positional for speed: id, type, uri, name, state, create_time, properties, run_id, producer_id, details.
    stubs = {i: stub(i, t, "", vocabulary.EXECUTOR_LOGS if i in logs else "", "", 0, {}, None, None, False)
             for i, t in types.items() if i not in found}
    stubs.update(found)
    return stubs


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
    placement.choose_producers(graph, [e for e in outputs if e.artifact_id in made])
