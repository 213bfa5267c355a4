"""A team project on kfp 2.17.3 uses kfp-lineage without changing its kfp, as the README's two install paths say.

Real installs from the package index with uv (the `uv` wheel, installed into tmp_path first):
- the tool on its own (`uv tool install`), the project with kfp 2.17.3 and pytest-kfp-lineage: its pytest suite gets
  the fixtures through the CLI (any platform);
- where ml-metadata 1.21 installs: `pip install` of kfp-lineage into the project's environment keeps kfp 2.17.3.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "constraints"))
import stack as stack_module  # noqa: E402

sys.path.remove(str(REPO / "constraints"))

pytestmark = pytest.mark.slow

PROJECT_PIPELINE = '''
from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output


@dsl.component(base_image="python:3.12-slim")
def make(rows: int, data: Output[Dataset]):
    with open(data.path, "w") as f:
        f.write("x\\n" * rows)
    data.metadata["rows"] = rows


@dsl.component(base_image="python:3.12-slim")
def summarise(data: Input[Dataset], summary: Output[Metrics]):
    with open(data.path) as f:
        summary.log_metric("rows", len(f.read().splitlines()))


@dsl.pipeline(name="tiny")
def tiny(rows: int = 3):
    summarise(data=make(rows=rows).outputs["data"])
'''

PROJECT_SPEC = """\
pipeline: tiny
tasks:
  make:
    type: system.ContainerExecution
    state: COMPLETE
    outputs:
      data: {type: system.Dataset, metadata: [rows]}
  summarise:
    type: system.ContainerExecution
    state: COMPLETE
    inputs:
      data: {type: system.Dataset, from: make.data}
    outputs:
      summary: {type: system.Metrics, metadata: [rows]}
"""

PROJECT_TESTS = '''
import os

import kfp
from tiny_pipeline import tiny

HERE = os.path.dirname(os.path.abspath(__file__))


def test_summarise_reads_what_make_wrote(run_pipeline, assert_lineage):
    run = run_pipeline(tiny, {"rows": 4})
    assert run.tasks["summarise"].state == "COMPLETE"
    assert_lineage(run).task("summarise").consumed("make.data", key="data").produced("summary", "system.Metrics")


def test_the_lineage_spec(run_pipeline, assert_lineage):
    assert_lineage(run_pipeline(tiny)).matches(os.path.join(HERE, "tiny.lineage.yaml"))


def test_the_project_keeps_its_kfp():
    assert kfp.__version__ == "2.17.3"
'''


@pytest.fixture(scope="module")
def uv(tmp_path_factory):
    tools = tmp_path_factory.mktemp("uv")
    subprocess.run([sys.executable, "-m", "venv", str(tools)], check=True)
    subprocess.run([str(tools / "bin" / "python"), "-m", "pip", "install", "--quiet", "uv"], check=True)
    return str(tools / "bin" / "uv")


def project_python():
    """Python 3.12 (3.13 where there is none, as on Debian 13): a version kfp 2.17 supports and ml-metadata 1.17.1
    does not, so nothing but the tool's own environment could hold kfp-lineage on the legacy stack."""
    for candidate in ("/root/.pyenv/versions/3.12.1/bin/python3.12", shutil.which("python3.12"),
                      shutil.which("python3.13")):
        if candidate and os.path.exists(candidate) and stack_module.probe(candidate):
            return candidate
    pytest.skip("no Python 3.12 or 3.13 found: the project in this test runs on one with kfp 2.17.3")


def project_venv(uv, tmp_path, python, *requirements):
    venv = tmp_path / "project-venv"
    subprocess.run([uv, "venv", "--quiet", "-p", python, str(venv)], check=True)
    subprocess.run([uv, "pip", "install", "--quiet", *requirements], check=True,
                   env={**os.environ, "VIRTUAL_ENV": str(venv)})
    return venv


def test_a_kfp_2_17_project_gets_the_fixtures_from_the_separately_installed_tool(uv, tmp_path):
    stack, tool_python, _ = stack_module.pick(None, None)
    env = {**os.environ, "UV_TOOL_DIR": str(tmp_path / "tools"), "UV_TOOL_BIN_DIR": str(tmp_path / "bin")}
    subprocess.run([uv, "tool", "install", "--quiet", "--python", tool_python, "-c",
                    str(REPO / "constraints" / f"{stack}.txt"), str(REPO)], check=True, env=env)
    venv = project_venv(uv, tmp_path, project_python(), "kfp==2.17.3", "pytest", str(REPO / "plugin"))

    project = tmp_path / "project"
    project.mkdir()
    (project / "tiny_pipeline.py").write_text(PROJECT_PIPELINE)
    (project / "tiny.lineage.yaml").write_text(PROJECT_SPEC)
    (project / "test_tiny.py").write_text(PROJECT_TESTS)
    test_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "KFP_LINEAGE", "VIRTUAL_ENV"))}
    test_env["PATH"] = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    completed = subprocess.run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                               cwd=project, env=test_env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "3 passed" in completed.stdout

    versions = subprocess.run([str(venv / "bin" / "python"), "-c",
                               "import importlib.metadata as m, importlib.util as u; "
                               "print(m.version('kfp'), m.version('protobuf'), u.find_spec('ml_metadata') is None)"],
                              capture_output=True, text=True, check=True).stdout.split()
    assert versions[0] == "2.17.3" and versions[1].startswith("6.") and versions[2] == "True"
    check = subprocess.run([uv, "pip", "check"], env={**os.environ, "VIRTUAL_ENV": str(venv)},
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_pip_install_beside_kfp_2_17_keeps_it_and_runs_the_training_pipeline(uv, tmp_path):
    here = stack_module.probe(sys.executable)
    installs, why = stack_module.current_stack_installs({**here, "version": "3.13"})
    if not installs:
        pytest.skip(f"pip install beside kfp 2.17.3 needs ml-metadata 1.21: {why} (the tool path covers this machine)")
    python = next((p for p in (shutil.which("python3.13"), shutil.which("python3.12")) if p and stack_module.probe(p)),
                  None)
    if python is None:
        pytest.skip("no Python 3.12 or 3.13 runs here: the project in this test needs one")
    venv = project_venv(uv, tmp_path, python, "kfp==2.17.3", "pip")
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                              f"{REPO}[components]", str(REPO / "components")], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    listing = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('kfp'), m.version('ml-metadata'))"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert listing == ["2.17.3", "1.21.0"]
    check = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    run = subprocess.run([str(venv / "bin" / "kfp-lineage"), "run", str(REPO / "specs" / "training.yaml"),
                          "--param", f"source_uri={REPO / 'data' / 'breast_cancer.csv'}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("COMPLETE run training-")
