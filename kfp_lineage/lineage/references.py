"""Finding what a user names: an artifact by id, URI or `RUN_ID/TASK/OUTPUT`, and a run by id or `latest`; errors
say what is missing and where to look.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, List, Optional

from kfp_lineage import errors, task_paths
from kfp_lineage.lineage import graph as lineage_graph
from kfp_lineage.lineage import placement
from kfp_lineage.lineage import reader as lineage_reader
from kfp_lineage.lineage import runs as lineage_runs
from kfp_lineage.mlmd import vocabulary

if TYPE_CHECKING:
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

LATEST = "latest"  # the newest finished run, wherever a run id is read
_LOG = logging.getLogger(__name__)
_FIRST_BATCH = 8  # runs read at first when looking for the newest finished one; then four times more each time


def artifact_ref(store: Any, artifact: Any) -> Any:
    """`artifact` as trace/impact/describe take it: a str reference (an id, a URI, RUN_ID/TASK/OUTPUT) is looked
    up on `store` (a store or a Reader) as the CLI does; an id, an MLMD artifact or a graph artifact is returned
    as it is."""
    return resolve_artifact(lineage_reader.reader_for(store), artifact) if isinstance(artifact, str) else artifact


def find_artifact(store: metadata_store.MetadataStore, reference: str) -> mlmd_pb.Artifact:
    """Finds one artifact by MLMD id, by URI, or by `RUN_ID/TASK/OUTPUT` (RUN_ID may be `latest`).

    TASK is a task name, or a task path inside its run (`condition-1/deploy`, `for-loop-2/iteration-0/train`, or
    `for-loop-2[0]/train`: kfp_lineage.task_paths reads both spellings of a loop iteration).

    Args:
        store: an open ml-metadata store.
        reference: the artifact reference as a user typed it.

    Returns:
        The artifact.

    Raises:
        InvalidInputError: nothing matches (the message says why: no such id, URI, run, task or output, or an
            empty store), or a URI or task output matches several artifacts (their ids are listed).
    """
    found = resolve_artifact(lineage_reader.reader_for(store), reference)
    return store.get_artifacts_by_id([found.id])[0]


def resolve_artifact(reader: lineage_reader.Reader, reference: str) -> lineage_graph.Artifact:
    """find_artifact on a reader: the same lookups and errors, the artifact as a lineage graph node.

    Raises:
        InvalidInputError: as find_artifact.
    """
    if reference.isdigit():
        found = reader.artifacts([int(reference)])
        if not found:
            refuse_empty_store(reader)
            raise errors.InvalidInputError(
                f"no artifact with id {reference} in this store: `kfp-lineage runs` and `kfp-lineage show RUN_ID` "
                "list the artifacts"
            )
        return found[int(reference)]
    if "://" not in reference and not reference.startswith("/") and reference.count("/") >= 2:
        return _find_task_output(reader, reference)
    by_uri = reader.artifacts_by_uri(reference)
    if not by_uri:
        refuse_empty_store(reader)
        raise errors.InvalidInputError(
            f"no artifact has URI {reference}: pass an artifact id, a URI, or RUN_ID/TASK/OUTPUT"
        )
    if len(by_uri) > 1:
        ids = ", ".join(str(i) for i in sorted(by_uri))
        raise errors.InvalidInputError(f"{len(by_uri)} artifacts have URI {reference} (ids {ids}): pass one id")
    return next(iter(by_uri.values()))


def refuse_empty_store(store: lineage_reader.Store) -> None:
    """Raises the error that explains an empty store (no artifacts, or runs with parameters only); returns when
    the store has artifacts. `store` is an ml-metadata store or a Reader."""
    reader = lineage_reader.reader_for(store)
    if reader.has_artifacts():
        return
    if reader.runs(1):
        raise errors.InvalidInputError(
            "this store's runs recorded no artifacts (only parameters): `kfp-lineage show RUN_ID` shows a run")
    raise errors.InvalidInputError("the store has no artifacts yet: run a pipeline with `kfp-lineage run` first")


def latest_run(store: metadata_store.MetadataStore) -> mlmd_pb.Context:
    """The system.PipelineRun context of the newest finished run (see latest_finished_run).

    Args:
        store: an open ml-metadata store.

    Returns:
        The run's context.

    Raises:
        InvalidInputError: the store has no runs, or none has finished.
    """
    run = find_run(lineage_reader.reader_for(store), LATEST)
    return store.get_context_by_type_and_name(vocabulary.RUN_CONTEXT_TYPE, run.run_id)


def _find_task_output(reader: lineage_reader.Reader, reference: str) -> lineage_graph.Artifact:
    run_id, rest = reference.split("/", 1)
    task_path, output = rest.rsplit("/", 1)
    run = find_run(reader, run_id)
    name = run.run_id
    executions = reader.run_executions(run.context_id)
    paths = placement.task_paths(executions)
    wanted = task_paths.normalize_path(task_path)
    tasks = [e for e in executions if paths.get(e.id) == wanted]
    if not tasks and task_paths.SEPARATOR not in wanted:  # a bare task name, wherever it sits in the run
        tasks = [e for e in executions if not e.is_dag and e.task_name == task_path]
    if not tasks:
        raise errors.InvalidInputError(
            f"run {name} has no task {task_path!r}: `kfp-lineage show {name}` lists its tasks")
    if all(e.is_dag for e in tasks):
        raise errors.InvalidInputError(
            f"{task_path!r} in run {name} is a pipeline or control-flow group, whose outputs are its tasks' "
            f"outputs: name the inner task (`kfp-lineage show {name}` lists them)")
    tasks = [e for e in tasks if not e.is_dag]
    events = reader.events(execution_ids=sorted(e.id for e in tasks), types=("OUTPUT",))
    ids = sorted({e.artifact_id for e in events if e.key == output})
    if not ids:
        raise errors.InvalidInputError(
            f"task {task_path!r} of run {name} recorded no output {output!r}: "
            f"`kfp-lineage show {name}` lists its outputs")
    if len(ids) > 1:
        raise errors.InvalidInputError(
            f"task {task_path!r} of run {name} has {len(ids)} outputs {output!r} (ids "
            f"{', '.join(map(str, ids))}): pass one id"
        )
    return reader.artifacts(ids)[ids[0]]


def find_run(reader: lineage_reader.Reader, run_id: str) -> lineage_graph.Run:
    """The run of this id, or the newest finished run for `latest` (latest_finished_run).

    Raises:
        InvalidInputError: no such run, or `latest` on a store without a finished run.
    """
    if run_id == LATEST:
        return latest_finished_run(reader)
    run = reader.run(run_id)
    if run is None:
        raise errors.InvalidInputError(f"no run {run_id!r} in this store: `kfp-lineage runs` lists them")
    return run


def latest_finished_run(reader: lineage_reader.Reader, pipeline: Optional[str] = None) -> lineage_graph.Run:
    """The newest run (of `pipeline`, when given) that finished: its state (runs.summarize_run: the root DAG's, or read from the tasks of a root
    the KFP backend left RUNNING) is not RUNNING. A run still running, or whose runner died before `kfp-lineage
    recover` closed it, has not finished: its outputs may be missing or change. When newer runs are skipped, a
    warning on this module's logger names them (the CLI prints it on stderr as `note: ...`).

    Raises:
        InvalidInputError: the store has no runs, or none of them finished (the message names the newest).
    """
    limit = _FIRST_BATCH
    unfinished: List[lineage_graph.Run] = []
    while True:
        runs = reader.runs(limit, pipeline)
        if not runs:
            raise errors.InvalidInputError("the store has no pipeline runs yet: run one with `kfp-lineage run`")
        for run in runs[len(unfinished):]:
            lineage_runs.summarize_run(run, reader.run_executions(run.context_id, placement.PLACE_PROPERTIES))
            if run.state != "RUNNING":
                if unfinished:
                    _LOG.warning("note: `latest` is run %s, the newest that finished; %s not finished yet: %s "
                                 "(pass a run id to read one)", run.run_id,
                                 "1 newer run has" if len(unfinished) == 1 else f"{len(unfinished)} newer runs have",
                                 ", ".join(r.run_id for r in unfinished[:5]) + (", ..." if len(unfinished) > 5 else ""))
                return run
            unfinished.append(run)
        if len(runs) < limit:
            raise errors.InvalidInputError(
                f"no run in this store has finished yet (the newest, {runs[0].run_id}, is RUNNING): pass its run id "
                "to read it anyway, or `kfp-lineage recover` a run whose runner died")
        limit *= 4
