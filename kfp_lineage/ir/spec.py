"""Loading compiled pipeline specs (IR YAML or `@dsl.pipeline` functions) and validating run arguments."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import tempfile
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import yaml
from google.protobuf import json_format
from kfp import compiler
from kfp.dsl import base_component
from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage import errors
from kfp_lineage import redaction
from kfp_lineage.ir import newer_fields
from kfp_lineage.ir import python_pipelines
from kfp_lineage.ir import yaml_limits

ParameterType = pipeline_spec_pb2.ParameterType.ParameterTypeEnum


@dataclasses.dataclass(frozen=True)
class LoadedPipeline:
    """A pipeline ready to run: its compiled IR and where it came from."""

    spec: pipeline_spec_pb2.PipelineSpec
    source: str

    @property
    def name(self) -> str:
        """`pipelineInfo.name`: the name KFP uses for the system.Pipeline context."""
        return self.spec.pipeline_info.name


def load_pipeline(target: Union[str, os.PathLike, base_component.BaseComponent]) -> LoadedPipeline:
    """Loads a pipeline from a compiled IR YAML file, `FILE.py[:FUNC]`, `package.module[:FUNC]`, or a pipeline object.

    Raises:
        InvalidInputError: the file is missing, is not YAML, is not a PipelineSpec, or the module has no pipeline.
    """
    if isinstance(target, base_component.BaseComponent):
        return _compile_component(target, source=target.name)
    text = os.fspath(target)
    path_part = text.rsplit(":", 1)[0] if ":" in text and not os.path.exists(text) else text
    if path_part.endswith((".yaml", ".yml", ".json")):
        return _load_yaml(path_part)
    return _load_python(text)


def _load_yaml(path: str, shown: Optional[str] = None) -> LoadedPipeline:
    """Loads and checks a compiled spec; errors about its content name it as `shown` (default: `path`)."""
    name = shown or path
    if not os.path.isfile(path):
        raise errors.InvalidInputError(f"pipeline spec {path} does not exist: pass a compiled pipeline YAML file")
    try:
        with open(path, encoding="utf-8") as f:
            documents = [d for d in yaml.load_all(f, Loader=yaml_limits.safe_loader()) if d is not None]
    except yaml.YAMLError as e:
        if getattr(e, "problem", None) == yaml_limits.LIBYAML_NESTING_PROBLEM:
            raise errors.InvalidInputError(_too_deep(path)) from None
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise errors.InvalidInputError(f"pipeline spec {path} is not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise errors.InvalidInputError(
            f"pipeline spec {path} is not UTF-8 text: pass a compiled pipeline YAML file"
        ) from None
    except RecursionError:
        raise errors.InvalidInputError(_too_deep(path)) from None
    except OSError as e:
        raise errors.InvalidInputError(f"cannot read pipeline spec {path}: {e.strerror}") from None
    if not documents or not isinstance(documents[0], dict):
        raise errors.InvalidInputError(f"pipeline spec {path} is empty or not a mapping: pass a compiled pipeline YAML")
    document = documents[0]
    missing = [key for key in ("pipelineInfo", "root") if key not in document]
    if missing:
        raise errors.InvalidInputError(
            f"{name} is not a compiled KFP PipelineSpec (missing {', '.join(missing)}): "
            "compile a @dsl.pipeline with kfp.compiler.Compiler().compile"
        )
    _check_expanded_size(document, name)
    _check_finite_numbers(document, name)
    try:
        # With the newest IR schema known, so a spec from a newer kfp than the installed one parses in full.
        spec = newer_fields.parse_pipeline_spec(document)
        # Parsed here, not first when the run starts, so that a bad executor is refused like any other bad field.
        newer_fields.parse_deployment_config(document.get("deploymentSpec") or {})
    except json_format.ParseError as e:
        problem = " ".join(line.strip() for line in str(e).splitlines())
        raise errors.InvalidInputError(f"{name} is not a valid PipelineSpec: {problem}") from None
    except RecursionError:
        raise errors.InvalidInputError(_too_deep(name)) from None
    _check_no_component_cycle(spec, name)
    _check_artifact_types(spec, name)
    _check_no_platform_features(spec, documents[1:], name)
    return LoadedPipeline(spec=spec, source=os.path.abspath(path))


def _check_no_platform_features(spec: pipeline_spec_pb2.PipelineSpec, extra_documents: List[Any],
                                name: str) -> None:
    """Refuses platform-specific configuration (the YAML document kfp-kubernetes adds after the spec: volumes,
    secrets, node selectors, ...), naming each feature and the tasks that use it."""
    executor_tasks: Dict[str, List[str]] = {}
    for task_path, component in _container_tasks(spec):
        executor_tasks.setdefault(component.executor_label, []).append(task_path)
    for extra in extra_documents:
        platforms = extra.get("platforms") if isinstance(extra, dict) else None
        if not platforms:
            continue
        uses = []
        for platform, config in sorted(_mapping(platforms).items()):
            executors = _mapping(_mapping(_mapping(config).get("deploymentSpec")).get("executors"))
            for label, features in sorted(executors.items()):
                tasks = sorted(executor_tasks.get(label, []))
                users = (f"task{'s' if len(tasks) > 1 else ''} {', '.join(repr(t) for t in tasks)}" if tasks
                         else f"executor {label!r}")
                uses.extend(f"{platform} {feature} in {users}" for feature in sorted(_mapping(features)))
            uses.extend(f"{platform} {key} for the whole pipeline" for key in sorted(_mapping(config))
                        if key != "deploymentSpec")
        raise errors.UnsupportedFeatureError(
            f"{name} uses platform-specific features ({'; '.join(uses) or 'a platform spec'}) from kfp-kubernetes, "
            "which are not supported locally: run it on a cluster, or drop them"
        )


def _mapping(value: Any) -> Dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _container_tasks(spec: pipeline_spec_pb2.PipelineSpec) -> Iterator[Tuple[str, pipeline_spec_pb2.ComponentSpec]]:
    """(task path, component) of every non-DAG task, nested ones as `condition-1/deploy`."""
    stack = [("", spec.root)]
    while stack:
        where, component = stack.pop()
        for task_name, task in component.dag.tasks.items():
            child = spec.components.get(task.component_ref.name)
            if child is None:
                continue  # the pre-run checks name it
            task_path = f"{where}/{task_name}" if where else task_name
            if child.WhichOneof("implementation") == "dag":
                stack.append((task_path, child))
            else:
                yield task_path, child


def _check_expanded_size(document: Any, path: str) -> None:
    """Refuses a document whose YAML aliases expand beyond reason, before the protobuf parser copies every alias."""
    if yaml_limits.expands_beyond(document, yaml_limits.data_children):
        raise errors.InvalidInputError(
            f"{path} is not a valid PipelineSpec: its YAML aliases expand to more than "
            f"{yaml_limits.MAX_EXPANDED_VALUES:,} values: write the repeated parts out, or recompile the pipeline"
        )


def _check_finite_numbers(document: Any, path: str) -> None:
    """Refuses a nan or inf anywhere (YAML has .nan and .inf): JSON, and so protobuf's Struct, cannot hold them."""
    stack, seen = [("", document)], set()
    while stack:
        where, node = stack.pop()
        if isinstance(node, (dict, list)):
            if id(node) in seen:  # a YAML alias: checked already, or a cycle (`&a {x: *a}`) the parser refuses
                continue
            seen.add(id(node))
        if isinstance(node, dict):
            stack.extend((f"{where}.{key}" if where else str(key), child) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((f"{where}[{index}]", child) for index, child in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            raise errors.InvalidInputError(
                f"{path} is not a valid PipelineSpec: the value at {where!r} is {node}, which JSON cannot hold: "
                "recompile the pipeline"
            )


def _check_artifact_types(spec: pipeline_spec_pb2.PipelineSpec, path: str) -> None:
    """Refuses an artifact declared without a type: MLMD records every artifact under its schema title."""
    for component_name, component in [("root", spec.root), *spec.components.items()]:
        for kind, definitions in (("input", component.input_definitions), ("output", component.output_definitions)):
            for name, definition in definitions.artifacts.items():
                if not definition.artifact_type.schema_title:
                    raise errors.InvalidInputError(
                        f"{path} is not a valid PipelineSpec: {kind} artifact {name!r} of {component_name!r} has no "
                        "artifactType.schemaTitle: recompile the pipeline"
                    )


def _check_no_component_cycle(spec: pipeline_spec_pb2.PipelineSpec, path: str) -> None:
    """Refuses a DAG component that contains itself (directly or through other DAGs): no walk of it would end.

    Walks iteratively, so a deep spec cannot overflow the stack; references to undefined components are left to
    the pre-run checks, which name the task.
    """
    components = spec.components

    def children(component: pipeline_spec_pb2.ComponentSpec) -> Iterator[tuple]:
        for task_name, task in component.dag.tasks.items():
            if task.component_ref.name in components:
                yield task_name, task.component_ref.name

    visiting: set = set()
    done: set = set()
    stack = [("", children(spec.root))]
    while stack:
        name, pending = stack[-1]
        for task_name, child in pending:
            if child in visiting:
                raise errors.InvalidInputError(
                    f"{path} is not a valid PipelineSpec: component {child!r} contains itself "
                    f"(through task {task_name!r}): recompile the pipeline"
                )
            if child not in done:
                visiting.add(child)
                stack.append((child, children(components[child])))
                break
        else:
            stack.pop()
            visiting.discard(name)
            done.add(name)


def _too_deep(path: str) -> str:
    return f"pipeline spec {path} is nested too deeply to be a compiled pipeline: pass a compiled pipeline YAML file"


def _load_python(target: str) -> LoadedPipeline:
    # kfp builds the pipeline's spec when @dsl.pipeline runs, at import, so its errors surface in import_pipeline.
    return _compile_component(python_pipelines.import_pipeline(target), source=target)


def _compile_component(component: base_component.BaseComponent, source: str) -> LoadedPipeline:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pipeline.yaml")
        compiler.Compiler().compile(component, path)
        loaded = _load_yaml(path, shown=source)
    return LoadedPipeline(spec=loaded.spec, source=source)


def validate_arguments(spec: pipeline_spec_pb2.PipelineSpec, arguments: Mapping[str, Any]) -> Dict[str, Any]:
    """Checks run arguments against the pipeline's input definitions and fills in defaults.

    Args:
        spec: the compiled pipeline.
        arguments: parameter name -> value; strings (from the command line) are converted to the declared type.

    Returns:
        Every declared input parameter that has a value (given or default), typed as the spec declares.

    Raises:
        InvalidInputError: an unknown name, a value of the wrong type or not one of the parameter's `literals`, or a
            required parameter without a value.
        UnsupportedFeatureError: the pipeline requires input artifacts (optional ones run without a value).
    """
    definitions = spec.root.input_definitions
    required_artifacts = sorted(name for name, d in definitions.artifacts.items() if not d.is_optional)
    if required_artifacts:
        raise errors.UnsupportedFeatureError(
            f"pipeline input artifacts ({', '.join(required_artifacts)}) are not supported locally: pass a URI "
            "parameter and use dsl.importer"
        )
    declared = definitions.parameters
    unknown = sorted(set(arguments) - set(declared))
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        close = difflib.get_close_matches(unknown[0], list(declared), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise errors.InvalidInputError(f"unknown parameter {unknown[0]!r}: {hint}this pipeline takes {known}")
    values: Dict[str, Any] = {}
    for name, definition in declared.items():
        if name in arguments:
            values[name] = convert_parameter(name, arguments[name], definition.parameter_type)
        elif definition.HasField("default_value"):
            values[name] = convert_parameter(
                name, json_format.MessageToDict(definition.default_value), definition.parameter_type
            )
        elif not definition.is_optional:
            raise errors.InvalidInputError(
                f"parameter {name!r} ({type_name(definition.parameter_type)}) is required: pass --param {name}=VALUE"
            )
        if name in values:
            _check_literal(name, values[name], newer_fields.literals(definition))
    return values


def _check_literal(name: str, value: Any, allowed: list) -> None:
    """Honours a parameter's `literals` (kfp-pipeline-spec 2.14+): the value must be one of them."""
    if allowed and not any(_same_value(value, candidate) for candidate in allowed):
        shown = ", ".join(json.dumps(candidate) for candidate in allowed)
        raise errors.InvalidInputError(
            f"parameter {name!r} must be one of {shown} (its literals), got {_short(name, value)}: "
            f"pass --param {name}=<one of them>"
        )


def type_name(parameter_type: int) -> str:
    """The Python-facing name of an IR parameter type (NUMBER_INTEGER -> int)."""
    return {
        ParameterType.NUMBER_INTEGER: "int",
        ParameterType.NUMBER_DOUBLE: "float",
        ParameterType.STRING: "str",
        ParameterType.BOOLEAN: "bool",
        ParameterType.LIST: "list",
        ParameterType.STRUCT: "dict",
        ParameterType.TASK_FINAL_STATUS: "PipelineTaskFinalStatus",
    }.get(parameter_type, "unknown")


def convert_parameter(name: str, value: Any, parameter_type: int) -> Any:
    """Converts `value` (a Python value or a command-line string) to the IR parameter type.

    Raises:
        InvalidInputError: the value cannot be read as that type; names the parameter and the expected type.
    """
    expected = type_name(parameter_type)

    def bad() -> errors.InvalidInputError:
        return errors.InvalidInputError(
            f"parameter {name!r} expects {expected}, got {_short(name, value)}: "
            f"pass --param {name}=<{expected}>"
        )

    if parameter_type == ParameterType.STRING:
        if isinstance(value, str):
            return value
        raise bad()
    if parameter_type == ParameterType.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise bad()
    if parameter_type == ParameterType.NUMBER_INTEGER:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise bad() from None
        raise bad()
    if parameter_type == ParameterType.NUMBER_DOUBLE:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, (int, float, str)):
            try:
                number = float(value)
            except (ValueError, OverflowError):  # not a number, or an int beyond any float
                raise bad() from None
            if not math.isfinite(number):  # tasks receive parameters as JSON, which has no nan or inf
                raise errors.InvalidInputError(
                    f"parameter {name!r} expects a finite float, got {_short(name, value)}: "
                    f"pass --param {name}=<float>"
                )
            return number
        raise bad()
    if parameter_type in (ParameterType.LIST, ParameterType.STRUCT):
        python_type = list if parameter_type == ParameterType.LIST else dict
        problem = None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:  # not JSON, or an int of 4300+ digits
                raise bad() from None
            except RecursionError:  # nested too deep for this Python's parser (3.13's parses it, then is refused)
                if value.lstrip().startswith("[") != (python_type is list):
                    raise bad() from None
                problem, value = _TOO_DEEP, python_type()
        if not isinstance(value, python_type):
            raise bad()
        problem = problem or _json_problem(value)
        if problem:
            raise errors.InvalidInputError(
                f"parameter {name!r} expects a JSON {expected}, got one with {problem}: pass strings, finite "
                f"numbers, booleans, null, lists and str-keyed dicts, at most {MAX_PARAMETER_NESTING} levels deep"
            )
        return value
    return value


MAX_PARAMETER_NESTING = 20  # levels of lists/dicts; ml-metadata fails to parse a run's record from about 30
_TOO_DEEP = f"lists or dicts nested more than {MAX_PARAMETER_NESTING} levels deep"


def _json_problem(value: Any) -> Optional[str]:
    """What keeps a list or dict from being recorded in MLMD and passed to tasks as JSON, or None.

    Iterative, so a value nested thousands deep is described, not a RecursionError.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > MAX_PARAMETER_NESTING:
                return _TOO_DEEP
            if isinstance(item, dict):
                for key in item:
                    if not isinstance(key, str):
                        return f"a key of type {type(key).__name__}"
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and not math.isfinite(item):
            return f"the number {item!r}"
        elif item is not None and not isinstance(item, (bool, int, float, str)):
            return f"a value of type {type(item).__name__}"
    return None


def _same_value(value: Any, candidate: Any) -> bool:
    """Equal as JSON values: 1 matches 1.0 (IR numbers are doubles), but True matches neither 1 nor "true"."""
    if isinstance(value, bool) or isinstance(candidate, bool):
        return value is candidate
    return value == candidate


def _short(name: str, value: Any) -> str:
    """The value (secrets redacted) for an error message: at most 60 characters, whatever its size or depth."""
    try:
        text = repr(redaction.redact(name, value))
    except (ValueError, RecursionError):  # an int of more than 4300 digits, or a list nested a thousand deep
        text = f"a value of type {type(value).__name__} too large to show"
    return text if len(text) <= 60 else text[:57] + "..."


def input_parameter_type(component_spec: pipeline_spec_pb2.ComponentSpec, name: str) -> Optional[int]:
    """The declared type of a component's input parameter, or None when it is not declared."""
    definition = component_spec.input_definitions.parameters.get(name)
    return definition.parameter_type if definition is not None else None
