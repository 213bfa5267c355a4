"""Resolving what flows between tasks: a task's inputs from its DAG, and a DAG's outputs from its children.

Pure functions over in-memory run state; no MLMD and no processes.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage import errors
from kfp_lineage.ir import spec as spec_module
from kfp_lineage.ir import dataflow

PipelineTaskSpec = pipeline_spec_pb2.PipelineTaskSpec
ComponentSpec = pipeline_spec_pb2.ComponentSpec


class TaskInputError(Exception):
    """A task's inputs cannot be resolved (e.g. its producer did not run); the task fails."""


@dataclasses.dataclass
class DagView:
    """The parts of a running DAG that input resolution reads."""

    parameters: Mapping[str, Any]
    artifacts: Mapping[str, List[dataflow.InputArtifact]]
    states: Mapping[str, str]
    outputs: Mapping[str, dataflow.Produced]
    final_statuses: Mapping[str, dataflow.FinalStatus]
    run_id: str
    execution_id: Optional[int] = None  # the DAG's own execution


_SELECTOR = re.compile(r'^parseJson\(string_value\)((?:\["[^"]*"\]|\[\d+\])+)$')
_SELECTOR_STEP = re.compile(r'\["([^"]*)"\]|\[(\d+)\]')


def apply_selector(selector: str, value: Any) -> Any:
    """Applies a compiled `parameter_expression_selector` such as `parseJson(string_value)["a"]` (a loop item's field).

    Raises:
        TaskInputError: the selector has another form, or the field is missing.
    """
    match = _SELECTOR.match(selector)
    if not match:
        raise TaskInputError(f"parameter expression selector {selector!r} is not supported")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise TaskInputError(f"selector {selector!r} needs a JSON value, got {value!r}") from None
    for key, index in _SELECTOR_STEP.findall(match.group(1)):
        try:
            value = value[key] if key or not index else value[int(index)]
        except (KeyError, IndexError, TypeError):
            raise TaskInputError(f"selector {selector!r}: {value!r} has no {key or index!r}") from None
    return value


# An f-string compiles to a constant such as "bar-{{$.inputs.parameters['pipelinechannel--x']}}", with the channel
# as another input of the same task.
_INPUT_REFERENCE = re.compile(r"\{\{\$\.inputs\.parameters\['([^']*)'\]\}\}")


def _fill_references(input_name: str, template: str, parameters: Mapping[str, Any], component: ComponentSpec) -> Any:
    """An f-string constant with its references to the task's other inputs filled in, as the backend's driver
    does before it records the inputs: a string as is, any other value as JSON. Only constants from the spec are
    filled: a value that came from a run's arguments or a task's output is data, whatever braces it holds."""
    def value_of(match: "re.Match[str]") -> str:
        name = match.group(1)
        if name not in parameters:
            raise TaskInputError(f"input {input_name!r} refers to input {name!r}, which the task does not have")
        value = parameters[name]
        return value if isinstance(value, str) else json.dumps(value)

    filled = _INPUT_REFERENCE.sub(value_of, template)
    parameter_type = spec_module.input_parameter_type(component, input_name)
    if parameter_type is not None and parameter_type != spec_module.ParameterType.STRING:
        filled = spec_module.convert_parameter(input_name, filled, parameter_type)
    return filled


def _runtime_constant(value: Any, dag: DagView, task: PipelineTaskSpec) -> Any:
    """A constant input as the backend's driver passes it on, and so records it in the execution's `inputs`: a
    value that is exactly one of the job or task placeholders (dsl.PIPELINE_JOB_NAME_PLACEHOLDER, ...) becomes its
    value. The run id stands for the job's name, resource name and uuid; the task uuid is the enclosing DAG's
    execution id, as the driver has it."""
    if not isinstance(value, str) or not value.startswith("{{$.pipeline_"):
        return value
    found = {
        "{{$.pipeline_job_name}}": dag.run_id,
        "{{$.pipeline_job_resource_name}}": dag.run_id,
        "{{$.pipeline_job_uuid}}": dag.run_id,
        "{{$.pipeline_task_name}}": task.task_info.name,
        "{{$.pipeline_task_uuid}}": str(dag.execution_id) if dag.execution_id is not None else None,
    }.get(value)
    return value if found is None else found


def resolve_task_inputs(
    dag: DagView, task: PipelineTaskSpec, component: ComponentSpec
) -> Tuple[Dict[str, Any], Dict[str, List[dataflow.InputArtifact]]]:
    """The task's input parameters (typed as its component declares, defaults filled) and input artifacts.

    Raises:
        TaskInputError: an input comes from a task that produced nothing, or from a missing DAG input.
        InvalidInputError: a value does not convert to the declared type.
    """
    parameters: Dict[str, Any] = {}
    templates: List[str] = []  # string constants that refer to other inputs (f-strings), filled in last
    for input_name, source in task.inputs.parameters.items():
        kind = source.WhichOneof("kind")
        if kind == "component_input_parameter":
            name = source.component_input_parameter
            if name not in dag.parameters:
                if _has_default(component, input_name):
                    continue
                raise TaskInputError(f"input {input_name!r}: the enclosing DAG has no value for {name!r}")
            value = dag.parameters[name]
        elif kind == "task_output_parameter":
            producer = source.task_output_parameter.producer_task
            key = source.task_output_parameter.output_parameter_key
            produced = _producer(dag, producer, input_name, optional=_has_default(component, input_name))
            if produced is None:
                continue
            if key not in produced.parameters:
                raise TaskInputError(f"input {input_name!r}: task {producer!r} has no output {key!r}")
            value = produced.parameters[key]
        elif kind == "runtime_value":
            value = _runtime_constant(json_format.MessageToDict(source.runtime_value.constant), dag, task)
            if isinstance(value, str) and _INPUT_REFERENCE.search(value):
                templates.append(input_name)  # typed once filled in
                parameters[input_name] = value
                continue
        elif kind == "task_final_status":
            value = _final_status(dag, source.task_final_status.producer_task)
        else:
            raise TaskInputError(f"input {input_name!r}: {kind} inputs are not supported")
        if source.parameter_expression_selector:
            value = apply_selector(source.parameter_expression_selector, value)
        parameter_type = spec_module.input_parameter_type(component, input_name)
        if parameter_type == spec_module.ParameterType.STRING and value is not None and not isinstance(value, str):
            value = value_as_text(value)
        if parameter_type is not None and parameter_type != spec_module.ParameterType.TASK_FINAL_STATUS:
            value = spec_module.convert_parameter(input_name, value, parameter_type)
        parameters[input_name] = value
    for input_name in templates:
        parameters[input_name] = _fill_references(input_name, parameters[input_name], parameters, component)
    for input_name, definition in component.input_definitions.parameters.items():
        if input_name not in parameters and definition.HasField("default_value"):
            parameters[input_name] = spec_module.convert_parameter(
                input_name, json_format.MessageToDict(definition.default_value), definition.parameter_type
            )
    artifacts: Dict[str, List[dataflow.InputArtifact]] = {}
    for input_name, source in task.inputs.artifacts.items():
        kind = source.WhichOneof("kind")
        optional = input_name in component.input_definitions.artifacts and (
            component.input_definitions.artifacts[input_name].is_optional
        )
        if kind == "component_input_artifact":
            name = source.component_input_artifact
            if name not in dag.artifacts:
                if optional:
                    continue
                raise TaskInputError(f"input {input_name!r}: the enclosing DAG has no artifact {name!r}")
            artifacts[input_name] = list(dag.artifacts[name])
        elif kind == "task_output_artifact":
            producer = source.task_output_artifact.producer_task
            key = source.task_output_artifact.output_artifact_key
            produced = _producer(dag, producer, input_name, optional=optional)
            if produced is None:
                continue
            if key not in produced.artifacts:
                raise TaskInputError(f"input {input_name!r}: task {producer!r} produced no artifact {key!r}")
            artifacts[input_name] = list(produced.artifacts[key])
        else:
            raise TaskInputError(f"input {input_name!r}: {kind} artifact inputs are not supported")
    return parameters, artifacts


def value_as_text(value: Any) -> str:
    """A value given to a STRING input, as the backend's driver passes it (metadata.PbValueToText): compact JSON for
    a list or dict with keys sorted as protojson writes them (the compiler declares a loop item of dicts, and its
    fields, STRING), `true`/`false`, a number without a trailing `.0`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(dataflow.whole_numbers_as_ints(value), separators=(",", ":"), sort_keys=True,
                      ensure_ascii=False)


def task_dependencies(task: PipelineTaskSpec) -> Tuple[str, ...]:
    """The sibling tasks `task` waits for: its dependentTasks and the producer of every task-output input, as the
    backend's Argo compiler adds them (addImplicitDependencies). The SDK leaves out a producer whose output feeds
    only a resource field (`set_memory_limit(task.output)`)."""
    found = list(task.dependent_tasks)
    for source in task.inputs.parameters.values():
        if source.WhichOneof("kind") == "task_output_parameter":
            found.append(source.task_output_parameter.producer_task)
    for source in task.inputs.artifacts.values():
        if source.WhichOneof("kind") == "task_output_artifact":
            found.append(source.task_output_artifact.producer_task)
    return tuple(dict.fromkeys(found))


def _has_default(component: ComponentSpec, input_name: str) -> bool:
    definition = component.input_definitions.parameters.get(input_name)
    return definition is not None and (definition.is_optional or definition.HasField("default_value"))


def _producer(dag: DagView, producer: str, input_name: str, optional: bool) -> Optional[dataflow.Produced]:
    if producer in dag.outputs:
        return dag.outputs[producer]
    if optional:
        return None
    state = dag.states.get(producer, "not started")
    reason = "its condition was false" if state == "CANCELED" else f"it is {state}"
    raise TaskInputError(f"input {input_name!r} comes from task {producer!r}, which produced nothing ({reason})")


def _final_status(dag: DagView, producer: str) -> Dict[str, Any]:
    """The PipelineTaskFinalStatus struct the KFP backend's driver passes to an exit handler: `state` is the
    producer's MLMD state name (COMPLETE, FAILED, ...; Vertex AI says SUCCEEDED instead). The backend leaves
    `error` empty; we give the first failure's message, as Vertex AI does (docs/mlmd-format.md)."""
    status = dag.final_statuses.get(producer)
    if status is None:
        raise TaskInputError(f"task {producer!r} has not finished, so its final status is unknown")
    return {
        "state": status.state,
        "pipelineJobResourceName": dag.run_id,
        "pipelineTaskName": producer,
        "error": {"code": 2, "message": status.error} if status.error else {},
    }


def resolve_dag_outputs(component: ComponentSpec, outputs: Mapping[str, dataflow.Produced]) -> dataflow.Produced:
    """A DAG's outputs from its children's: `value_from_parameter`, `dsl.OneOf` (the first branch that produced
    the value), and artifact selectors (the first selector whose producer made the artifact).

    An output whose producer did not run (a condition that was false) is left out, and its artifact list is
    empty: the DAG still completes, as on the backend, where outputs are looked up only when a consumer needs
    them. A consumer that needs the missing value fails then (a loop's dsl.Collected skips it).
    """
    produced = dataflow.Produced()
    for name, spec in component.dag.outputs.parameters.items():
        kind = spec.WhichOneof("kind")
        selectors = [spec.value_from_parameter] if kind == "value_from_parameter" else list(
            spec.value_from_oneof.parameter_selectors
        )
        for selector in selectors:
            source = outputs.get(selector.producer_subtask)
            if source is not None and selector.output_parameter_key in source.parameters:
                produced.parameters[name] = source.parameters[selector.output_parameter_key]
                break
    for name, spec in component.dag.outputs.artifacts.items():
        for selector in spec.artifact_selectors:
            source = outputs.get(selector.producer_subtask)
            if source is not None and source.artifacts.get(selector.output_artifact_key):
                produced.artifacts[name] = list(source.artifacts[selector.output_artifact_key])
                break
        else:
            produced.artifacts[name] = []
    return produced


def collect_iterations(component: ComponentSpec, iterations: List[dataflow.Produced]) -> dataflow.Produced:
    """A loop's outputs (`dsl.Collected`): each output parameter as the list of its per-iteration values, each output
    artifact as all iterations' artifacts, in iteration order."""
    produced = dataflow.Produced()
    for name in component.dag.outputs.parameters:
        produced.parameters[name] = [it.parameters[name] for it in iterations if name in it.parameters]
    for name in component.dag.outputs.artifacts:
        produced.artifacts[name] = [a for it in iterations for a in it.artifacts.get(name, [])]
    return produced


def loop_items(task: PipelineTaskSpec, parameters: Mapping[str, Any],
               artifacts: Mapping[str, List[dataflow.InputArtifact]]) -> Tuple[str, List[Any], bool]:
    """A ParallelFor task's item input name, its items, and whether they are artifacts.

    Raises:
        TaskInputError: the items are not a list.
    """
    if task.WhichOneof("iterator") == "artifact_iterator":
        iterator = task.artifact_iterator
        return iterator.item_input, list(artifacts.get(iterator.items.input_artifact, [])), True
    iterator = task.parameter_iterator
    if iterator.items.WhichOneof("kind") == "raw":
        items: Any = iterator.items.raw
    else:
        name = iterator.items.input_parameter
        if name not in parameters:
            raise TaskInputError(f"loop items {name!r} have no value")
        items = parameters[name]
    if isinstance(items, str):
        try:
            items = json.loads(items)
        except json.JSONDecodeError:
            raise TaskInputError(f"loop items are not a JSON list: {items[:60]!r}") from None
    if not isinstance(items, list):
        raise TaskInputError(f"loop items must be a list, got {type(items).__name__}")
    return iterator.item_input, dataflow.whole_numbers_as_ints(items), False


def check_selector_syntax(selector: str) -> None:
    """Raises UnsupportedFeatureError for a selector form apply_selector cannot evaluate."""
    if not _SELECTOR.match(selector):
        raise errors.UnsupportedFeatureError(
            f"parameter expression selector {selector!r} is not supported by the local runner"
        )
