"""dsl.importer: a system.ImporterExecution whose OUTPUT is the imported artifact."""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Tuple

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage import digests
from kfp_lineage.engine import reuse
from kfp_lineage.ir import dataflow
from kfp_lineage.mlmd import recorder
from kfp_lineage.mlmd import vocabulary

ImporterSpec = pipeline_spec_pb2.PipelineDeploymentConfig.ImporterSpec
# The schemes the backend's object store reads (objectstore/config.go ParseBucketPathToConfig).
_OBJECT_STORE_SCHEMES = frozenset({"gs", "s3", "minio", "mem"})


def run_importer(record: recorder.Recorder, contexts: recorder.RunContexts, importer: ImporterSpec,
                 component: pipeline_spec_pb2.ComponentSpec, properties: Dict[str, Any],
                 parameters: Mapping[str, Any]) -> Tuple[int, dataflow.Produced]:
    """Records an importer task as a COMPLETE execution and returns its id and the imported artifact.

    As the backend does, an artifact already in this pipeline with the same URI, type and metadata is reused
    unless the importer sets reimport; otherwise a new artifact is recorded. Nothing is copied or checked on disk.
    """
    source = importer.artifact_uri
    if source.WhichOneof("value") == "runtime_parameter":
        uri = str(parameters.get(source.runtime_parameter, ""))
    else:
        uri = str(json_format.MessageToDict(source.constant))
    metadata = _resolve_placeholders(json_format.MessageToDict(importer.metadata), parameters)
    # The backend's importer fails on a top-level null; ours leaves it out (docs/mlmd-format.md, differences).
    metadata = {key: value for key, value in metadata.items() if value is not None}
    [output_key] = list(component.output_definitions.artifacts) or ["artifact"]
    schema_title = importer.type_schema.schema_title
    existing = None if importer.reimport else record.find_importable(contexts, uri, schema_title, metadata)
    if existing is not None:
        execution_id, ids = record.record_finished_execution(
            contexts, vocabulary.IMPORTER_EXECUTION_TYPE, properties, mlmd_pb.Execution.COMPLETE,
            reused_output_artifacts={output_key: [existing.id]},
        )
        metadata = reuse.artifact_metadata(existing)
    else:
        execution_id, ids = record.record_finished_execution(
            contexts, vocabulary.IMPORTER_EXECUTION_TYPE, properties, mlmd_pb.Execution.COMPLETE,
            # As the backend's importer launcher: no display_name, the session of the URI's object store.
            output_artifacts={output_key: [recorder.OutputArtifact(
                schema_title, uri, digests.with_content_digest(metadata, uri), "", _store_session_info(uri))]},
        )
    artifact = dataflow.InputArtifact(ids[output_key][0], schema_title, importer.type_schema.schema_version, uri,
                                      metadata)
    return execution_id, dataflow.Produced(artifacts={output_key: [artifact]})


def _store_session_info(uri: str) -> str:
    """The store_session_info the backend's importer gives an imported artifact: its URI's provider, credentials
    from the environment (importer_launcher.go); a local path (which the backend refuses) gets the local one."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme in _OBJECT_STORE_SCHEMES:
        return json.dumps({"Provider": scheme, "Params": {"fromEnv": "true"}}, separators=(",", ":"))
    return vocabulary.LOCAL_STORE_SESSION_INFO


def _resolve_placeholders(value: Any, parameters: Mapping[str, Any]) -> Any:
    """Replaces `{{$.inputs.parameters['name']}}` in importer metadata keys and values with parameter values."""
    if isinstance(value, dict):
        return {_resolve_placeholders(k, parameters): _resolve_placeholders(v, parameters) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_placeholders(v, parameters) for v in value]
    if isinstance(value, str) and value.startswith("{{$.inputs.parameters['") and value.endswith("']}}"):
        return parameters.get(value[len("{{$.inputs.parameters['"):-len("']}}")], value)
    return value
