"""Reading what a finished task wrote: its output parameters and artifacts, as the backend's launcher does.

Reuses kfp.local's executor-output parsing.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from kfp.local import executor_output_utils
from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage.ir import dataflow


def collect_outputs(
    executor_input: pipeline_spec_pb2.ExecutorInput, component_spec: pipeline_spec_pb2.ComponentSpec
) -> Tuple[Dict[str, Any], Dict[str, List[pipeline_spec_pb2.RuntimeArtifact]]]:
    """Reads the task's output parameters and artifacts as the backend's launcher does.

    Artifacts come from executor_output.json when the task wrote one, else from the ExecutorInput (URI, no
    metadata). Output parameters come from executor_output.json and dsl.OutputPath files.

    Raises:
        ValueError: an output file cannot be parsed, or a declared output parameter was not written.
    """
    executor_output = executor_output_utils.load_executor_output(executor_input.outputs.output_file)
    executor_output = executor_output_utils.merge_dsl_output_file_parameters_to_executor_output(
        executor_input=executor_input, executor_output=executor_output, component_spec=component_spec
    )
    parameters = {
        name: executor_output_utils.pb2_value_to_python(value)
        for name, value in executor_output.parameter_values.items()
    }
    parameters = executor_output_utils.cast_protobuf_numbers(parameters, component_spec.output_definitions.parameters)
    parameters = {name: dataflow.whole_numbers_as_ints(v) if isinstance(v, (list, dict)) else v
                  for name, v in parameters.items()}
    missing = sorted(set(component_spec.output_definitions.parameters) - set(parameters))
    if missing:
        raise ValueError(f"output parameter {missing[0]!r} was not written")
    artifacts: Dict[str, List[pipeline_spec_pb2.RuntimeArtifact]] = {}
    for name, declared in executor_input.outputs.artifacts.items():
        written = executor_output.artifacts.get(name)
        source = written if written is not None and written.artifacts else declared
        artifacts[name] = []
        for artifact in source.artifacts:
            complete = pipeline_spec_pb2.RuntimeArtifact()
            complete.CopyFrom(artifact)
            complete.type.CopyFrom(declared.artifacts[0].type)
            if not complete.uri:
                complete.uri = declared.artifacts[0].uri
            artifacts[name].append(complete)
    return parameters, artifacts
