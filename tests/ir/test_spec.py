"""Loading pipelines and validating their arguments, before anything runs."""

import json
import os
import re
import subprocess
import sys
import uuid

import pytest
from kfp import compiler

from kfp_lineage import errors
from kfp_lineage.ir import spec
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
        ({"valeu": "7"}, "unknown parameter 'valeu': did you mean 'value'[?] this pipeline takes mode, value"),
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


# Regressions found by tests/reliability/test_fuzz_inputs.py: each was a traceback or a multi-line error.


def _refusal(path) -> str:
    with pytest.raises(errors.InvalidInputError) as raised:
        spec.load_pipeline(str(path))
    return str(raised.value)


def test_non_utf8_spec_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"\x80")
    assert _refusal(path) == f"pipeline spec {path} is not UTF-8 text: pass a compiled pipeline YAML file"


def test_deeply_nested_spec_is_refused(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("pipelineInfo: {name: x}\nroot: " + "[" * 3000 + "1\n")
    assert _refusal(path) == (
        f"pipeline spec {path} is nested too deeply to be a compiled pipeline: pass a compiled pipeline YAML file"
    )


def test_invalid_spec_error_is_one_line(tmp_path):
    """The same on every stack: specs parse with the newest IR schema known (kfp-pipeline-spec 2.17.3)."""
    path = tmp_path / "bad.yaml"
    path.write_text("pipelineInfo: {name: x}\nroot: {'': 1}\n")
    assert _refusal(path) == (
        f'{path} is not a valid PipelineSpec: Failed to parse root field: Message type "ml_pipelines.ComponentSpec" '
        'has no field named "" at "PipelineSpec.root". Available Fields(except extensions): '
        "\"['inputDefinitions', 'outputDefinitions', 'dag', 'executorLabel', 'singlePlatformSpecs', "
        "'taskConfigPassthroughs']\"."
    )


def test_component_that_contains_itself_is_refused(tmp_path):
    import yaml

    path = tmp_path / "cycle.yaml"
    compiler.Compiler().compile(pipelines.nested, str(path))
    document = yaml.safe_load(path.read_text())
    document["components"]["comp-prepare"]["dag"]["tasks"]["make-dataset"]["componentRef"]["name"] = "comp-prepare"
    path.write_text(yaml.safe_dump(document))
    assert _refusal(path) == (
        f"{path} is not a valid PipelineSpec: component 'comp-prepare' contains itself (through task "
        "'make-dataset'): recompile the pipeline"
    )


def _nested_list(depth):
    value = []
    for _ in range(depth - 1):
        value = [value]
    return value


JSON_VALUES = "strings, finite numbers, booleans, null, lists and str-keyed dicts, at most 20 levels deep"


@pytest.mark.parametrize(
    "parameter_type, value, message",
    [
        (spec.ParameterType.NUMBER_DOUBLE, 10**400, f"parameter 'p' expects float, got {str(10**400)[:57]}...: "
         "pass --param p=<float>"),
        (spec.ParameterType.NUMBER_DOUBLE, "nan", "parameter 'p' expects a finite float, got 'nan': pass --param p=<float>"),
        (spec.ParameterType.NUMBER_DOUBLE, float("inf"), "parameter 'p' expects a finite float, got inf: "
         "pass --param p=<float>"),
        (spec.ParameterType.STRING, 10**5000, "parameter 'p' expects str, got a value of type int too large to show: "
         "pass --param p=<str>"),
        (spec.ParameterType.NUMBER_INTEGER, _nested_list(5000), "parameter 'p' expects int, got a value of type list "
         "too large to show: pass --param p=<int>"),
        # Refused alike whether this Python's json parser gives up on the depth (3.11) or parses it (3.13).
        (spec.ParameterType.LIST, "[" * 5000 + "]" * 5000, "parameter 'p' expects a JSON list, got one with lists or "
         f"dicts nested more than 20 levels deep: pass {JSON_VALUES}"),
        (spec.ParameterType.LIST, "[" + "1" * 5000 + "]", f"parameter 'p' expects list, got {repr('[' + '1' * 100)[:57]}...: "
         "pass --param p=<list>"),
        (spec.ParameterType.LIST, "[" * 21 + "]" * 21, "parameter 'p' expects a JSON list, got one with lists or dicts "
         f"nested more than 20 levels deep: pass {JSON_VALUES}"),
        (spec.ParameterType.LIST, [float("nan")], f"parameter 'p' expects a JSON list, got one with the number nan: "
         f"pass {JSON_VALUES}"),
        (spec.ParameterType.LIST, [b"x"], f"parameter 'p' expects a JSON list, got one with a value of type bytes: "
         f"pass {JSON_VALUES}"),
        (spec.ParameterType.STRUCT, {1: 2}, f"parameter 'p' expects a JSON dict, got one with a key of type int: "
         f"pass {JSON_VALUES}"),
    ],
    ids=["int-beyond-float", "nan", "inf", "int-of-5000-digits", "list-5000-deep", "json-5000-deep",
         "json-int-of-5000-digits", "json-21-deep", "nan-in-list", "bytes-in-list", "int-key"],
)
def test_values_that_cannot_be_recorded_are_refused(parameter_type, value, message):
    with pytest.raises(errors.InvalidInputError) as raised:
        spec.convert_parameter("p", value, parameter_type)
    assert str(raised.value) == message


def test_json_nested_20_levels_is_accepted():
    assert spec.convert_parameter("p", "[" * 20 + "]" * 20, spec.ParameterType.LIST) == _nested_list(20)


def test_yaml_aliases_that_expand_beyond_reason_are_refused(tmp_path):
    # A "billion laughs" in a parameter default (a protobuf Value, which the parser would copy in full): 9 levels
    # of 10 aliases each expand to 10**9 values.
    levels = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"&a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]" for level in range(1, 10)]
    path = tmp_path / "laughs.yaml"
    path.write_text("pipelineInfo: {name: x}\nroot:\n  inputDefinitions:\n    parameters:\n      p:\n"
                    "        parameterType: LIST\n        defaultValue:\n"
                    + "".join(f"        - {level}\n" for level in levels))
    assert _refusal(path) == (
        f"{path} is not a valid PipelineSpec: its YAML aliases expand to more than 1,000,000 values: write the "
        "repeated parts out, or recompile the pipeline"
    )


def test_a_few_yaml_aliases_are_fine(tmp_path, branches_yaml):
    import yaml

    document = yaml.safe_load(open(branches_yaml).read())
    executors = document["deploymentSpec"]["executors"]
    for name in ("exec-echo-2", "exec-echo-3", "exec-echo-4"):
        executors[name] = executors["exec-echo"]  # the same object: safe_dump writes an anchor and aliases
    path = tmp_path / "aliases.yaml"
    path.write_text(yaml.safe_dump(document))
    assert "*id001" in path.read_text()
    assert spec.load_pipeline(str(path)).spec.pipeline_info.name == "branches"


# --- Python pipeline modules: the module form, and errors that name the file and line ----------------------------

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KFP_LINEAGE = os.path.join(os.path.dirname(sys.executable), "kfp-lineage")
TINY_PIPELINE = """from kfp import dsl


@dsl.component
def add(a: int) -> int:
    return a + 1


@dsl.pipeline
def tiny():
{body}
"""


def test_module_form_is_imported_from_the_current_directory_as_python_m_would():
    # The console script's sys.path starts with .venv/bin, not the working directory: without the module form's
    # own path entry, `pipelines` (the repository's folder) is not importable.
    done = subprocess.run([KFP_LINEAGE, "submit", "pipelines.training:training", "--kfp-host", "http://127.0.0.1:1",
                           "--dry-run"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["body"]["pipeline_spec"]["pipelineInfo"]["name"] == "training"


def test_module_form_leaves_sys_path_as_it_was(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = f"flows_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(TINY_PIPELINE.format(body="    add(a=1)"))
    before = list(sys.path)
    assert spec.load_pipeline(f"{name}:tiny").name == "tiny"
    assert sys.path == before


@pytest.mark.parametrize("source, message", [
    ("from kfp import dsl\n\n\n@dsl.pipeline\ndef tiny(:\n    pass\n",
     "cannot load pipeline module flow.py: SyntaxError at flow.py, line 5: invalid syntax"),
    (TINY_PIPELINE.format(body="    add(a=1)\n    add(a=None + 1)"),
     "cannot load pipeline module flow.py: TypeError at flow.py, line 12: unsupported operand type(s) for +: "
     "'NoneType' and 'int'"),
    (TINY_PIPELINE.format(body="    with dsl.ParallelFor([1, 2]) as item:\n        inner = add(a=item)\n"
                               "    add(a=inner.output)"),
     "cannot load pipeline module flow.py: InvalidTopologyException at flow.py, line 9: Illegal task dependency "
     "across DSL context managers."),
    ("import helpers\n", "cannot load pipeline module flow.py: KeyError at helpers.py, line 2: 'SETTING'"),
    ("import not_installed_anywhere\n",
     "cannot load pipeline module flow.py: ModuleNotFoundError at flow.py, line 1: No module named "
     "'not_installed_anywhere'"),
])
def test_a_module_that_fails_to_import_is_one_line_naming_file_and_line(tmp_path, monkeypatch, source, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flow.py").write_text(source)
    (tmp_path / "helpers.py").write_text("import os\nSETTING = os.environ['SETTING']\n")
    with pytest.raises(errors.InvalidInputError) as raised:
        spec.load_pipeline("flow.py")
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_a_module_form_that_fails_inside_names_its_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    package = f"pkg_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "flow.py").write_text(TINY_PIPELINE.format(body="    add(a=1)\n    add(a=None + 1)"))
    with pytest.raises(errors.InvalidInputError, match=re.escape(
            f"cannot load pipeline module {package}.flow: TypeError at {package}/flow.py, line 12: ")):
        spec.load_pipeline(f"{package}.flow")
    with pytest.raises(errors.InvalidInputError, match=re.escape(
            f"cannot import pipeline module '{package}.nope' (No module named '{package}.nope'): pass a .yaml spec")):
        spec.load_pipeline(f"{package}.nope:tiny")


def test_cli_exits_2_with_one_line_for_a_module_that_fails_to_import(tmp_path):
    (tmp_path / "flow.py").write_text(TINY_PIPELINE.format(body="    add(a=1)\n    add(a=None + 1)"))
    done = subprocess.run([KFP_LINEAGE, "run", "flow.py", "--store", str(tmp_path / "mlmd.sqlite")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == ("Error: cannot load pipeline module flow.py: TypeError at flow.py, line 12: unsupported "
                           "operand type(s) for +: 'NoneType' and 'int'\n")
    assert not (tmp_path / "mlmd.sqlite").exists()  # invalid input writes nothing
