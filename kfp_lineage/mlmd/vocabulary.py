"""The MLMD vocabulary shared by the writer and every reader: type and property names, state and event names, and
the one codec between Python values and MLMD property values (protobuf `Value`s and the rows of the SQL schema).

Names follow the KFP v2 backend (release 2.17.0); the few that are ours alone say so. docs/mlmd-format.md is the
contract these names spell out. Writing and reading both go through this module, so a name or a value form changes
in one place.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple

from kfp_lineage import digests as _digests

if TYPE_CHECKING:  # imported where used: the read commands' SQL path runs without ml-metadata and protobuf
    from google.protobuf import struct_pb2
    from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

# --- types ------------------------------------------------------------------------------------------------------

PIPELINE_CONTEXT_TYPE = "system.Pipeline"
RUN_CONTEXT_TYPE = "system.PipelineRun"

DAG_EXECUTION_TYPE = "system.DAGExecution"  # the root DAG, sub-pipelines, conditions, loops, loop iterations
CONTAINER_EXECUTION_TYPE = "system.ContainerExecution"
IMPORTER_EXECUTION_TYPE = "system.ImporterExecution"
# Vertex AI spells its DAG type differently and gives the root a type of its own.
VERTEX_DAG_EXECUTION_TYPE = "system.DagExecution"
VERTEX_ROOT_EXECUTION_TYPE = "system.Run"
# Execution types that only group other executions (DAG outputs get no OUTPUT events).
DAG_EXECUTION_TYPES = frozenset({DAG_EXECUTION_TYPE, VERTEX_DAG_EXECUTION_TYPE, VERTEX_ROOT_EXECUTION_TYPE})

# Artifact types (the IR schemaTitle) that readers treat specially.
GENERIC_ARTIFACT_TYPE = "system.Artifact"
METRICS_ARTIFACT_TYPE = "system.Metrics"
VERTEX_ENDPOINT_TYPE = "google.VertexEndpoint"
GOOGLE_TYPE_PREFIX = "google."

# The type_kind column of the SQL schema's Type table.
EXECUTION_TYPE_KIND, ARTIFACT_TYPE_KIND, CONTEXT_TYPE_KIND = 0, 1, 2

# The output key of the log artifact the KFP 2.17 launcher publishes for every container it launches (PUBLISH_LOGS):
# a GENERIC_ARTIFACT_TYPE at `<task dir>/executor-logs-<retry index>`. The task's log, not a result: lineage
# readers and the expected-lineage checker leave it out.
EXECUTOR_LOGS = "executor-logs"

# --- custom properties ------------------------------------------------------------------------------------------

# On the system.PipelineRun context.
NAMESPACE = "namespace"
RESOURCE_NAME = "resource_name"
PIPELINE_ROOT = "pipeline_root"  # `<pipeline root>/<pipeline name>/<run id>`
STORE_SESSION_INFO = "store_session_info"  # also on every artifact
RUNNER = "runner"  # ours: `host:pid:start` of the process running the run (runner_identity)
RUNNER_STATE = "runner_state"  # ours: RUNNING until the runner finishes the run, then COMPLETE or FAILED

# On executions (and DISPLAY_NAME on artifacts: the output key).
DISPLAY_NAME = "display_name"
TASK_NAME = "task_name"  # the task's key in its parent DAG; "" on the root
PARENT_DAG_ID = "parent_dag_id"  # int, on every execution but the root DAG
INPUTS = "inputs"  # struct of the resolved input parameters
OUTPUTS = "outputs"  # struct of the output parameters, at publish
IMAGE = "image"
POD_NAME = "pod_name"
POD_UID = "pod_uid"
ITERATION_COUNT = "iteration_count"  # on a loop DAG
ITERATION_INDEX = "iteration_index"  # on a loop iteration DAG
TOTAL_DAG_TASKS = "total_dag_tasks"  # on non-root DAGs
PARAMETER_PRODUCER_TASK = "parameter_producer_task"
ARTIFACT_PRODUCER_TASK = "artifact_producer_task"
CACHE_FINGERPRINT = "cache_fingerprint"
CACHED_EXECUTION_ID = "cached_execution_id"  # on a cache hit: the execution whose results it reused
MERGED_INPUT_KEYS = "merged_input_keys"  # ours: input names folded into another input's INPUT event
FAILURE_REASON = "failure_reason"  # ours: why `kfp-lineage recover` marked an execution FAILED

# On artifacts: ours alone, and what the deploy components record.
CONTENT_DIGEST = _digests.DIGEST_PROPERTY  # the format of the digest is digests.py's
ENDPOINT_URI = "endpoint_uri"
DEPLOYED_AT = "deployed_at"
DEPLOYED_BY = "deployed_by"
VERTEX_RESOURCE_NAME = "resourceName"  # GCPC artifacts (google.VertexEndpoint, google.VertexModel, ...)
# Custom properties every artifact gets from the recorder (the backend writes the first two too), as opposed to the
# metadata a component declares.
ARTIFACT_BOOKKEEPING_PROPERTIES = (DISPLAY_NAME, STORE_SESSION_INFO, CONTENT_DIGEST)

# --- values ----------------------------------------------------------------------------------------------------

# The backend's placeholders for a single-namespace, local deployment.
LOCAL_NAMESPACE = "local"
RUN_RESOURCE_NAME = "run-resource"
LOCAL_STORE_SESSION_INFO = json.dumps({"Provider": "local", "Params": {}}, separators=(",", ":"))
RUNNER_RUNNING, RUNNER_COMPLETE, RUNNER_FAILED = "RUNNING", "COMPLETE", "FAILED"  # values of RUNNER_STATE
RUNNER_CANCELED = "CANCELED"  # a value of RUNNER_STATE: a signal stopped the runner, which then closed the run

_ROOT_NAME_PREFIX = "run/"


def root_execution_name(run_id: str) -> str:
    """Execution.name of a run's root DAG: `run/<run id>` (the only execution with a name)."""
    return _ROOT_NAME_PREFIX + run_id


def run_id_of_root(name: str) -> Optional[str]:
    """The run id in a root DAG's Execution.name (`run/<run id>`), or None for any other name."""
    return name[len(_ROOT_NAME_PREFIX):] if name.startswith(_ROOT_NAME_PREFIX) else None


def runner_identity(pid: Optional[int] = None) -> str:
    """The RUNNER value of a process: `host:pid:start` (start = its start time in clock ticks since boot, from
    /proc), which stays unique when the pid is reused; `host:pid:` where /proc is unavailable."""
    pid = os.getpid() if pid is None else pid
    start = ""
    try:
        with open(f"/proc/{pid}/stat") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        pass
    return f"{socket.gethostname()}:{pid}:{start}"


def parse_runner(runner: str) -> Tuple[str, Optional[int]]:
    """(host, pid) of a RUNNER value; pid None when it is not a number."""
    host, _, rest = runner.partition(":")
    pid_text = rest.partition(":")[0]
    return host, int(pid_text) if pid_text.isdigit() else None


# --- states and events -----------------------------------------------------------------------------------------

# The enums of ml-metadata's metadata_store.proto (Event.Type, Artifact.State, Execution.State), spelled out so
# that reading a store needs no protobuf import; tests/mlmd/test_vocabulary.py checks them against the proto.
EVENT_TYPES: Dict[int, str] = {0: "UNKNOWN", 1: "DECLARED_OUTPUT", 2: "DECLARED_INPUT", 3: "INPUT", 4: "OUTPUT",
                               5: "INTERNAL_INPUT", 6: "INTERNAL_OUTPUT", 7: "PENDING_OUTPUT"}
EVENT_TYPE_IDS: Dict[str, int] = {name: number for number, name in EVENT_TYPES.items()}
INPUT_EVENT = EVENT_TYPES[3]  # "INPUT"
OUTPUT_EVENT = EVENT_TYPES[4]  # "OUTPUT"
ARTIFACT_STATES: Dict[int, str] = {0: "UNKNOWN", 1: "PENDING", 2: "LIVE", 3: "MARKED_FOR_DELETION", 4: "DELETED",
                                   5: "ABANDONED", 6: "REFERENCE"}
EXECUTION_STATES: Dict[int, str] = {0: "UNKNOWN", 1: "NEW", 2: "RUNNING", 3: "COMPLETE", 4: "FAILED", 5: "CACHED",
                                    6: "CANCELED"}


def execution_state_name(state: int) -> str:
    """An Execution.State as its name (COMPLETE, CACHED, ...); the number as text when unknown."""
    return EXECUTION_STATES.get(state, str(state))


# --- the value codec -------------------------------------------------------------------------------------------
#
# Python -> MLMD as the backend converts RuntimeArtifact metadata (metadata/converter.go StructValueToMLMDValue):
# strings stay strings, numbers become doubles, booleans ints 0/1, lists the struct {"list": [...]}, dicts the struct
# {"struct": {...}}, and a null is refused. Execution properties (`inputs`, `outputs`) are plain structs. MLMD ->
# Python undoes both wrappings.

_LIST_KEY = "list"
_STRUCT_KEY = "struct"
# Artifact metadata the backend never persists: the executor's workspace flag (converter.go toMLMDArtifact).
RUNTIME_ONLY_METADATA = frozenset({"_kfp_workspace"})
# How ml-metadata stores a struct_value in the string_value column of the SQL schema.
SQL_STRUCT_PREFIX = "mlmd-struct::"


def to_mlmd_value(value: Any, keep_int: bool = False) -> Optional[mlmd_pb.Value]:
    """A Python value as an MLMD Value, as the backend converts RuntimeArtifact metadata.

    Args:
        value: the value; None gives None (the property is skipped, as the backend cannot store a null).
        keep_int: store an int (not a bool) as int_value, as the backend does for execution bookkeeping
            (parent_dag_id, iteration_index, ...), instead of double_value.
    """
    if value is None:
        return None
    from ml_metadata.proto import metadata_store_pb2

    result = metadata_store_pb2.Value()
    if isinstance(value, bool):
        result.int_value = int(value)
    elif isinstance(value, int) and keep_int:
        result.int_value = value
    elif isinstance(value, str):
        result.string_value = value
    elif isinstance(value, (int, float)):
        result.double_value = float(value)
    elif isinstance(value, (list, tuple)):
        result.struct_value.CopyFrom(_to_struct({_LIST_KEY: list(value)}))
    elif isinstance(value, dict):
        result.struct_value.CopyFrom(_to_struct(value))
    else:
        result.string_value = str(value)
    return result


def to_mlmd_artifact_value(key: str, value: Any) -> mlmd_pb.Value:
    """An artifact metadata value as an MLMD Value, as the backend's launcher records it: as to_mlmd_value, but a
    dict becomes the struct {"struct": {...}}.

    Raises:
        ValueError: the value is None; the backend cannot record a null (its upload fails, and so does the task).
    """
    if value is None:
        raise ValueError(f"artifact metadata {key!r} is null, which the KFP backend cannot record "
                         "(\"unknown/unsupported value type\"): leave the key out or give it a value")
    if isinstance(value, dict):
        from ml_metadata.proto import metadata_store_pb2

        result = metadata_store_pb2.Value()
        result.struct_value.CopyFrom(_to_struct({_STRUCT_KEY: value}))
        return result
    converted = to_mlmd_value(value)
    assert converted is not None
    return converted


def null_metadata_key(metadata: Mapping[str, Any]) -> Optional[str]:
    """The first (sorted) top-level key of artifact metadata whose value is null, or None: to_mlmd_artifact_value
    refuses it."""
    return next((key for key in sorted(metadata) if metadata[key] is None and key not in RUNTIME_ONLY_METADATA),
                None)


def _to_struct(value: Any) -> struct_pb2.Struct:
    from google.protobuf import struct_pb2

    struct = struct_pb2.Struct()
    struct.update(json.loads(json.dumps(value, default=str)))
    return struct


def python_value(value: mlmd_pb.Value) -> Any:
    """The Python value of an MLMD Value: a struct {"list": [...]} becomes the list, other structs dicts."""
    kind = value.WhichOneof("value")
    if kind == "struct_value":
        return struct_to_python(value.struct_value)
    if kind is None:
        return None
    return getattr(value, kind)


def struct_to_python(struct: struct_pb2.Struct) -> Any:
    """An MLMD struct value as Python: a dict, or the list or dict KFP stores as {"list": [...]} or
    {"struct": {...}} (artifact metadata)."""
    data = _struct_fields(struct)
    if len(data) == 1:
        [(key, value)] = data.items()
        if (key == _LIST_KEY and isinstance(value, list)) or (key == _STRUCT_KEY and isinstance(value, dict)):
            return value
    return data


def _struct_fields(struct: struct_pb2.Struct) -> Dict[str, Any]:
    return {key: _protobuf_value(item) for key, item in struct.fields.items()}


def _protobuf_value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return _struct_fields(value.struct_value)
    if kind == "list_value":
        return [_protobuf_value(item) for item in value.list_value.values]
    if kind == "null_value" or kind is None:
        return None
    return getattr(value, kind)


def custom_property(message: Any, name: str, default: Any = None) -> Any:
    """The Python value of a custom property of an Artifact, Execution or Context, or `default` when unset."""
    value = message.custom_properties.get(name)
    return python_value(value) if value is not None else default


def int_or_none(value: Any) -> Optional[int]:
    """An id-like property value (int, double or numeric string, as stores write them) as an int; None if not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def sql_string_value(value: Any) -> Any:
    """A property value read as COALESCE(string_value, double_value, int_value) from the SQL schema, as
    python_value returns it: a `mlmd-struct::` string is decoded, anything else is returned as it is."""
    if type(value) is str and value.startswith(SQL_STRUCT_PREFIX):
        return _sql_struct(value)
    return value


def sql_value(int_value: Any, double_value: Any, string_value: Any, proto_value: Any, bool_value: Any) -> Any:
    """A property row of the SQL schema (its five value columns) as python_value returns the Value ml-metadata
    builds from it."""
    if string_value is not None:
        return _sql_struct(string_value) if string_value.startswith(SQL_STRUCT_PREFIX) else string_value
    if double_value is not None:
        return float(double_value)
    if int_value is not None:
        return int(int_value)
    if bool_value is not None:
        return bool(bool_value)
    if proto_value is not None:
        from google.protobuf import any_pb2

        return any_pb2.Any.FromString(bytes(proto_value))
    return None


def _sql_struct(text: str) -> Any:
    from google.protobuf import struct_pb2

    struct = struct_pb2.Struct.FromString(base64.b64decode(text[len(SQL_STRUCT_PREFIX):]))
    return struct_to_python(struct)
