"""Finding what a user names: an artifact by id, URI or `RUN_ID/TASK/OUTPUT`, and a run by id or `latest`; errors
say what is missing and where to look.
"""

from __future__ import annotations

from typing import Any

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage import errors, task_paths
from kfp_lineage.lineage import graph as lineage_graph
from kfp_lineage.lineage import mlmd_reader
from kfp_lineage.lineage import placement
from kfp_lineage.lineage import reader as lineage_reader
from kfp_lineage.mlmd import vocabulary

LATEST = "latest"  # the newest run, wherever a run id is read


_LATEST_WINDOW = 20  # how many of the newest runs `latest` looks through for a finished one


def resolve_artifact(store: metadata_store.MetadataStore, artifact: Any) -> Any:
    """`artifact` as trace/impact/describe take it: a str reference is looked up (find_artifact), as the CLI does;
    an id, an MLMD artifact or a graph artifact is returned as it is."""
    return find_artifact(store, artifact) if isinstance(artifact, str) else artifact


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
    if reference.isdigit():
        found = store.get_artifacts_by_id([int(reference)])
        if not found:
            refuse_empty_store(store)
            raise errors.InvalidInputError(
                f"no artifact with id {reference} in this store: `kfp-lineage runs` and `kfp-lineage show RUN_ID` "
                "list the artifacts"
            )
        return found[0]
    if "://" not in reference and not reference.startswith("/") and reference.count("/") >= 2:
        return _find_task_output(store, reference)
    found = store.get_artifacts_by_uri(reference)
    if not found:
        refuse_empty_store(store)
        raise errors.InvalidInputError(
            f"no artifact has URI {reference}: pass an artifact id, a URI, or RUN_ID/TASK/OUTPUT"
        )
    if len(found) > 1:
        ids = ", ".join(str(a.id) for a in sorted(found, key=lambda a: a.id))
        raise errors.InvalidInputError(f"{len(found)} artifacts have URI {reference} (ids {ids}): pass one id")
    return found[0]


def refuse_empty_store(store: metadata_store.MetadataStore) -> None:
    """Raises the error that explains an empty store (no artifacts, or runs with parameters only); returns when
    the store has artifacts."""
    if store.get_artifacts(list_options=metadata_store.ListOptions(limit=1)):
        return
    if mlmd_reader.MlmdReader(store).runs(1):
        raise errors.InvalidInputError(
            "this store's runs recorded no artifacts (only parameters): `kfp-lineage show RUN_ID` shows a run")
    raise errors.InvalidInputError("the store has no artifacts yet: run a pipeline with `kfp-lineage run` first")


def latest_run(store: metadata_store.MetadataStore) -> mlmd_pb.Context:
    """The most recently created system.PipelineRun context among runs that finished.

    A run kfp-lineage is still recording (or whose runner died before `recover`) has `runner_state` RUNNING and is
    passed over, so `trace latest/train/model` never reads a half-written run. Runs the KFP backend recorded carry
    no `runner_state` and always count as finished.

    Args:
        store: an open ml-metadata store.

    Returns:
        The run's context.

    Raises:
        InvalidInputError: the store has no runs, or none of its newest runs has finished.
    """
    runs = mlmd_reader.MlmdReader(store).runs(_LATEST_WINDOW)
    if not runs:
        raise errors.InvalidInputError("the store has no pipeline runs yet: run one with `kfp-lineage run`")
    for run in runs:  # newest first; usually the first one is finished, so this is one call
        context = store.get_context_by_type_and_name(vocabulary.RUN_CONTEXT_TYPE, run.run_id)
        if context is not None and _finished(context):
            return context
    raise errors.InvalidInputError(
        f"no finished run among the newest {len(runs)}: run {runs[0].run_id} is still being recorded (or its runner "
        "died: `kfp-lineage recover`); name a run id instead of `latest`")


def _finished(context: mlmd_pb.Context) -> bool:
    state = context.custom_properties.get(vocabulary.RUNNER_STATE)
    return state is None or state.string_value != "RUNNING"


def _find_run_context(store: metadata_store.MetadataStore, run_id: str) -> mlmd_pb.Context:
    run = latest_run(store) if run_id == LATEST else store.get_context_by_type_and_name(
        vocabulary.RUN_CONTEXT_TYPE, run_id)
    if run is None:
        raise errors.InvalidInputError(f"no run {run_id!r} in this store: `kfp-lineage runs` lists them")
    return run


def _find_task_output(store: metadata_store.MetadataStore, reference: str) -> mlmd_pb.Artifact:
    run_id, rest = reference.split("/", 1)
    task_path, output = rest.rsplit("/", 1)
    run = _find_run_context(store, run_id)
    reader = mlmd_reader.MlmdReader(store)
    executions = reader.run_executions(run.id)
    paths = placement.task_paths(executions)
    wanted = task_paths.normalize_path(task_path)
    tasks = [e for e in executions if paths.get(e.id) == wanted]
    if not tasks and task_paths.SEPARATOR not in wanted:  # a bare task name, wherever it sits in the run
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


def find_run(reader: lineage_reader.Reader, run_id: str) -> lineage_graph.Run:
    """The run of this id, or the newest run for `latest`.

    Raises:
        InvalidInputError: no such run, or `latest` on a store without runs.
    """
    if run_id == LATEST:
        runs = reader.runs(1)
        if not runs:
            raise errors.InvalidInputError("the store has no pipeline runs yet: run one with `kfp-lineage run`")
        return runs[0]
    run = reader.run(run_id)
    if run is None:
        raise errors.InvalidInputError(f"no run {run_id!r} in this store: `kfp-lineage runs` lists them")
    return run
