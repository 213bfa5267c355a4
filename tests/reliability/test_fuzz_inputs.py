"""Fuzzed pipeline specs and parameters: refused with one clear InvalidInputError, never a traceback or a store.

No `from __future__ import annotations` here: kfp reads the annotations of the `typed` pipeline below.
"""

import copy
import json
import math
import os
import tempfile
from typing import Any, Iterator, List, Tuple

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import event, given, settings
from hypothesis import strategies as st
from kfp import compiler, dsl

from kfp_lineage import cli, errors
from kfp_lineage.engine import scheduler as orchestrator
from kfp_lineage.ir import preflight
from kfp_lineage.engine import run as run_module
from kfp_lineage.ir import spec
from tests.fixtures import pipelines

# Scalars and small nested values, as YAML and JSON can hold them.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _write(directory: str, text: str) -> str:
    path = os.path.join(directory, "pipeline.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def _load_or_refuse(path: str):
    """load_pipeline's contract: a LoadedPipeline, or an InvalidInputError whose message is one line."""
    try:
        return spec.load_pipeline(path)
    except errors.InvalidInputError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        return None


# Pipeline YAML -----------------------------------------------------------------------------------------------------


@given(st.text(max_size=300))
def test_arbitrary_text_loads_or_is_refused(text):
    with tempfile.TemporaryDirectory() as tmp:
        _load_or_refuse(_write(tmp, text))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_load_or_are_refused(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pipeline.yaml")
        with open(path, "wb") as f:
            f.write(data)
        _load_or_refuse(path)


@settings(max_examples=min(10, settings.default.max_examples))
@given(st.integers(min_value=1, max_value=3000), st.sampled_from(["[", "{a: ", "- "]))
def test_deeply_nested_yaml_is_refused(depth, opener):
    with tempfile.TemporaryDirectory() as tmp:
        _load_or_refuse(_write(tmp, "pipelineInfo: {name: x}\nroot: " + opener * depth + "1\n"))


# Documents that look like a PipelineSpec at the top, with anything below.
spec_like = st.fixed_dictionaries(
    {"pipelineInfo": values, "root": values},
    optional={"components": values, "deploymentSpec": values, "schemaVersion": values, "sdkVersion": values},
)


@given(st.one_of(values, spec_like), st.lists(values, max_size=2))
def test_arbitrary_yaml_documents_load_or_are_refused(document, more_documents):
    with tempfile.TemporaryDirectory() as tmp:
        text = yaml.safe_dump_all([document, *more_documents], allow_unicode=True)
        _load_or_refuse(_write(tmp, text))


def _paths(node: Any, prefix: Tuple = ()) -> Iterator[Tuple]:
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _paths(child, prefix + (index,))


def _node(document: Any, path: Tuple) -> Any:
    for step in path:
        document = document[step]
    return document


def _scalars_of(node: Any) -> List[Any]:
    return [node] if not isinstance(node, (dict, list)) else [
        s for child in (node.values() if isinstance(node, dict) else node) for s in _scalars_of(child)
    ]


def _retyped(value: Any) -> Any:
    """The same content as another YAML type: a mapping as a list, a scalar as a string or a list, ..."""
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, str):
        return [value] if value else 0
    return str(value)


@st.composite
def mutated_specs(draw, document: dict) -> dict:
    """A compiled spec with one to three mutations: a key dropped, a value retyped, replaced or swapped."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(document) if p]
        path = draw(st.sampled_from(paths))
        parent, key = _node(document, path[:-1]), path[-1]
        # Drops and swaps mostly keep a valid PipelineSpec, so they reach the runner; the others mostly do not.
        kind = draw(st.sampled_from(["drop", "drop", "swap", "swap", "retype", "replace", "rewire"]))
        if kind == "rewire":  # a task runs another component of the spec, maybe one that contains the task
            refs = [p for p in paths if p[-2:] == ("componentRef", "name")]
            names = sorted(document.get("components") or {}) if isinstance(document.get("components"), dict) else []
            if refs and names:
                ref = draw(st.sampled_from(refs))
                _node(document, ref[:-1])["name"] = draw(st.sampled_from(names))
        elif kind == "drop":
            del parent[key]
        elif kind == "retype":
            parent[key] = _retyped(parent[key])
        elif kind == "replace":
            parent[key] = draw(values)
        else:  # another value of the same spec: a component, task or parameter name where another one was
            parent[key] = draw(st.sampled_from(_scalars_of(document) or [None]))
    return document


def _compiled(pipeline) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "p.yaml")
        compiler.Compiler().compile(pipeline, path)
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)


BRANCHES = _compiled(pipelines.branches)
NESTED = _compiled(pipelines.nested)


def _check_run(path: str, safe_to_run: bool) -> None:
    """Runs a spec that loaded; only LineageErrors may escape, and an InvalidInputError leaves no store behind."""
    loaded = _load_or_refuse(path)
    if loaded is None:
        event("refused by load_pipeline")
        return
    if not safe_to_run:  # the checks run_pipeline makes before it opens the store, and nothing else
        try:
            spec.validate_arguments(loaded.spec, {})
            preflight.check_pipeline(loaded.spec)
        except errors.LineageError as e:
            assert "\n" not in str(e), repr(str(e))
        event("deploymentSpec changed: checked, not run")
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "mlmd.sqlite")
        try:
            result = run_module.run_pipeline(
                loaded, store=store, pipeline_root=os.path.join(tmp, "root"), cwd=tmp, max_parallel=2,
                task_timeout=60,
            )
        except errors.InvalidInputError as e:
            event(f"run refused: {type(e).__name__}")
            assert "\n" not in str(e), repr(str(e))
            assert not os.path.exists(store), f"store written before refusing: {e}"
        except errors.LineageError as e:
            event(f"run raised {type(e).__name__}")
        else:
            event(f"run {result.state}")
            assert isinstance(result, orchestrator.RunResult)
            assert result.state in ("COMPLETE", "FAILED")


@given(st.data())
def test_mutated_compiled_spec_loads_and_runs_or_is_refused(data):
    original = data.draw(st.sampled_from([BRANCHES, NESTED]), label="pipeline")
    document = data.draw(mutated_specs(original), label="mutated spec")
    with tempfile.TemporaryDirectory() as tmp:
        # Only run what runs the original, trivial tasks: never a command a mutation made up.
        safe_to_run = document.get("deploymentSpec") == original["deploymentSpec"]
        _check_run(_write(tmp, yaml.safe_dump(document, allow_unicode=True)), safe_to_run)


# Parameters --------------------------------------------------------------------------------------------------------


@dsl.pipeline(name="typed")
def typed(
    count: int,
    ratio: float = 0.5,
    name: str = "x",
    flag: bool = False,
    items: list = [1, 2],
    options: dict = {"k": "v"},
):
    """Every parameter type, one required; the tasks only echo, so any accepted value runs in milliseconds."""
    pipelines.make_number(value=count)
    pipelines.echo(text=name)


TYPED = spec.load_pipeline(typed)
PYTHON_TYPES = {"count": int, "ratio": float, "name": str, "flag": bool, "items": list, "options": dict}

parameter_names = st.one_of(st.sampled_from(sorted(PYTHON_TYPES)), st.text(max_size=12))
# What a caller may pass: Python values of every type, numbers out of every range, and text that
# half-looks like each type (numbers, JSON, booleans), including JSON nested deeper than any parser's stack.
deep_json = st.one_of(st.integers(1, 60), st.integers(1, 5000)).flatmap(
    lambda n: st.sampled_from(["[" * n + "]" * n, '{"a":' * n + "1" + "}" * n])
)
number_text = st.one_of(
    st.integers().map(str),
    st.floats().map(repr),
    st.sampled_from(["1e999", "-1e999", "nan", "inf", "1_000", "0x10", " 7 ", "1" * 5000, "", "true", "False"]),
)
json_text = values.map(json.dumps)


def _nested_list(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


# Python values with no JSON form: bytes, sets, non-string keys, and lists holding them.
not_json = st.one_of(
    st.binary(max_size=3),
    st.frozensets(st.integers(), max_size=2),
    st.dictionaries(st.one_of(st.integers(), st.none()), st.integers(), min_size=1, max_size=2),
)
parameter_values = st.one_of(
    values,
    not_json,
    st.lists(not_json, min_size=1, max_size=2),
    st.dictionaries(st.text(max_size=3), not_json, min_size=1, max_size=2),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.integers(4000, 5000).map(lambda digits: 10**digits),  # repr() refuses ints of more than 4300 digits
    st.integers(1, 5000).map(_nested_list),
    number_text,
    json_text,
    deep_json,
)


def _assert_typed(result: dict) -> None:
    assert set(result) == set(PYTHON_TYPES), result
    for name, value in result.items():
        assert type(value) is PYTHON_TYPES[name], (name, value)
        assert not isinstance(value, float) or math.isfinite(value), (name, value)


@given(st.dictionaries(parameter_names, parameter_values, max_size=4))
def test_validate_arguments_types_values_or_refuses(arguments):
    try:
        result = spec.validate_arguments(TYPED.spec, arguments)
    except errors.InvalidInputError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
    else:
        _assert_typed(result)


@given(st.sampled_from(sorted(PYTHON_TYPES)), parameter_values)
def test_every_parameter_type_converts_or_refuses(name, value):
    arguments = {"count": 1, name: value}
    try:
        result = spec.validate_arguments(TYPED.spec, arguments)
    except errors.InvalidInputError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        assert repr(name) in str(e)
    else:
        _assert_typed(result)


cli_params = st.tuples(
    st.sampled_from(sorted(PYTHON_TYPES)), st.one_of(number_text, st.text(max_size=20), json_text, deep_json)
).map(lambda pair: f"{pair[0]}={pair[1]}")
cli_anything = st.one_of(  # unknown names, and text that is not NAME=VALUE at all
    st.tuples(parameter_names, st.text(max_size=10)).map(lambda pair: f"{pair[0]}={pair[1]}"), st.text(max_size=20)
)


@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(
    st.lists(st.one_of(cli_params, cli_params, cli_params, cli_anything), max_size=2).map(
        lambda params: ["count=3", *params]  # the required one first, so that some runs go through
    )
)
def test_cli_params_exit_0_1_or_2_with_one_line(typed_yaml, params):
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "mlmd.sqlite")
        args = ["run", typed_yaml, "--store", store, "--pipeline-root", os.path.join(tmp, "root")]
        for param in params:
            args += ["--param", param]
        result = CliRunner().invoke(cli.main, args)
        event(f"exit {result.exit_code}")
        # Every exit is sys.exit from the CLI; an exception escaping the command would be a traceback.
        assert isinstance(result.exception, (SystemExit, type(None))), result.exc_info
        assert result.exit_code in (0, 1, 2), (result.exit_code, result.output)
        if result.exit_code == 2:
            lines = result.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
            assert not os.path.exists(store) and not os.path.exists(os.path.join(tmp, "root"))


@pytest.fixture(scope="module")
def typed_yaml(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("typed") / "typed.yaml"
    compiler.Compiler().compile(typed, str(path))
    return str(path)
