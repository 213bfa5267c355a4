"""A task's command: the compiled pip prefix is split off and checked, never run; python3 is this interpreter."""

import importlib.metadata
import json
import sys
from typing import List

from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Output

from kfp_lineage.engine.exec import command
from kfp_lineage.ir import spec
from kfp_lineage.ir import requirements
from tests.fixtures import pipelines
from tests.mlmd_view import run_and_view


def _container(tmp_path, component_name="comp-make-dataset"):
    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(pipelines.linear, str(path))
    loaded = spec.load_pipeline(str(path))
    label = loaded.spec.components[component_name].executor_label
    return loaded.spec.deployment_spec["executors"][label]["container"]


def test_split_pip_prefix_finds_requirements_and_the_program(tmp_path):
    container = _container(tmp_path)
    prefix = requirements.split_pip_prefix(list(container["command"]))
    # The compiler pins the kfp that compiled the spec: 2.13.0 on the legacy stack, 2.17.3 on the current one.
    assert f"kfp=={importlib.metadata.version('kfp')}" in prefix.requirements
    assert 'typing-extensions>=3.7.4,<5; python_version<"3.9"' in prefix.requirements
    assert prefix.command[:2] == ("sh", "-ec")
    assert "pip install" not in " ".join(prefix.command)


def test_command_without_pip_prefix_is_left_alone():
    assert requirements.split_pip_prefix(["python3", "-c", "print(1)"]) is None


def test_check_requirements_reports_missing_and_mismatched_but_skips_false_markers():
    installed = importlib.metadata.version("kfp")
    problems = requirements.check_requirements(
        [f"kfp=={installed}", "kfp==1.0.0", "surely-not-installed-pkg==1.0", 'pytest>=1; python_version<"3"']
    )
    assert [p.describe() for p in problems] == [
        f"kfp==1.0.0 (installed: {installed})",
        "surely-not-installed-pkg==1.0 (not installed)",
    ]


def test_python_shim_runs_this_interpreter(tmp_path):
    import subprocess

    directory = command.python_shim_dir(str(tmp_path))
    out = subprocess.run(
        [f"{directory}/python3", "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == sys.prefix


@dsl.component(base_image="python:3.11")
def _number(num: int, out: Output[Dataset]):
    with open(out.path, "w") as f:
        f.write(str(num))


@dsl.container_component
def _add_listed(in_datasets: Input[List[Dataset]], total: dsl.OutputPath(str)):
    # As KFP's test pipeline artifacts_simple.yaml: the whole list placeholder, read as JSON by the program.
    return dsl.ContainerSpec(
        image="python:3.11", command=["python3", "-c"],
        args=["import json, sys\n"
              "uris = [d['uri'] for d in json.loads(sys.argv[1])]\n"
              "open(sys.argv[2], 'w').write(str(sum(int(open(u).read()) for u in uris)))\n",
              in_datasets, total],
    )


@dsl.pipeline(name="list-placeholder")
def _list_placeholder():
    with dsl.ParallelFor([1, 2, 3]) as num:
        made = _number(num=num)
    _add_listed(in_datasets=dsl.Collected(made.outputs["out"]))


def test_a_whole_artifact_list_placeholder_is_the_list_as_json(tmp_path, sqlite_url):
    # kfp.local's resolver raised IndexError on {{$.inputs.artifacts['in_datasets']}} (no .uri/.path after it).
    result, view = run_and_view(_list_placeholder, tmp_path, sqlite_url, "listed")
    assert result.state == "COMPLETE", {k: t.error for k, t in result.tasks.items()}
    assert result.tasks["add-listed"].outputs == {"total": {"value": "6"}}
    assert len(view.inputs("add-listed")["in_datasets"]) == 3


def test_resolve_placeholders_gives_name_type_uri_and_metadata_of_each_artifact():
    executor_input = {
        "inputs": {"artifacts": {"data": {"artifacts": [
            {"name": "7", "type": {"schemaTitle": "system.Dataset"}, "uri": "/a/0", "metadata": {"k": "{{$.x}}"}},
            {"name": "8", "type": {"schemaTitle": "system.Dataset"}, "uri": "/a/1"},
        ]}}},
        "outputs": {"outputFile": "/o/executor_output.json"},
    }
    argv = command.resolve_placeholders(
        ["prog", "{{$.inputs.artifacts['data']}}", "{{$.inputs.artifacts['data'].uri}}",
         "x={{$.inputs.artifacts['none']}}"],
        executor_input, _Launch())
    assert json.loads(argv[1]) == executor_input["inputs"]["artifacts"]["data"]["artifacts"]
    assert argv[2] == "/a/0"
    assert argv[3] == "x=[]"  # an absent input: an empty list, as an absent input's .uri placeholder gives null


class _Launch:
    run_id = "run-1"
    label = "task"
    pipeline_root = "/root"
