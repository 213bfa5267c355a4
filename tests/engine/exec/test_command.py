"""A task's command: the compiled pip prefix is split off and checked, never run; python3 is this interpreter."""

import importlib.metadata
import sys

from kfp import compiler

from kfp_lineage.engine.exec import command
from kfp_lineage.ir import spec
from kfp_lineage.ir import requirements
from tests.fixtures import pipelines


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
