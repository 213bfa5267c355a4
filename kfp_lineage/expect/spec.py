"""Lineage specs (`specs/<pipeline>.lineage.yaml`): loading them, validating them against the JSON Schema, writing them.

The format is described in docs/lineage-spec.md and, for machines, in kfp_lineage/schemas/lineage-spec.schema.json.
Errors name the file, the line and the field, and say how to fix it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import os
import re
from importlib import resources
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from kfp_lineage import errors, task_paths
from kfp_lineage.ir import yaml_limits

SCHEMA_RESOURCE = "schemas/lineage-spec.schema.json"
STATES = ("COMPLETE", "FAILED", "CANCELED", "CACHED", "RUNNING", "NEW")
INPUT, OUTPUT = "INPUT", "OUTPUT"

_Path = Tuple[Union[str, int], ...]


class LineageSpecError(errors.InvalidInputError):
    """A lineage spec file is missing, is not YAML, or does not follow the lineage spec schema."""


@dataclasses.dataclass(frozen=True)
class EventSpec:
    """One expected INPUT or OUTPUT event of a task (`count` events under the same key)."""

    direction: str
    key: str
    artifact_type: str
    producer: Optional[str] = None
    metadata: Tuple[str, ...] = ()
    count: int = 1
    line: int = 0

    def describe(self) -> str:
        """`INPUT model (system.Model from train.model)`: how differences and messages name the event."""
        where = f" from {self.producer}" if self.producer else ""
        return f"{self.direction} {self.key} ({self.artifact_type}{where})"


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What one task must record: execution type, accepted final states, events."""

    path: str
    execution_type: str
    states: Tuple[str, ...]
    inputs: Dict[str, EventSpec] = dataclasses.field(default_factory=dict)
    outputs: Dict[str, EventSpec] = dataclasses.field(default_factory=dict)
    allow_extra_events: bool = False
    line: int = 0


@dataclasses.dataclass(frozen=True)
class LineageSpec:
    """A whole lineage spec: the pipeline it is for and its tasks, keyed by task path."""

    pipeline: str
    tasks: Dict[str, TaskSpec]
    allow_extra_tasks: bool = False
    source: str = "<string>"
    tasks_line: int = 0

    def event_count(self) -> int:
        """How many events the spec expects, over all tasks."""
        return sum(e.count for t in self.tasks.values() for e in (*t.inputs.values(), *t.outputs.values()))


@functools.lru_cache(maxsize=1)
def load_schema() -> Dict[str, Any]:
    """The lineage spec JSON Schema shipped as package data."""
    text = resources.files("kfp_lineage").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    return json.loads(text)


def load_lineage_spec(path: Union[str, os.PathLike]) -> LineageSpec:
    """Reads and validates a lineage spec file.

    Args:
        path: a `.lineage.yaml` file.

    Returns:
        The parsed spec; line numbers point into the file.

    Raises:
        LineageSpecError: the file is missing or unreadable, is not YAML, or breaks the schema; the message is
            `FILE:LINE: FIELD: problem; fix`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise LineageSpecError(
            f"lineage spec {path} does not exist: pass a specs/<pipeline>.lineage.yaml file "
            "(`kfp-lineage expect RUN_ID` writes one to start from)"
        )
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise LineageSpecError(f"cannot read lineage spec {path}: {e}") from None
    return parse_lineage_spec(text, source=path)


def parse_lineage_spec(text: str, source: str = "<string>") -> LineageSpec:
    """Parses and validates lineage spec YAML text.

    Args:
        text: the YAML document.
        source: the file name used in error messages and check reports.

    Returns:
        The parsed spec.

    Raises:
        LineageSpecError: not YAML, a duplicate key, or a schema violation, naming the line and the fix.
    """
    try:
        data, lines = _compose_with_lines(text, source)
        problems = _schema_problems(data, lines)
    except RecursionError:  # the YAML parser, the line walk and the schema validator all recurse
        raise LineageSpecError(
            f"{source}: nested too deeply to be a lineage spec; a spec is a few levels of tasks and events"
        ) from None
    if problems:
        first = problems[0]
        more = f" ({len(problems) - 1} more problem{'s' if len(problems) > 2 else ''} after this one)" \
            if len(problems) > 1 else ""
        raise LineageSpecError(f"{source}:{first}{more}")
    default_extra = bool(data.get("allow_extra_events", False))
    tasks: Dict[str, TaskSpec] = {}
    for written, body in data["tasks"].items():
        # Keys may write a loop iteration either way (`for-loop-2[0]/train`); the spec holds the one notation.
        path = task_paths.normalize_path(written)
        line = lines.get(("tasks", written), 0)
        if path in tasks:
            raise LineageSpecError(
                f"{source}:{line}: tasks.{written}: the same task as {tasks[path].path} (line {tasks[path].line}); "
                "merge the two entries into one")
        states = body["state"] if isinstance(body["state"], list) else [body["state"]]
        tasks[path] = TaskSpec(
            path=path,
            execution_type=body["type"],
            states=tuple(states),
            inputs=_events(INPUT, body.get("inputs") or {}, lines, ("tasks", written, "inputs")),
            outputs=_events(OUTPUT, body.get("outputs") or {}, lines, ("tasks", written, "outputs")),
            allow_extra_events=bool(body.get("allow_extra_events", default_extra)),
            line=line,
        )
    return LineageSpec(
        pipeline=data["pipeline"],
        tasks=tasks,
        allow_extra_tasks=bool(data.get("allow_extra_tasks", False)),
        source=source,
        tasks_line=lines.get(("tasks",), 0),
    )


def _events(direction: str, body: Mapping[str, Any], lines: Mapping[_Path, int], where: _Path) -> Dict[str, EventSpec]:
    return {
        key: EventSpec(
            direction=direction,
            key=key,
            artifact_type=event["type"],
            producer=task_paths.normalize_producer(event["from"]) if event.get("from") else None,
            metadata=tuple(event.get("metadata") or ()),
            count=int(event.get("count", 1)),
            line=lines.get((*where, key), 0),
        )
        for key, event in body.items()
    }


# YAML with line numbers ---------------------------------------------------------------------------------------

def _compose_with_lines(text: str, source: str) -> Tuple[Any, Dict[_Path, int]]:
    """The YAML document as Python data, and the 1-based line of every mapping key and sequence item by path."""
    lines: Dict[_Path, int] = {}
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, lines
            if yaml_limits.expands_beyond(node, _node_children):
                raise LineageSpecError(
                    f"{source}:{node.start_mark.line + 1}: its YAML aliases expand to more than "
                    f"{yaml_limits.MAX_EXPANDED_VALUES:,} values; write the repeated parts out"
                )
            # Lines first: constructing the data flattens `<<` merge keys into the node tree.
            lines[()] = node.start_mark.line + 1
            _collect_lines(node, (), lines, source)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise LineageSpecError(f"{source}{where}: not valid YAML: {problem}; fix the syntax") from None
    return data, lines


def _node_children(node: yaml.Node) -> List[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return []


_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _collect_lines(node: yaml.Node, path: _Path, lines: Dict[_Path, int], source: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: Dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:  # `<<: *anchor`: the merged keys point at their parent's line
                continue
            if key_node.tag != _STR_TAG:
                shown = ".".join(str(p) for p in (*path, key))
                raise LineageSpecError(f"{source}:{line}: {shown}: a key must be a string; quote it: \"{key}\"")
            if key in seen:
                shown = ".".join(str(p) for p in (*path, key))
                raise LineageSpecError(
                    f"{source}:{line}: {shown}: duplicate key (first on line {seen[key]}); "
                    "merge the two entries into one"
                )
            seen[key] = line
            lines[(*path, key)] = line
            _collect_lines(value_node, (*path, key), lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _collect_lines(item, (*path, index), lines, source)


# Schema validation with useful messages --------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, order=True)
class _Problem:
    line: int
    field: str
    text: str

    def __str__(self) -> str:
        return f"{self.line}: {self.field}: {self.text}"


def _schema_problems(data: Any, lines: Mapping[_Path, int]) -> List[_Problem]:
    import jsonschema  # here, not at the top: only loading a spec needs it

    validator = jsonschema.Draft202012Validator(load_schema())
    problems = {_problem(error, lines) for error in validator.iter_errors(data)}
    return sorted(problems)


def _problem(error: Any, lines: Mapping[_Path, int]) -> _Problem:
    """One schema violation as `LINE: FIELD: problem; fix`, the fix taken from the schema's x-hint / x-example."""
    path: _Path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    hint = schema.get("x-hint", "")
    if error.validator == "required":
        missing = re.search(r"'([^']+)' is a required property", error.message)
        name = missing.group(1) if missing else "?"
        example = _property_example(schema, name)
        return _Problem(_line(lines, path), _field(path) or "the document",
                        f"missing field '{name}'; add it, e.g. {example}" if example else f"missing field '{name}'")
    if error.validator == "additionalProperties" and isinstance(error.instance, dict) and "properties" in schema:
        known = list(schema["properties"])
        extra = sorted(k for k in error.instance if k not in known)
        name = extra[0] if extra else "?"
        close = difflib.get_close_matches(str(name), known, n=1)
        fix = f"did you mean '{close[0]}'?" if close else f"remove it or use one of {', '.join(known)}"
        return _Problem(_line(lines, (*path, name)), _field((*path, name)), f"unknown field '{name}'; {fix}")
    if "propertyNames" in error.schema_path and isinstance(error.instance, str):
        bad = error.instance
        return _Problem(_line(lines, (*path, bad)), _field((*path, bad)), f"{bad!r} is not a task path; {hint}")
    if error.validator == "type":
        wanted = {"object": "a mapping", "array": "a list", "string": "a string", "boolean": "true or false",
                  "integer": "a whole number"}.get(str(error.validator_value), str(error.validator_value))
        return _Problem(_line(lines, path), _field(path) or "the document",
                        f"expected {wanted}, got {_kind(error.instance)}; {hint}".rstrip("; "))
    if error.validator == "minProperties":
        return _Problem(_line(lines, path), _field(path), f"is empty; {hint}".rstrip("; "))
    verdict = "is not valid" if error.validator == "pattern" else "is not allowed"
    return _Problem(_line(lines, path), _field(path) or "the document",
                    f"{_short(error.instance)} {verdict}; {hint}".rstrip("; "))


def _property_example(schema: Mapping[str, Any], name: str) -> str:
    sub = schema.get("properties", {}).get(name, {})
    if "$ref" in sub:
        sub = load_schema()["$defs"].get(sub["$ref"].rsplit("/", 1)[-1], {})
    return sub.get("x-example", "")


def _line(lines: Mapping[_Path, int], path: _Path) -> int:
    """The line of `path`, or of its nearest ancestor that has one."""
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path, 1)


def _field(path: Sequence[Union[str, int]]) -> str:
    shown = ""
    for part in path:
        shown += f"[{part}]" if isinstance(part, int) else (f".{part}" if shown else str(part))
    return shown


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {_short(value)}"
    return _short(value)


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


# Writing specs --------------------------------------------------------------------------------------------

_WIDTH = 110


def dump_lineage_spec(spec: LineageSpec, header: Sequence[str] = ()) -> str:
    """The spec as reviewable YAML: one block per task, simple events on one line.

    Args:
        spec: the spec to write (line numbers and source are ignored).
        header: comment lines written first, without the leading `# `.

    Returns:
        YAML text that parse_lineage_spec reads back to an equal spec.
    """
    out = [f"# {line}".rstrip() for line in header]
    out.append("version: 1")
    out.append(f"pipeline: {_scalar(spec.pipeline)}")
    if spec.allow_extra_tasks:
        out.append("allow_extra_tasks: true")
    out.append("tasks:")
    for task in spec.tasks.values():
        out.append(f"  {_scalar(task.path)}:")
        out.append(f"    type: {task.execution_type}")
        states = task.states[0] if len(task.states) == 1 else "[" + ", ".join(task.states) + "]"
        out.append(f"    state: {states}")
        if task.allow_extra_events:
            out.append("    allow_extra_events: true")
        for name, events in (("inputs", task.inputs), ("outputs", task.outputs)):
            if not events:
                continue
            out.append(f"    {name}:")
            for event in events.values():
                out.extend(_event_lines(event))
    return "\n".join(out) + "\n"


def _event_lines(event: EventSpec) -> List[str]:
    fields = [("type", event.artifact_type)]
    if event.producer:
        fields.append(("from", _scalar(event.producer)))
    if event.count != 1:
        fields.append(("count", str(event.count)))
    key = f"      {_scalar(event.key)}:"
    flow = dict(fields)
    if event.metadata:
        flow["metadata"] = "[" + ", ".join(_scalar(k) for k in event.metadata) + "]"
    one_line = key + " {" + ", ".join(f"{k}: {v}" for k, v in flow.items()) + "}"
    if len(one_line) <= _WIDTH:
        return [one_line]
    lines = [key] + [f"        {k}: {v}" for k, v in fields]
    lines.extend(_wrapped("        metadata: [", [_scalar(k) for k in event.metadata], "]"))
    return lines


def _wrapped(opening: str, items: Sequence[str], closing: str, width: int = _WIDTH) -> List[str]:
    """A flow list over as many lines as needed to stay within `width`; continuation lines indented deeper."""
    lines, current = [], opening
    indent = " " * (len(opening) - len(opening.lstrip()) + 2)
    for index, item in enumerate(items):
        piece = item + ("," if index < len(items) - 1 else closing)
        if current.strip() and not current.endswith("[") and len(current) + 1 + len(piece) > width:
            lines.append(current)
            current = indent + piece
        else:
            current += ("" if current.endswith("[") else " ") + piece
    if not items:
        current += closing
    lines.append(current)
    return lines


def _scalar(value: str) -> str:
    """`value` as a plain YAML scalar when that reads back as the same string (also inside a flow list),
    otherwise JSON-quoted."""
    plain = re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_./-]*", value) is not None
    if plain:
        try:
            plain = yaml.safe_load(value) == value
        except yaml.YAMLError:
            plain = False
    return value if plain else json.dumps(value)
