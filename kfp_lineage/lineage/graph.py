"""The lineage graph every lineage view returns: artifacts, executions, the events between them, and their runs.

`LineageGraph.to_json()` is the stable JSON documented in docs/lineage-json.md; the text, DOT, Mermaid and HTML
renderers read the same graph.
"""

from __future__ import annotations

import dataclasses
import datetime
import operator
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple

from kfp_lineage.mlmd import vocabulary

JSON_FORMAT_VERSION = 1

# Execution types that only group other executions (DAG outputs get no OUTPUT events).
DAG_EXECUTION_TYPES = vocabulary.DAG_EXECUTION_TYPES
METRICS_TYPES = frozenset({vocabulary.METRICS_ARTIFACT_TYPE})
# Artifact types and properties that mean "this model was deployed here".
ENDPOINT_TYPES = frozenset({vocabulary.VERTEX_ENDPOINT_TYPE})
ENDPOINT_PROPERTIES = (vocabulary.ENDPOINT_URI, vocabulary.VERTEX_RESOURCE_NAME)
# Execution custom properties shown as their own JSON fields rather than under "properties".
_EXECUTION_FIELDS = (vocabulary.TASK_NAME, vocabulary.DISPLAY_NAME, vocabulary.PARENT_DAG_ID,
                     vocabulary.ITERATION_INDEX, vocabulary.INPUTS, vocabulary.OUTPUTS)


@dataclasses.dataclass(slots=True)
class Artifact:
    """An MLMD artifact."""

    id: int
    type: str
    uri: str
    name: str  # the `display_name` custom property (KFP's output key), else Artifact.name
    state: str  # MLMD Artifact.State name: LIVE, PENDING, DELETED, ...
    create_time: int  # ms since the epoch
    properties: Dict[str, Any]  # custom and typed properties as Python values
    run_id: Optional[str] = None  # the run of its producer
    producer_id: Optional[int] = None  # the execution that made it: an original run wins over cache hits
    details: bool = True  # False: a summary impact read only its id and type (uri, name and state are "")

    @property
    def is_model(self) -> bool:
        return is_model_type(self.type)

    @property
    def is_endpoint(self) -> bool:
        """A deployment target: a Vertex endpoint, or any artifact recording an endpoint URI."""
        return self.type in ENDPOINT_TYPES or vocabulary.ENDPOINT_URI in self.properties

    @property
    def endpoint(self) -> str:
        for key in ENDPOINT_PROPERTIES:
            if self.properties.get(key):
                return str(self.properties[key])
        return self.uri

    def to_json(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "uri": self.uri,
            "name": self.name,
            "state": self.state,
            "create_time": format_time(self.create_time),
            "run_id": self.run_id,
            "producer_execution_id": self.producer_id,
            "details": self.details,
            "properties": self.properties,
        }


@dataclasses.dataclass(slots=True)
class Execution:
    """An MLMD execution: a container task, an importer, or a DAG (root, sub-pipeline, condition, loop)."""

    id: int
    type: str
    name: str  # Execution.name: `run/<run id>` on a KFP root DAG, else usually ""
    state: str  # MLMD Execution.State name: RUNNING, COMPLETE, FAILED, CACHED, CANCELED, ...
    create_time: int  # ms since the epoch
    update_time: int
    properties: Dict[str, Any]
    run_id: Optional[str] = None
    path: Optional[str] = None  # task path in its run, e.g. "condition-1/deploy" (filled by run views)

    @property
    def task_name(self) -> str:
        return str(self.properties.get(vocabulary.TASK_NAME) or "")

    @property
    def display_name(self) -> str:
        return str(self.properties.get(vocabulary.DISPLAY_NAME) or "")

    @property
    def label(self) -> str:
        """What people call it: the task name, else the display name, else `execution <id>`."""
        return self.task_name or self.display_name or (self.name if self.name else f"execution {self.id}")

    @property
    def parent_dag_id(self) -> Optional[int]:
        value = self.properties.get(vocabulary.PARENT_DAG_ID)
        return int(value) if value is not None else None

    @property
    def iteration_index(self) -> Optional[int]:
        value = self.properties.get(vocabulary.ITERATION_INDEX)
        return int(value) if value is not None else None

    @property
    def is_dag(self) -> bool:
        return self.type in DAG_EXECUTION_TYPES

    @property
    def parameters(self) -> Dict[str, Any]:
        value = self.properties.get(vocabulary.INPUTS)
        return value if isinstance(value, dict) else {}

    @property
    def output_parameters(self) -> Dict[str, Any]:
        value = self.properties.get(vocabulary.OUTPUTS)
        return value if isinstance(value, dict) else {}

    @property
    def duration_seconds(self) -> Optional[float]:
        if self.state in ("RUNNING", "NEW", "UNKNOWN") or not self.create_time:
            return None
        return max(0, self.update_time - self.create_time) / 1000

    def to_json(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "name": self.name,
            "task_name": self.task_name,
            "display_name": self.display_name,
            "path": self.path,
            "state": self.state,
            "run_id": self.run_id,
            "parent_dag_id": self.parent_dag_id,
            "iteration_index": self.iteration_index,
            "create_time": format_time(self.create_time),
            "update_time": format_time(self.update_time),
            "parameters": self.parameters,
            "output_parameters": self.output_parameters,
            "properties": {k: v for k, v in self.properties.items() if k not in _EXECUTION_FIELDS},
        }


class Event(NamedTuple):
    """An MLMD event: an execution read (INPUT) or wrote (OUTPUT) an artifact under a key."""

    type: str  # "INPUT" or "OUTPUT" (other MLMD event types keep their MLMD name)
    artifact_id: int
    execution_id: int
    key: str  # the first key step of the event path: the input name or output key ("" when none)

    def to_json(self) -> Dict[str, Any]:
        return {"type": self.type, "artifact_id": self.artifact_id, "execution_id": self.execution_id,
                "key": self.key}


@dataclasses.dataclass
class Run:
    """A pipeline run (a system.PipelineRun context). Summary fields are filled by the run views only."""

    run_id: str
    pipeline: Optional[str] = None
    context_id: Optional[int] = None
    create_time: int = 0
    state: Optional[str] = None
    start_time: Optional[int] = None
    end_time: Optional[int] = None
    task_states: Optional[Dict[str, int]] = None  # state -> count of its executions other than the root DAG

    @property
    def duration_seconds(self) -> Optional[float]:
        if self.start_time is None or self.end_time is None or self.state == "RUNNING":
            return None
        return max(0, self.end_time - self.start_time) / 1000

    def to_json(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {"run_id": self.run_id, "pipeline": self.pipeline}
        if self.state is not None:
            data.update({
                "state": self.state,
                "start_time": format_time(self.start_time),
                "end_time": format_time(self.end_time),
                "duration_seconds": self.duration_seconds,
                "task_states": dict(sorted((self.task_states or {}).items())),
            })
        return data


@dataclasses.dataclass
class LineageGraph:
    """A lineage view: the nodes and events it reached, and where the walk stopped.

    `view` is "trace" (upstream of `artifact_id`, plus what consumed it directly), "impact" (downstream of
    `artifact_id`), "artifact" (one artifact, its producer and consumers) or "run" (one run's executions and
    artifacts).
    """

    view: str
    artifact_id: Optional[int] = None
    run_id: Optional[str] = None
    depth: Optional[int] = None
    artifacts: Dict[int, Artifact] = dataclasses.field(default_factory=dict)
    executions: Dict[int, Execution] = dataclasses.field(default_factory=dict)
    runs: Dict[str, Run] = dataclasses.field(default_factory=dict)
    # Nodes whose neighbours were not walked because of the depth limit: executions whose inputs (trace) or
    # artifacts whose consumers (impact) exist but are left out.
    truncated: List[Tuple[str, int]] = dataclasses.field(default_factory=list)
    full: bool = True  # False when only what the text view shows was read (impact's fast default)
    # Events keyed by (type, artifact, execution): MLMD allows one of each, so adding one twice keeps one.
    _events: Dict[Tuple[str, int, int], Event] = dataclasses.field(default_factory=dict, repr=False)
    _index: Optional[Tuple[Dict[int, List[Event]], Dict[int, List[Event]]]] = dataclasses.field(
        default=None, repr=False)

    def add_event(self, event: Event) -> None:
        """Adds an event (once)."""
        self._events[_IDENTITY(event)] = event
        self._index = None

    def add_events(self, events: Iterable[Event]) -> None:
        """Adds events (each once)."""
        events = list(events)
        self._events.update(zip(map(_IDENTITY, events), events))
        self._index = None

    @property
    def events(self) -> List[Event]:
        """Every event, in the order added."""
        return list(self._events.values())

    def _events_of(self) -> Tuple[Dict[int, List[Event]], Dict[int, List[Event]]]:
        if self._index is None:
            by_execution: Dict[int, List[Event]] = {}
            by_artifact: Dict[int, List[Event]] = {}
            for event in self._events.values():
                by_execution.setdefault(event.execution_id, []).append(event)
                by_artifact.setdefault(event.artifact_id, []).append(event)
            self._index = (by_execution, by_artifact)
        return self._index

    @property
    def root(self) -> Optional[Artifact]:
        return self.artifacts.get(self.artifact_id) if self.artifact_id is not None else None

    def producer(self, artifact_id: int) -> Optional[Execution]:
        artifact = self.artifacts.get(artifact_id)
        if artifact is None or artifact.producer_id is None:
            return None
        return self.executions.get(artifact.producer_id)

    def inputs(self, execution_id: int) -> List[Tuple[Event, Artifact]]:
        """(event, artifact) for each input of the execution present in the graph, by input name."""
        return sorted(((e, self.artifacts[e.artifact_id]) for e in self._events_of()[0].get(execution_id, ())
                       if e.type == "INPUT" and e.artifact_id in self.artifacts), key=_by_key)

    def outputs(self, execution_id: int) -> List[Tuple[Event, Artifact]]:
        """(event, artifact) for each output of the execution present in the graph, by output key."""
        return sorted(((e, self.artifacts[e.artifact_id]) for e in self._events_of()[0].get(execution_id, ())
                       if e.type == "OUTPUT" and e.artifact_id in self.artifacts), key=_by_key)

    def consumers(self, artifact_id: int) -> List[Tuple[Event, Execution]]:
        """(event, execution) for each execution in the graph that read the artifact, by execution id."""
        found = [(e, self.executions[e.execution_id]) for e in self._events_of()[1].get(artifact_id, ())
                 if e.type == "INPUT" and e.execution_id in self.executions]
        return sorted(found, key=lambda pair: pair[1].id)

    def executions_by_run(self) -> List[Tuple[Optional[str], List[Execution]]]:
        """Executions grouped by run id, runs in order of their first execution, executions by id."""
        groups: Dict[Optional[str], List[Execution]] = {}
        for execution in sorted(self.executions.values(), key=lambda e: e.id):
            groups.setdefault(execution.run_id, []).append(execution)
        return list(groups.items())

    def to_json(self) -> Dict[str, Any]:
        """The graph as the documented, stable JSON object (docs/lineage-json.md)."""
        return {
            "format_version": JSON_FORMAT_VERSION,
            "view": self.view,
            "artifact_id": self.artifact_id,
            "run_id": self.run_id,
            "depth": self.depth,
            "full": self.full,
            "truncated": [{"kind": kind, "id": node_id} for kind, node_id in self.truncated],
            "runs": [self.runs[r].to_json() for r in sorted(self.runs)],
            "executions": [self.executions[i].to_json() for i in sorted(self.executions)],
            "artifacts": [self.artifacts[i].to_json() for i in sorted(self.artifacts)],
            "events": [e.to_json() for e in sorted(self._events.values(), key=_event_order)],
        }


_IDENTITY = operator.itemgetter(0, 1, 2)  # (type, artifact_id, execution_id): what MLMD keeps unique


def _by_key(pair: Tuple[Event, Artifact]) -> Tuple[str, str, int]:
    return (pair[0].key, pair[1].name, pair[1].id)


def _event_order(event: Event) -> Tuple[int, int, str]:
    return (event.execution_id, event.artifact_id, event.type)


def artifact_name(properties: Dict[str, Any], name: Optional[str]) -> str:
    """What people call an artifact: its custom `display_name` (KFP's output key), else Artifact.name."""
    display = properties.get(vocabulary.DISPLAY_NAME)
    return str(display) if display else (name or "")


def is_model_type(type_name: str) -> bool:
    """system.Model, google.VertexModel, google.UnmanagedContainerModel, ...: "model" in the last name part."""
    return "model" in type_name.rsplit(".", 1)[-1].lower()


def format_time(ms: Optional[int]) -> Optional[str]:
    """Milliseconds since the epoch as UTC ISO 8601 with milliseconds ("2026-11-26T05:56:43.123Z"), or None."""
    if not ms:
        return None
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def sorted_runs(runs: Iterable[Run]) -> List[Run]:
    """Newest first (by creation time, then context id)."""
    return sorted(runs, key=lambda r: (r.create_time, r.context_id or 0), reverse=True)
