"""Values read back from MLMD as a task receives them, for results the run reuses (cache hits, imports of an
artifact the store already holds)."""

from __future__ import annotations

from typing import Any, Dict, Mapping

from kfp.pipeline_spec import pipeline_spec_pb2
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage.ir import dataflow
from kfp_lineage.ir import spec as spec_module
from kfp_lineage.mlmd import vocabulary

# Properties kfp-lineage and the backend keep on an artifact for themselves; a task never sees them.
_BOOKKEEPING = vocabulary.ARTIFACT_BOOKKEEPING_PROPERTIES


def artifact_metadata(artifact: mlmd_pb.Artifact) -> Dict[str, Any]:
    """An MLMD artifact's metadata as a task sees it (our bookkeeping properties left out)."""
    return {k: vocabulary.python_value(v) for k, v in artifact.custom_properties.items() if k not in _BOOKKEEPING}


def input_artifact(artifact: mlmd_pb.Artifact, schema_version: str) -> dataflow.InputArtifact:
    """A stored artifact as a consumer receives it; ml-metadata fills in the artifact's type name as `type`."""
    return dataflow.InputArtifact(artifact_id=artifact.id, schema_title=artifact.type, schema_version=schema_version,
                                  uri=artifact.uri, metadata=artifact_metadata(artifact))


def typed_outputs(component: pipeline_spec_pb2.ComponentSpec, values: Mapping[str, Any]) -> Dict[str, Any]:
    """Output parameters read back from MLMD (where every number is a double) with the types the task declared."""
    typed: Dict[str, Any] = {}
    for name, value in values.items():
        definition = component.output_definitions.parameters.get(name)
        if isinstance(value, (list, dict)):
            value = dataflow.whole_numbers_as_ints(value)
        elif definition is not None and definition.parameter_type == spec_module.ParameterType.NUMBER_INTEGER:
            value = int(value)
        typed[name] = value
    return typed


def output_schema_version(component: pipeline_spec_pb2.ComponentSpec, output: str) -> str:
    """The schema version the component declares for output artifact `output` ("" when it declares none)."""
    definition = component.output_definitions.artifacts.get(output)
    return definition.artifact_type.schema_version if definition is not None else ""
