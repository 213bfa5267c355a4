"""Describing one run or one artifact: `kfp-lineage show`."""

from __future__ import annotations

from kfp_lineage import errors
from kfp_lineage.lineage import graph as lineage_graph
from kfp_lineage.lineage import placement
from kfp_lineage.lineage import reader as lineage_reader
from kfp_lineage.lineage import references
from kfp_lineage.lineage import runs

Store = lineage_reader.Store  # an open ml-metadata store, or a Reader


def describe(store: Store, reference: str, *, sql: bool = True) -> lineage_graph.LineageGraph:
    """A run (by run id or `latest`) or else an artifact (by id, URI or RUN_ID/TASK/OUTPUT), described.

    Args:
        store: an open ml-metadata store, or a Reader.
        reference: what the user typed after `kfp-lineage show`.
        sql: allow the read-only SQL reader on SQLite stores.

    Returns:
        describe_run's graph for a run, describe_artifact's for an artifact.

    Raises:
        InvalidInputError: nothing matches, or an artifact reference is ambiguous.
    """
    reader = lineage_reader.reader_for(store, sql)
    if reference == references.LATEST or reader.run(reference) is not None:
        return describe_run(reader, reference)
    if "/" not in reference and "://" not in reference and not reference.isdigit():
        references.refuse_empty_store(reader)
        raise errors.InvalidInputError(
            f"no run or artifact {reference!r} in this store: pass a run id (`kfp-lineage runs` lists them), "
            "an artifact id, a URI or RUN_ID/TASK/OUTPUT")
    return describe_artifact(reader, references.resolve_artifact(reader, reference))


def describe_artifact(store: Store, artifact: placement.ArtifactRef, *, sql: bool = True
                      ) -> lineage_graph.LineageGraph:
    """One artifact with all its properties, the execution that made it, cache hits that re-used it, and the
    executions that read it (DAG executions that only passed it on are left out).

    Args:
        store: an open ml-metadata store, or a Reader.
        artifact: the artifact, its id, or a reference as the CLI takes it ("13", a URI, RUN_ID/TASK/OUTPUT).
        sql: allow the read-only SQL reader on SQLite stores.

    Returns:
        The lineage graph, view "artifact".

    Raises:
        InvalidInputError: no artifact has this id.
    """
    artifact = references.artifact_ref(store, artifact)
    reader = lineage_reader.reader_for(store, sql)
    graph = lineage_graph.LineageGraph(view="artifact")
    root_id = placement.start_graph(reader, graph, artifact)
    events = reader.events(artifact_ids=[root_id])
    executions = reader.executions(sorted({e.execution_id for e in events}))
    for event in events:
        execution = executions.get(event.execution_id)
        if execution is not None and not execution.is_dag:
            graph.executions[execution.id] = execution
            graph.add_event(event)
    placement.choose_producers(graph, [e for e in events if e.type == "OUTPUT" and e.execution_id in graph.executions])
    placement.resolve_runs(reader, graph)
    placement.name_namesakes(reader, graph)
    return graph


def describe_run(store: Store, run_id: str, *, sql: bool = True) -> lineage_graph.LineageGraph:
    """One run: every execution (DAGs included, each with its task path), the artifacts they read and wrote, and
    the run's summary (state, start, end, task counts) in `graph.runs[run_id]`.

    Args:
        store: an open ml-metadata store, or a Reader.
        run_id: a run id, or `latest`.
        sql: allow the read-only SQL reader on SQLite stores.

    Returns:
        The lineage graph, view "run".

    Raises:
        InvalidInputError: no such run, or `latest` on a store without runs.
    """
    reader = lineage_reader.reader_for(store, sql)
    run = references.find_run(reader, run_id)
    executions = reader.run_executions(run.context_id)
    paths = placement.task_paths(executions)
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
    placement.choose_producers(graph, [e for e in events
                                       if e.type == "OUTPUT" and e.artifact_id in graph.artifacts])
    # Artifacts made elsewhere (sources, a cache hit's originals): find their producers and runs.
    outside = sorted(a.id for a in graph.artifacts.values()
                     if a.producer_id is None or graph.executions[a.producer_id].state == "CACHED")
    if outside:
        producers = lineage_graph.LineageGraph(view="run")
        producers.artifacts = {i: graph.artifacts[i] for i in outside}
        placement.add_producers(reader, producers, reader.events(artifact_ids=outside, types=("OUTPUT",)),
                                placement.PLACE_PROPERTIES)
        placement.resolve_runs(reader, producers)
    for artifact in graph.artifacts.values():
        if artifact.run_id is None and artifact.producer_id in graph.executions:
            artifact.run_id = run.run_id
    runs.summarize_run(run, executions)
    graph.runs[run.run_id] = run
    return graph
