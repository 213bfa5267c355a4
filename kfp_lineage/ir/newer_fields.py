"""IR written by a newer kfp than the installed kfp-pipeline-spec: parsed in full, its newer features handled by name.

A spec compiled by kfp 2.17 may use fields that the legacy stack's kfp-pipeline-spec (0.6, with kfp 2.13) does not
know: `literals` of a parameter, the TASK_CONFIG parameter type, a component's `taskConfigPassthroughs`, an
importer's `downloadToWorkspace`. Specs are parsed with the newest IR schema this tool knows (kfp-pipeline-spec
2.17.3, vendored in _pipeline_spec_2_17_3.py), then handed to the rest of the code as the installed PipelineSpec
class, where the fields it lacks travel as protobuf unknown fields: nothing is dropped, `to_dict` gives them back,
and a parse never fails for want of a newer installed package.

What a local run does with each newer feature (`check_local_run`, before anything runs, on either stack):
- `literals`: honoured: run arguments and defaults must be one of them (`literals`, used by spec.validate_arguments);
- `taskConfigPassthroughs` of RESOURCES and the KUBERNETES_* fields: honoured (they only shape a cluster's pods,
  which a local run has none of); of ENV: honoured with `applyToTask`, refused without it (the cluster would run the
  task without those variables);
- a TASK_CONFIG input: honoured as the backend does without passthroughs (kfp's executor passes an empty
  dsl.TaskConfig), when the installed kfp has dsl.TaskConfig; refused when passthroughs would fill it;
- `downloadToWorkspace`: refused (it copies into a cluster's pipeline workspace).
"""

from __future__ import annotations

import base64
import functools
import importlib.metadata
from typing import Any, Dict, List, Mapping, Type

import kfp
from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2, json_format, message, struct_pb2
from google.protobuf import message_factory
from google.rpc import status_pb2
from kfp.pipeline_spec import pipeline_spec_pb2
from packaging import version as packaging_version

from kfp_lineage import errors
from kfp_lineage.ir import _pipeline_spec_2_17_3 as newest_schema

NEWEST_KNOWN = newest_schema.VERSION
# Passthrough fields that only shape a cluster's pods (resources, scheduling, volumes): nothing to apply locally.
_POD_ONLY_PASSTHROUGHS = ("RESOURCES", "KUBERNETES_AFFINITY", "KUBERNETES_TOLERATIONS", "KUBERNETES_NODE_SELECTOR",
                          "KUBERNETES_VOLUMES")


def installed_version() -> str:
    """The installed kfp-pipeline-spec's version."""
    return importlib.metadata.version("kfp-pipeline-spec")


@functools.lru_cache(maxsize=None)
def _uses_installed_schema() -> bool:
    """True when the installed kfp-pipeline-spec knows at least what the vendored schema does."""
    return packaging_version.Version(installed_version()) >= packaging_version.Version(NEWEST_KNOWN)


@functools.lru_cache(maxsize=None)
def _newest_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    added: set = set()

    def add(file_descriptor: Any) -> None:
        for dependency in file_descriptor.dependencies:
            add(dependency)
        if file_descriptor.name not in added:
            added.add(file_descriptor.name)
            pool.Add(descriptor_pb2.FileDescriptorProto.FromString(file_descriptor.serialized_pb))

    for dependency in (duration_pb2.DESCRIPTOR, struct_pb2.DESCRIPTOR, status_pb2.DESCRIPTOR):
        add(dependency)
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(
        base64.b64decode("".join(newest_schema.SERIALIZED_FILE_DESCRIPTOR))))
    return pool


@functools.lru_cache(maxsize=None)
def newest_class(full_name: str) -> Type[message.Message]:
    """The message class of `full_name` (`ml_pipelines.PipelineSpec`) in the newest IR schema known."""
    if _uses_installed_schema():
        return message_factory.GetMessageClass(pipeline_spec_pb2.DESCRIPTOR.pool.FindMessageTypeByName(full_name))
    return message_factory.GetMessageClass(_newest_pool().FindMessageTypeByName(full_name))


def parse_pipeline_spec(document: Mapping[str, Any]) -> pipeline_spec_pb2.PipelineSpec:
    """Parses a compiled spec's first YAML document into the installed PipelineSpec class, losing nothing.

    Raises:
        json_format.ParseError: the document is not a PipelineSpec even for the newest schema known (the message
            names the field and where it is).
    """
    newest = json_format.ParseDict(document, newest_class("ml_pipelines.PipelineSpec")())
    if isinstance(newest, pipeline_spec_pb2.PipelineSpec):
        return newest
    return pipeline_spec_pb2.PipelineSpec.FromString(newest.SerializeToString())


def parse_deployment_config(deployment: Mapping[str, Any]) -> message.Message:
    """Parses `deploymentSpec` with the newest schema known (check it; read it with preflight.deployment_config)."""
    return json_format.ParseDict(deployment, newest_class("ml_pipelines.PipelineDeploymentConfig")())


def to_newest(installed: message.Message) -> Any:
    """The same message as the newest schema's class, where the fields the installed one lacks are readable."""
    cls = newest_class(installed.DESCRIPTOR.full_name)
    return installed if isinstance(installed, cls) else cls.FromString(installed.SerializeToString())


def to_dict(installed: message.Message) -> Dict[str, Any]:
    """MessageToDict with every field the spec had, including those newer than the installed kfp-pipeline-spec.

    Use it wherever a spec leaves this process (submission to KFP or Vertex AI): MessageToDict of the installed
    class alone would drop them.
    """
    return json_format.MessageToDict(to_newest(installed))


def literals(definition: message.Message) -> List[Any]:
    """The allowed values of a parameter definition (its `literals`), as Python values; [] when it has none."""
    newest = to_newest(definition)
    return [json_format.MessageToDict(value) for value in newest.literals]


def check_local_run(pipeline_spec: pipeline_spec_pb2.PipelineSpec) -> None:
    """Refuses, naming the IR field and the task, the newer features a local run cannot reproduce (see the module).

    Raises:
        UnsupportedFeatureError: a TASK_CONFIG input that passthroughs fill, an ENV passthrough without
            applyToTask, a TASK_CONFIG input where the installed kfp has no dsl.TaskConfig, or downloadToWorkspace.
    """
    spec = to_newest(pipeline_spec)
    tasks = _task_paths_by_component(spec)
    task_config = _enum("ml_pipelines.ParameterType", "ParameterTypeEnum").values_by_name["TASK_CONFIG"].number
    passthrough_enum = _enum("ml_pipelines.TaskConfigPassthroughType", "TaskConfigPassthroughTypeEnum")
    for component_name in sorted(tasks):
        component = spec.components[component_name]
        task = tasks[component_name]
        passthroughs = [(passthrough_enum.values_by_number[p.field].name, p.apply_to_task)
                        for p in component.task_config_passthroughs]
        config_inputs = sorted(name for name, definition in component.input_definitions.parameters.items()
                               if definition.parameter_type == task_config)
        if config_inputs and passthroughs:
            fields = ", ".join(name for name, _ in passthroughs)
            raise errors.UnsupportedFeatureError(
                f"task {task!r} gets {fields} in its dsl.TaskConfig input {config_inputs[0]!r} through "
                "taskConfigPassthroughs, which only a cluster's driver fills: run it on a cluster, or drop "
                "task_config_passthroughs"
            )
        if config_inputs and not hasattr(kfp.dsl, "TaskConfig"):
            raise errors.UnsupportedFeatureError(
                f"task {task!r} has a dsl.TaskConfig input {config_inputs[0]!r} (parameterType TASK_CONFIG), and its "
                f"code would run on the installed kfp {kfp.__version__}, which has no dsl.TaskConfig: use the "
                "current stack (kfp 2.17), or drop the input"
            )
        for name, apply_to_task in passthroughs:
            if name not in _POD_ONLY_PASSTHROUGHS and not apply_to_task:
                raise errors.UnsupportedFeatureError(
                    f"task {task!r} passes {name} through without applyToTask (taskConfigPassthroughs), so on a "
                    "cluster the task itself runs without it, which a local run cannot reproduce: set "
                    "apply_to_task=True, or run it on a cluster"
                )
    deployment = parse_deployment_config(json_format.MessageToDict(spec.deployment_spec))
    for component_name in sorted(tasks):
        executor = deployment.executors.get(spec.components[component_name].executor_label)
        importer = executor is not None and executor.WhichOneof("spec") == "importer"
        if importer and executor.importer.download_to_workspace:
            raise errors.UnsupportedFeatureError(
                f"task {tasks[component_name]!r} imports with downloadToWorkspace "
                "(dsl.importer(download_to_workspace=True)), which copies into a cluster's pipeline workspace: "
                "run it on a cluster, or drop download_to_workspace"
            )


def _enum(message_name: str, enum_name: str) -> Any:
    return newest_class(message_name).DESCRIPTOR.enum_types_by_name[enum_name]


def _task_paths_by_component(spec: Any) -> Dict[str, str]:
    """Component name -> the first task path (in sorted order) that runs it, through nested DAGs; iterative."""
    found: Dict[str, str] = {}
    pending = [("", spec.root)]
    seen: set = set()
    while pending:
        prefix, component = pending.pop()
        for name in sorted(component.dag.tasks, reverse=True):
            reference = component.dag.tasks[name].component_ref.name
            path = f"{prefix}/{name}" if prefix else name
            if reference in spec.components and (reference not in found or path < found[reference]):
                found[reference] = path
            if reference in spec.components and reference not in seen:
                seen.add(reference)
                pending.append((path, spec.components[reference]))
    return found
