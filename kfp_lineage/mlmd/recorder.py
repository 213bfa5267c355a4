"""Recording pipeline runs in ML Metadata the way the KFP v2 backend (release 2.17.0) does.

Only plain ml-metadata calls: no SQL, no filter_query. The layout is documented in docs/mlmd-format.md.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

from ml_metadata import errors as mlmd_errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage import errors
from kfp_lineage import redaction
from kfp_lineage.mlmd import recovery
from kfp_lineage.mlmd import store as store_module
from kfp_lineage.mlmd import vocabulary

State = mlmd_pb.Execution.State


@dataclasses.dataclass(frozen=True)
class RunContexts:
    """The system.Pipeline and system.PipelineRun contexts of one run."""

    pipeline: mlmd_pb.Context
    run: mlmd_pb.Context


@dataclasses.dataclass
class OutputArtifact:
    """An artifact a task produced, not yet in the store: its type, URI and metadata from the executor."""

    schema_title: str
    uri: str
    metadata: Dict[str, Any]
    display_name: str  # "" for none (an imported artifact, as the backend's importer records it)
    store_session_info: str = vocabulary.LOCAL_STORE_SESSION_INFO


class Recorder:
    """Writes one or more runs into an ml-metadata store; safe to call from several threads.

    ml-metadata's Python client is one connection, so calls are serialised with a lock.

    A write whose result nobody waits for can be deferred (`defer`): it runs, in the order deferred, before the
    next call of any other method (a read included), or at `flush`. So the store sees the same writes in the same
    order as without deferring, only later: the runner lets a finished task's publication wait until the next
    task was launched, so the write overlaps that task's run instead of delaying its start (ml-metadata holds the
    GIL while it writes: the overlap is with the task's process, not with this process's other threads).
    """

    def __init__(self, store: metadata_store.MetadataStore):
        self.store = store
        self._lock = threading.Lock()
        self._type_ids: Dict[Tuple[str, str], int] = {}
        self._deferred: Deque[Callable[[], None]] = collections.deque()
        self._flushing = threading.RLock()  # one flusher at a time, so deferred writes keep their order
        self._in_flush = threading.local()

    def defer(self, write: Callable[[], None]) -> None:
        """Queues `write` (calls of this recorder's methods) to run before this recorder's next call or flush.

        An exception `write` raises comes out of the call that ran it; the write is not run again.
        """
        with self._lock:
            self._deferred.append(write)

    def flush(self) -> None:
        """Runs every deferred write, in order. Writes deferred while it runs are run too. A deferred write's
        own calls of this recorder do not flush (they are part of it)."""
        if getattr(self._in_flush, "active", False):
            return
        with self._flushing:
            self._in_flush.active = True
            try:
                while True:
                    with self._lock:
                        if not self._deferred:
                            return
                        write = self._deferred.popleft()
                    write()
            finally:
                self._in_flush.active = False

    def flush_quietly(self) -> None:
        """Runs every deferred write, going on after a failed one (for a run being closed on an error, which
        closes the failed write's execution too)."""
        while True:
            try:
                self.flush()
                return
            except Exception:  # noqa: BLE001 - the caller closes the run whatever failed here
                continue

    def _execution_type_id(self, name: str) -> int:
        key = ("execution", name)
        if key not in self._type_ids:
            self._type_ids[key] = _retry_transient(self.store.put_execution_type, mlmd_pb.ExecutionType(name=name))
        return self._type_ids[key]

    def _artifact_type_id(self, name: str) -> int:
        key = ("artifact", name)
        if key not in self._type_ids:
            self._type_ids[key] = _retry_transient(self.store.put_artifact_type, mlmd_pb.ArtifactType(name=name))
        return self._type_ids[key]

    def _context_type_id(self, name: str) -> int:
        key = ("context", name)
        if key not in self._type_ids:
            self._type_ids[key] = _retry_transient(self.store.put_context_type, mlmd_pb.ContextType(name=name))
        return self._type_ids[key]

    def begin_run(self, pipeline_name: str, run_id: str, run_root: str) -> RunContexts:
        """Creates (or reuses) the pipeline context and creates the run context as its child.

        Args:
            pipeline_name: `pipelineInfo.name`.
            run_id: the run's id; must not exist in the store yet.
            run_root: `<pipeline root>/<pipeline name>/<run id>`, recorded as the run's pipeline_root.

        Raises:
            InvalidInputError: a run with this id is already recorded.
        """
        self.flush()
        with self._lock:
            pipeline_type = self._context_type_id(vocabulary.PIPELINE_CONTEXT_TYPE)
            run_type = self._context_type_id(vocabulary.RUN_CONTEXT_TYPE)
            if self.store.get_context_by_type_and_name(vocabulary.RUN_CONTEXT_TYPE, run_id) is not None:
                raise errors.InvalidInputError(
                    f"run id {run_id!r} is already recorded in this store: pass a new --run-id or leave it out"
                )
            pipeline_context = self._get_or_create_context(
                pipeline_type, vocabulary.PIPELINE_CONTEXT_TYPE, pipeline_name, {})
            run_properties = {
                vocabulary.NAMESPACE: vocabulary.LOCAL_NAMESPACE,
                vocabulary.RESOURCE_NAME: vocabulary.RUN_RESOURCE_NAME,
                vocabulary.PIPELINE_ROOT: run_root,
                vocabulary.STORE_SESSION_INFO: vocabulary.LOCAL_STORE_SESSION_INFO,
                # Who runs it, so `kfp-lineage recover` can tell a live run from one whose runner was killed.
                vocabulary.RUNNER: vocabulary.runner_identity(),
                vocabulary.RUNNER_STATE: vocabulary.RUNNER_RUNNING,
            }
            run_context = mlmd_pb.Context(type_id=run_type, name=run_id)
            set_custom_properties(run_context, run_properties)
            [run_context.id] = _retry_transient(self.store.put_contexts, [run_context])
            _retry_transient(
                self.store.put_parent_contexts,
                [mlmd_pb.ParentContext(child_id=run_context.id, parent_id=pipeline_context.id)],
            )
            return RunContexts(pipeline=pipeline_context, run=run_context)

    def finish_run(self, contexts: RunContexts, state: str) -> None:
        """Marks the run context as finished by its runner (COMPLETE or FAILED)."""
        self.flush()
        with self._lock:
            [context] = self.store.get_contexts_by_id([contexts.run.id])
            context.custom_properties[vocabulary.RUNNER_STATE].string_value = state
            _retry_transient(self.store.put_contexts, [context])

    def close_run(self, contexts: RunContexts, reason: str, runner_state: str = vocabulary.RUNNER_FAILED) -> int:
        """Closes a run its runner cannot finish (it stopped on an error): every execution still RUNNING becomes
        FAILED (CANCELED when `runner_state` is CANCELED) with `failure_reason` = `reason`, and the run context
        gets `runner_state`. Under the recorder's
        lock, so no write of this process's other threads interleaves. Returns how many executions it closed.
        Deferred writes run first, as far as they can: one that fails leaves its execution to be closed here."""
        self.flush_quietly()
        with self._lock:
            return recovery.close_run(self.store, contexts.run, reason, runner_state).executions_failed

    def recover_dead_runs(self, pipeline_context: mlmd_pb.Context) -> List[recovery.RecoveredRun]:
        """Closes the runs of this pipeline whose runner died (recovery.recover), under the recorder's lock."""
        self.flush()
        with self._lock:
            return recovery.recover(self.store, pipeline_context=pipeline_context)

    def _get_or_create_context(
        self, type_id: int, type_name: str, name: str, properties: Mapping[str, Any]
    ) -> mlmd_pb.Context:
        existing = self.store.get_context_by_type_and_name(type_name, name)
        if existing is not None:
            return existing
        context = mlmd_pb.Context(type_id=type_id, name=name)
        set_custom_properties(context, properties)
        try:
            [context.id] = _retry_transient(self.store.put_contexts, [context])
        except mlmd_errors.AlreadyExistsError:  # another run created it between our get and put
            return self.store.get_context_by_type_and_name(type_name, name)
        return context

    def create_execution(
        self,
        contexts: RunContexts,
        execution_type: str,
        properties: Mapping[str, Any],
        input_artifacts: Mapping[str, Sequence[int]] = (),
        state: int = State.RUNNING,
        name: Optional[str] = None,
    ) -> int:
        """Creates an execution with INPUT events for its input artifacts, in one transaction.

        Args:
            contexts: the run's contexts; the execution and its input artifacts are linked to both.
            execution_type: one of the system.*Execution type names.
            properties: custom properties (display_name, task_name, parent_dag_id, inputs, ...).
            input_artifacts: input name -> artifact ids. ml-metadata allows one INPUT event per
                (artifact, execution); an artifact bound to several inputs gets its event under the first
                input name (sorted) and the others are listed in the `merged_input_keys` custom property.
            state: RUNNING, or CANCELED for a task whose trigger condition is false.
            name: Execution.name (only the root DAG has one: `run/<run id>`).

        Returns:
            The new execution id.
        """
        execution_id, _ = self.record_finished_execution(
            contexts, execution_type, properties, state, input_artifacts=input_artifacts, name=name
        )
        return execution_id

    def record_finished_execution(
        self,
        contexts: RunContexts,
        execution_type: str,
        properties: Mapping[str, Any],
        state: int,
        input_artifacts: Mapping[str, Sequence[int]] = (),
        output_artifacts: Mapping[str, Sequence[OutputArtifact]] = (),
        reused_output_artifacts: Mapping[str, Sequence[int]] = (),
        name: Optional[str] = None,
    ) -> Tuple[int, Dict[str, List[int]]]:
        """Creates an execution in `state` with its INPUT and OUTPUT events, in one transaction.

        create_execution uses it for executions that are about to run; it is used directly where nothing runs:
        cache hits (CACHED, OUTPUT events to the original artifacts) and importers.

        Returns:
            The execution id, and output key -> artifact ids.
        """
        self.flush()
        execution = mlmd_pb.Execution(last_known_state=state)
        if name:
            execution.name = name
        properties = dict(properties)
        events, merged = _input_events(input_artifacts)
        if merged:
            properties[vocabulary.MERGED_INPUT_KEYS] = merged
        set_custom_properties(execution, properties)
        with self._lock:
            execution.type_id = self._execution_type_id(execution_type)
            output_pairs, keys = self._output_pairs(output_artifacts)
            output_pairs += _reused_output_pairs(reused_output_artifacts, keys)
            execution_id, artifact_ids = self._put(contexts, execution, [(None, e) for e in events] + output_pairs)
        return execution_id, _group_by_key(keys, artifact_ids[len(events):])

    def publish_execution(
        self,
        contexts: RunContexts,
        execution_id: int,
        state: int,
        properties: Mapping[str, Any] = (),
        output_artifacts: Mapping[str, Sequence[OutputArtifact]] = (),
    ) -> Dict[str, List[int]]:
        """Sets an execution's final state and properties and records its outputs, in one transaction.

        Args:
            execution_id: an execution made by create_execution.
            state: COMPLETE, FAILED, CACHED or CANCELED.
            properties: custom properties to add or replace (e.g. `outputs`).
            output_artifacts: output key -> new artifacts to insert with OUTPUT events.

        Returns:
            Output key -> artifact ids, in the order given.
        """
        self.flush()
        with self._lock:
            [execution] = self.store.get_executions_by_id([execution_id])
            execution.last_known_state = state
            set_custom_properties(execution, properties)
            pairs, keys = self._output_pairs(output_artifacts)
            _, artifact_ids = self._put(contexts, execution, pairs)
        return _group_by_key(keys, artifact_ids)

    def _put(self, contexts: RunContexts, execution: mlmd_pb.Execution,
             pairs: List[Tuple[Optional[mlmd_pb.Artifact], mlmd_pb.Event]]) -> Tuple[int, List[int]]:
        """One put_execution, linked to both run contexts; returns the execution id and each pair's artifact id."""
        execution_id, artifact_ids, _ = _retry_transient(
            self.store.put_execution,
            execution,
            pairs,
            [contexts.pipeline, contexts.run],
            reuse_context_if_already_exist=True,
            force_reuse_context=True,
        )
        return execution_id, list(artifact_ids)

    def _output_pairs(
        self, output_artifacts: Mapping[str, Sequence[OutputArtifact]]
    ) -> Tuple[List[Tuple[Optional[mlmd_pb.Artifact], mlmd_pb.Event]], List[str]]:
        """(new artifact, OUTPUT event) pairs for put_execution, and the output key of each."""
        pairs: List[Tuple[Optional[mlmd_pb.Artifact], mlmd_pb.Event]] = []
        keys: List[str] = []
        for key, artifacts in dict(output_artifacts).items():
            for artifact in artifacts:
                pairs.append((self._new_artifact(artifact), _event(mlmd_pb.Event.OUTPUT, key)))
                keys.append(key)
        return pairs, keys

    def _new_artifact(self, output: OutputArtifact) -> mlmd_pb.Artifact:
        artifact = mlmd_pb.Artifact(
            type_id=self._artifact_type_id(output.schema_title), uri=redaction.redact_url(output.uri),
            state=mlmd_pb.Artifact.LIVE,
        )
        set_custom_properties(artifact, output.metadata)
        # As the backend's RecordArtifact: a display_name or store_session_info the task set is kept.
        defaults = {vocabulary.DISPLAY_NAME: output.display_name or None,
                    vocabulary.STORE_SESSION_INFO: output.store_session_info}
        set_custom_properties(artifact, {k: v for k, v in defaults.items()
                                         if v is not None and k not in artifact.custom_properties})
        return artifact

    def cache_index(self, contexts: RunContexts) -> Dict[str, int]:
        """Fingerprint -> id of the newest COMPLETE container execution with it in this pipeline's context.

        One ml-metadata call per run: executions of the system.Pipeline context, filtered here (no filter_query).
        """
        self.flush()
        with self._lock:
            executions = self.store.get_executions_by_context(contexts.pipeline.id)
        index: Dict[str, Tuple[int, int]] = {}
        for execution in executions:
            fingerprint = execution.custom_properties.get(vocabulary.CACHE_FINGERPRINT)
            if fingerprint is None or execution.last_known_state != State.COMPLETE:
                continue
            order = (execution.create_time_since_epoch, execution.id)
            if fingerprint.string_value not in index or order > index[fingerprint.string_value]:
                index[fingerprint.string_value] = order
        return {fp: order[1] for fp, order in index.items()}

    def cached_result(self, execution_id: int) -> Optional[CachedResult]:
        """The outputs of a COMPLETE execution (parameters from its `outputs` property, artifacts from its OUTPUT
        events), or None when it is gone or no longer COMPLETE."""
        self.flush()
        with self._lock:
            found = self.store.get_executions_by_id([execution_id])
            if not found or found[0].last_known_state != State.COMPLETE:
                return None
            events = [e for e in self.store.get_events_by_execution_ids([execution_id])
                      if e.type == mlmd_pb.Event.OUTPUT]
            artifacts = {a.id: a for a in self.store.get_artifacts_by_id([e.artifact_id for e in events])}
        by_key: Dict[str, List[mlmd_pb.Artifact]] = {}
        for event in events:
            if event.artifact_id in artifacts and event.path.steps:
                by_key.setdefault(event.path.steps[0].key, []).append(artifacts[event.artifact_id])
        return CachedResult(
            execution_id=execution_id,
            outputs=vocabulary.custom_property(found[0], vocabulary.OUTPUTS, {}),
            artifacts=by_key,
        )

    def find_importable(self, contexts: RunContexts, uri: str, schema_title: str,
                        metadata: Mapping[str, Any]) -> Optional[mlmd_pb.Artifact]:
        """An existing LIVE artifact an importer can reuse, as the backend looks for one: same URI and type, custom
        properties a superset of `metadata`, attributed to this pipeline's context. The newest wins."""
        self.flush()
        wanted = mlmd_pb.Artifact()
        set_custom_properties(wanted, metadata)
        with self._lock:
            type_id = self._artifact_type_id(schema_title)
            candidates = [a for a in self.store.get_artifacts_by_uri(uri)
                          if a.type_id == type_id and a.state == mlmd_pb.Artifact.LIVE
                          and all(k in a.custom_properties and a.custom_properties[k] == v
                                  for k, v in wanted.custom_properties.items())]
            for artifact in sorted(candidates, key=lambda a: a.id, reverse=True):
                if any(c.id == contexts.pipeline.id for c in self.store.get_contexts_by_artifact(artifact.id)):
                    return artifact
        return None


def null_metadata(artifacts: Mapping[str, Sequence[Any]]) -> str:
    """Why a task's output artifacts cannot be recorded as the backend records them: the first top-level metadata
    value that is null (the backend's upload fails on it, and so does the task); "" when there is none.

    Args:
        artifacts: output key -> the executor's RuntimeArtifact messages (their `metadata` Struct is read).
    """
    from google.protobuf import json_format

    for output in sorted(artifacts):
        for artifact in artifacts[output]:
            key = vocabulary.null_metadata_key(json_format.MessageToDict(artifact.metadata))
            if key is not None:
                return (f"output artifact {output!r}: metadata {key!r} is null, which the KFP backend cannot "
                        "record (its upload fails the task): leave the key out or give it a value")
    return ""


def _reused_output_pairs(reused: Mapping[str, Sequence[int]],
                        keys: List[str]) -> List[Tuple[None, mlmd_pb.Event]]:
    """OUTPUT events to existing artifacts (cache hits, reused imports); appends each one's key to `keys`."""
    pairs: List[Tuple[None, mlmd_pb.Event]] = []
    for key, artifact_ids in dict(reused).items():
        for artifact_id in artifact_ids:
            pairs.append((None, _event(mlmd_pb.Event.OUTPUT, key, artifact_id)))
            keys.append(key)
    return pairs


def _group_by_key(keys: Sequence[str], artifact_ids: Sequence[int]) -> Dict[str, List[int]]:
    """Output key -> artifact ids, from put_execution's ids aligned with the keys of the output pairs."""
    grouped: Dict[str, List[int]] = {}
    for key, artifact_id in zip(keys, artifact_ids):
        grouped.setdefault(key, []).append(artifact_id)
    return grouped


def _retry_transient(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Runs one ml-metadata write (one transaction), running it again while the database reports a transient
    failure: a deadlock, a lock or serialization conflict, a dropped connection (see store.retry_transient)."""
    return store_module.retry_transient(call, *args, **kwargs)


def _event(event_type: int, key: str, artifact_id: int = 0) -> mlmd_pb.Event:
    event = mlmd_pb.Event(type=event_type)
    if artifact_id:
        event.artifact_id = artifact_id
    event.path.steps.add().key = key
    return event


def _input_events(input_artifacts: Mapping[str, Sequence[int]]) -> Tuple[List[mlmd_pb.Event], Dict[str, str]]:
    """INPUT events, one per distinct artifact, and the input names folded into another input's event."""
    events: List[mlmd_pb.Event] = []
    first_key_of: Dict[int, str] = {}
    merged: Dict[str, str] = {}
    for key in sorted(dict(input_artifacts)):
        for artifact_id in input_artifacts[key]:
            if artifact_id in first_key_of:
                if first_key_of[artifact_id] != key:
                    merged[key] = first_key_of[artifact_id]
                continue
            first_key_of[artifact_id] = key
            events.append(_event(mlmd_pb.Event.INPUT, key, artifact_id))
    return events, merged


def set_custom_properties(message: Any, properties: Mapping[str, Any]) -> None:
    """Sets each property on an Artifact/Execution/Context's custom_properties, redacted (no credential reaches
    MLMD).

    On an Artifact the values are its metadata, converted as the backend does (vocabulary.to_mlmd_artifact_value:
    dicts wrapped as {"struct": ...}, the executor's runtime-only keys left out). Elsewhere integers given for
    execution bookkeeping (parent_dag_id, iteration_index, ...) stay ints, everything else follows
    vocabulary.to_mlmd_value and a None is skipped.

    Raises:
        InvalidInputError: an Artifact's metadata value is None (the backend fails such a task).
    """
    is_artifact = isinstance(message, mlmd_pb.Artifact)
    for key, value in dict(properties).items():
        value = redaction.redact(key, value)  # no credential reaches MLMD, whatever the caller passes
        if is_artifact:
            if key in vocabulary.RUNTIME_ONLY_METADATA:
                continue
            try:
                converted = vocabulary.to_mlmd_artifact_value(key, value)
            except ValueError as e:
                raise errors.InvalidInputError(str(e)) from None
        else:
            converted = vocabulary.to_mlmd_value(value, keep_int=True)
        if converted is not None:
            message.custom_properties[key].CopyFrom(converted)


@dataclasses.dataclass(frozen=True)
class CachedResult:
    """A COMPLETE execution that a new task with the same fingerprint may reuse."""

    execution_id: int
    outputs: Dict[str, Any]
    artifacts: Dict[str, List[mlmd_pb.Artifact]]
