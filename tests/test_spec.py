"""Loading pipelines and validating their arguments, before anything runs."""

import pytest
from kfp import compiler

from kfp_lineage import errors, spec
from tests.fixtures import pipelines


@pytest.fixture
def branches_yaml(tmp_path):
    path = tmp_path / "branches.yaml"
    compiler.Compiler().compile(pipelines.branches, str(path))
    return str(path)


def test_load_compiled_yaml(branches_yaml):
    loaded = spec.load_pipeline(branches_yaml)
    assert loaded.name == "branches"
    assert "comp-condition-branches-1" in loaded.spec.components


def test_load_python_file_with_function_name():
    assert spec.load_pipeline("tests/fixtures/pipelines.py:nested").name == "nested"


def test_load_module_with_several_pipelines_needs_a_name():
    with pytest.raises(errors.InvalidInputError, match=r"defines \d+ pipelines .* name one as"):
        spec.load_pipeline("tests/fixtures/pipelines.py")


@pytest.mark.parametrize(
    "content, message",
    [
        ("a: [1, 2\n", "is not valid YAML at line 2"),
        ("", "is empty or not a mapping"),
        ("name: my-component\nimplementation: {}\n", r"is not a compiled KFP PipelineSpec \(missing pipelineInfo, root\)"),
        ("pipelineInfo: {name: x}\nroot: {dag: {tasks: {}}}\nbogusField: 1\n", "is not a valid PipelineSpec"),
    ],
)
def test_bad_spec_files(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(errors.InvalidInputError, match=message):
        spec.load_pipeline(str(path))


def test_missing_spec_file(tmp_path):
    with pytest.raises(errors.InvalidInputError, match="does not exist"):
        spec.load_pipeline(str(tmp_path / "nope.yaml"))


def test_arguments_are_typed_and_defaulted(branches_yaml):
    loaded = spec.load_pipeline(branches_yaml)
    assert spec.validate_arguments(loaded.spec, {"value": "7"}) == {"value": 7, "mode": "fast"}


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"valeu": "7"}, "unknown parameter 'valeu': this pipeline takes mode, value"),
        ({"value": "seven"}, "parameter 'value' expects int, got 'seven'"),
        ({"value": True}, "parameter 'value' expects int, got True"),
        ({"mode": 3}, "parameter 'mode' expects str, got 3"),
    ],
)
def test_bad_arguments(branches_yaml, arguments, message):
    loaded = spec.load_pipeline(branches_yaml)
    with pytest.raises(errors.InvalidInputError, match=message):
        spec.validate_arguments(loaded.spec, arguments)


@pytest.mark.parametrize(
    "parameter_type, text, value",
    [
        (spec.ParameterType.BOOLEAN, "true", True),
        (spec.ParameterType.BOOLEAN, "0", False),
        (spec.ParameterType.NUMBER_DOUBLE, "0.25", 0.25),
        (spec.ParameterType.LIST, "[1, 2]", [1, 2]),
        (spec.ParameterType.STRUCT, '{"a": 1}', {"a": 1}),
    ],
)
def test_convert_command_line_strings(parameter_type, text, value):
    assert spec.convert_parameter("p", text, parameter_type) == value


def test_required_parameter(tmp_path):
    from kfp import dsl

    @dsl.pipeline(name="needs")
    def needs(rows: int):
        pipelines.make_dataset(rows=rows)

    loaded = spec.load_pipeline(needs)
    with pytest.raises(errors.InvalidInputError, match=r"parameter 'rows' \(int\) is required: pass --param rows=VALUE"):
        spec.validate_arguments(loaded.spec, {})
