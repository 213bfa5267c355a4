"""The ml-metadata reader of lineage records: plain ml-metadata calls (no filter_query, no SQL), for every store.

`reader.reader_for` chooses between it and the faster sqlite_reader.SqliteReader, which returns the same results.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage.lineage import graph as lineage_graph
from kfp_lineage.mlmd import vocabulary

Properties = Optional[Iterable[str]]  # as in reader.Properties


def _properties_of(message: Union[mlmd_pb.Artifact, mlmd_pb.Execution], wanted: Optional[frozenset]
                   ) -> Dict[str, Any]:
    """Every property (custom wins over typed), or only the wanted custom properties."""
    if wanted is not None:
        return {k: vocabulary.python_value(v) for k, v in message.custom_properties.items() if k in wanted}
    found = {k: vocabulary.python_value(v) for k, v in message.properties.items()}
    found.update((k, vocabulary.python_value(v)) for k, v in message.custom_properties.items())
    return found


def _wanted(properties: Properties) -> Optional[frozenset]:
    return None if properties is None else frozenset(properties)


class MlmdReader:
    """Reads through the ml-metadata API: works on every store."""

    kind = "ml-metadata"

    def __init__(self, store: metadata_store.MetadataStore):
        self.store = store
        self._types: Dict[str, Dict[int, str]] = {"artifact": {}, "execution": {}}

    def close(self) -> None:
        """Nothing to release: ml-metadata closes its connection when the store object goes away."""

    def _type_name(self, kind: str, type_id: int, fallback: str) -> str:
        names = self._types[kind]
        if type_id not in names:
            loaded = self.store.get_artifact_types() if kind == "artifact" else self.store.get_execution_types()
            names.update({t.id: t.name for t in loaded})
        return names.get(type_id, fallback)

    def _artifact(self, artifact: mlmd_pb.Artifact, wanted: Optional[frozenset]) -> lineage_graph.Artifact:
        properties = _properties_of(artifact, wanted)
        name_source = properties if wanted is None or vocabulary.DISPLAY_NAME in wanted else _properties_of(
            artifact, frozenset({vocabulary.DISPLAY_NAME}))
        return lineage_graph.Artifact(
            id=artifact.id,
            type=self._type_name("artifact", artifact.type_id, artifact.type),
            uri=artifact.uri,
            name=lineage_graph.artifact_name(name_source, artifact.name),
            state=vocabulary.ARTIFACT_STATES.get(artifact.state, str(artifact.state)),
            create_time=artifact.create_time_since_epoch,
            properties=properties,
        )

    def _execution(self, execution: mlmd_pb.Execution, wanted: Optional[frozenset]) -> lineage_graph.Execution:
        return lineage_graph.Execution(
            id=execution.id,
            type=self._type_name("execution", execution.type_id, execution.type),
            name=execution.name,
            state=vocabulary.EXECUTION_STATES.get(execution.last_known_state, str(execution.last_known_state)),
            create_time=execution.create_time_since_epoch,
            update_time=execution.last_update_time_since_epoch,
            properties=_properties_of(execution, wanted),
        )

    def artifacts(self, ids: Sequence[int], properties: Properties = None) -> Dict[int, lineage_graph.Artifact]:
        """id -> artifact for the ids that exist; `properties` limits which properties are read."""
        if not ids:
            return {}
        wanted = _wanted(properties)
        return {a.id: self._artifact(a, wanted) for a in self.store.get_artifacts_by_id(list(ids))}

    def output_events(self, execution_ids: Sequence[int]) -> Tuple[List[lineage_graph.Event], Dict[int, str]]:
        """The OUTPUT events of these executions (keys ""), and artifact id -> type name of what they wrote."""
        events = self.events(execution_ids=execution_ids, types=("OUTPUT",), keys=False)
        ids = sorted({e.artifact_id for e in events})
        found = self.store.get_artifacts_by_id(ids) if ids else []
        return events, {a.id: self._type_name("artifact", a.type_id, a.type) for a in found}

    def execution_properties(self, ids: Sequence[int], names: Sequence[str]) -> Dict[int, Dict[str, Any]]:
        """execution id -> {name: value} of these custom properties, for executions that have any."""
        if not ids:
            return {}
        wanted = frozenset(names)
        found = {e.id: _properties_of(e, wanted) for e in self.store.get_executions_by_id(list(ids))}
        return {i: values for i, values in found.items() if values}

    def artifact_properties(self, ids: Sequence[int], names: Sequence[str]) -> Dict[int, Dict[str, Any]]:
        """artifact id -> {name: value} of these custom properties, for artifacts that have any."""
        if not ids:
            return {}
        wanted = frozenset(names)
        found = {a.id: _properties_of(a, wanted) for a in self.store.get_artifacts_by_id(list(ids))}
        return {i: values for i, values in found.items() if values}

    def executions(self, ids: Sequence[int], properties: Properties = None, dags: bool = True
                   ) -> Dict[int, lineage_graph.Execution]:
        """id -> execution for the ids that exist; `properties` limits which are read; `dags=False` leaves out
        DAG executions (lineage_graph.DAG_EXECUTION_TYPES)."""
        if not ids:
            return {}
        wanted = _wanted(properties)
        found = (self._execution(e, wanted) for e in self.store.get_executions_by_id(list(ids)))
        return {e.id: e for e in found if dags or not e.is_dag}

    def events(self, artifact_ids: Sequence[int] = (), execution_ids: Sequence[int] = (),
               types: Sequence[str] = (), keys: bool = True) -> List[lineage_graph.Event]:
        """Events of these artifacts, or else of these executions, optionally only of some types ("INPUT"), in no
        particular order; `keys=False` leaves every key "" (cheaper on large walks)."""
        if artifact_ids:
            found = self.store.get_events_by_artifact_ids(list(artifact_ids))
        elif execution_ids:
            found = self.store.get_events_by_execution_ids(list(execution_ids))
        else:
            return []
        wanted = {vocabulary.EVENT_TYPE_IDS[t] for t in types}
        return [_event(e, keys) for e in found if not wanted or e.type in wanted]

    def execution_parents(self, ids: Sequence[int]) -> Dict[int, Tuple[Optional[int], str]]:
        """id -> (parent_dag_id or None, Execution.name): enough to walk up to a root DAG."""
        if not ids:
            return {}
        found = {}
        for execution in self.store.get_executions_by_id(list(ids)):
            parent = vocabulary.custom_property(execution, vocabulary.PARENT_DAG_ID)
            found[execution.id] = (vocabulary.int_or_none(parent), execution.name)
        return found

    def run_of_execution(self, execution_id: int) -> Optional[str]:
        """The name of a system.PipelineRun context the execution is associated with (for roots not named run/...)."""
        runs = [c.name for c in self.store.get_contexts_by_execution(execution_id)
                if c.type == vocabulary.RUN_CONTEXT_TYPE]
        return min(runs) if runs else None

    def artifacts_by_uri(self, uri: str) -> Dict[int, lineage_graph.Artifact]:
        return {a.id: self._artifact(a, None) for a in self.store.get_artifacts_by_uri(uri)}

    def has_artifacts(self) -> bool:
        return bool(self.store.get_artifacts(list_options=metadata_store.ListOptions(limit=1)))

    def run(self, run_id: str) -> Optional[lineage_graph.Run]:
        context = self.store.get_context_by_type_and_name(vocabulary.RUN_CONTEXT_TYPE, run_id)
        if context is None:
            return None
        parents = [c.name for c in self.store.get_parent_contexts_by_context(context.id)
                   if c.type == vocabulary.PIPELINE_CONTEXT_TYPE]
        return _run(context, parents[0] if parents else None)

    def pipelines(self) -> List[str]:
        return sorted(c.name for c in self.store.get_contexts_by_type(vocabulary.PIPELINE_CONTEXT_TYPE))

    def runs(self, limit: int, pipeline: Optional[str] = None) -> Optional[List[lineage_graph.Run]]:
        """The newest `limit` runs, newest first; None when `pipeline` is given and unknown."""
        if pipeline is not None:
            parent = self.store.get_context_by_type_and_name(vocabulary.PIPELINE_CONTEXT_TYPE, pipeline)
            if parent is None:
                return None
            children = [c for c in self.store.get_children_contexts_by_context(parent.id)
                        if c.type == vocabulary.RUN_CONTEXT_TYPE]
            return lineage_graph.sorted_runs(_run(c, pipeline) for c in children)[:limit]
        # Newest contexts of any type, widening the window until `limit` runs are in it.
        window = limit * 2 + 8
        while True:
            contexts = self.store.get_contexts(list_options=metadata_store.ListOptions(
                limit=window, order_by=metadata_store.OrderByField.CREATE_TIME, is_asc=False))
            found = [c for c in contexts if c.type == vocabulary.RUN_CONTEXT_TYPE]
            if len(found) >= limit or len(contexts) < window:
                break
            window *= 4
        runs = lineage_graph.sorted_runs(_run(c, None) for c in found)[:limit]
        pipelines = self.pipelines_of([r.run_id for r in runs])
        for run in runs:
            run.pipeline = pipelines.get(run.run_id)
        return runs

    def run_executions(self, context_id: int, properties: Properties = None) -> List[lineage_graph.Execution]:
        wanted = _wanted(properties)
        return [self._execution(e, wanted) for e in self.store.get_executions_by_context(context_id)]

    def pipelines_of(self, run_ids: Sequence[str]) -> Dict[str, Optional[str]]:
        """run id -> pipeline name (the run context's system.Pipeline parent)."""
        found: Dict[str, Optional[str]] = {}
        if len(run_ids) > 20:  # cheaper to list each pipeline's runs than to ask run by run
            wanted = set(run_ids)
            for pipeline in self.store.get_contexts_by_type(vocabulary.PIPELINE_CONTEXT_TYPE):
                for child in self.store.get_children_contexts_by_context(pipeline.id):
                    if child.name in wanted and child.type == vocabulary.RUN_CONTEXT_TYPE:
                        found[child.name] = pipeline.name
            return found
        for run_id in run_ids:
            run = self.run(run_id)
            found[run_id] = run.pipeline if run else None
        return found


def _event(event: mlmd_pb.Event, keys: bool = True) -> lineage_graph.Event:
    key = next((step.key for step in event.path.steps if step.HasField("key")), "") if keys else ""
    return lineage_graph.Event(type=vocabulary.EVENT_TYPES.get(event.type, str(event.type)), artifact_id=event.artifact_id,
                               execution_id=event.execution_id, key=key)


def _run(context: mlmd_pb.Context, pipeline: Optional[str]) -> lineage_graph.Run:
    return lineage_graph.Run(run_id=context.name, pipeline=pipeline, context_id=context.id,
                             create_time=context.create_time_since_epoch)
