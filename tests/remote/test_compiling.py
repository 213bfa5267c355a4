"""`kfp-lineage compile`: checked-in specs match a fresh compile, and compiled components are reusable."""

import os
import subprocess
import sys

import kfp
import pytest
import yaml
from kfp import compiler, components, dsl

from kfp_lineage import errors

from kfp_lineage.remote import compiling as compile_module
from kfp_lineage.engine import run as run_module
from tests import conftest
from tests.mlmd_view import RunView

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY_PIPELINE = (
    "from kfp import dsl\n"
    "@dsl.component(base_image='python:3.11-slim')\n"
    "def hello() -> str:\n    return 'hi'\n"
    "@dsl.pipeline(name='tiny')\n"
    "def tiny():\n    hello()\n"
)


def test_checked_in_specs_are_current():
    compiled_with = compile_module.compiled_with(os.path.join(REPO, "specs", "training.yaml"))
    if compiled_with != kfp.__version__:
        # Not a server skip: KFP_LINEAGE_REQUIRE_SERVERS leaves it alone. CI runs it on the current stack.
        pytest.skip(f"specs/ are compiled with kfp {compiled_with} (the current stack) and this environment has kfp "
                    f"{kfp.__version__}: the check runs where kfp {compiled_with} is installed (`make specs` "
                    "recompiles with it anywhere)")
    results = compile_module.compile_project(
        os.path.join(REPO, "pipelines"), os.path.join(REPO, "components"), os.path.join(REPO, "specs"), check=True
    )
    stale = [r.path for r in results if r.changed]
    assert not stale, f"specs differ from a fresh compile, run `make specs`: {stale}"
    names = {os.path.relpath(r.path, REPO) for r in results}
    assert {"specs/training.yaml", "specs/components/ingest.yaml", "specs/components/train.yaml",
            "specs/components/evaluate.yaml", "specs/components/deploy-local.yaml"} <= names


def test_check_reports_a_stale_spec_without_writing(tmp_path):
    pipelines_dir = tmp_path / "pipelines"
    pipelines_dir.mkdir()
    (pipelines_dir / "tiny.py").write_text(
        "from kfp import dsl\n"
        "@dsl.component(base_image='python:3.11-slim')\n"
        "def hello() -> str:\n    return 'hi'\n"
        "@dsl.pipeline(name='tiny')\n"
        "def tiny():\n    hello()\n"
    )
    (tmp_path / "components").mkdir()
    specs = tmp_path / "specs"
    [first] = compile_module.compile_project(str(pipelines_dir), str(tmp_path / "components"), str(specs), check=True)
    assert first.changed and not (specs / "tiny.yaml").exists()
    compile_module.compile_project(str(pipelines_dir), str(tmp_path / "components"), str(specs))
    [again] = compile_module.compile_project(str(pipelines_dir), str(tmp_path / "components"), str(specs), check=True)
    assert not again.changed
    (specs / "old.yaml").write_text("x: 1\n")
    results = compile_module.compile_project(str(pipelines_dir), str(tmp_path / "components"), str(specs), check=True)
    assert [(r.kind, r.changed) for r in results if r.path.endswith("old.yaml")] == [("stale pipeline (no source)", True)]


def test_check_refuses_to_compare_specs_of_another_kfp_by_name(tmp_path):
    pipelines_dir, components_dir, specs = tmp_path / "pipelines", tmp_path / "components", tmp_path / "specs"
    pipelines_dir.mkdir()
    components_dir.mkdir()
    (pipelines_dir / "tiny.py").write_text(TINY_PIPELINE)
    compile_module.compile_project(str(pipelines_dir), str(components_dir), str(specs))
    assert compile_module.compiled_with(str(specs / "tiny.yaml")) == kfp.__version__
    text = (specs / "tiny.yaml").read_text()
    (specs / "tiny.yaml").write_text(text.replace(f"sdkVersion: kfp-{kfp.__version__}", "sdkVersion: kfp-2.99.0"))
    with pytest.raises(errors.InvalidInputError) as raised:
        compile_module.compile_project(str(pipelines_dir), str(components_dir), str(specs), check=True)
    assert str(raised.value) == (
        f"{specs / 'tiny.yaml'} was compiled with kfp 2.99.0 and this environment has kfp {kfp.__version__}, so a "
        "fresh compile differs whatever the source says: check with kfp 2.99.0, or recompile with this kfp "
        "(kfp-lineage compile)"
    )
    [written] = compile_module.compile_project(str(pipelines_dir), str(components_dir), str(specs))
    assert written.changed and compile_module.compiled_with(written.path) == kfp.__version__


def test_compiling_needs_kfp_but_not_ml_metadata(tmp_path):
    """`python -m kfp_lineage.remote.compiling` (what `make specs` runs beside a newer kfp) never imports
    ml-metadata, so it works in an environment that has only kfp."""
    blocker = tmp_path / "ml_metadata"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('ml-metadata must not be imported to compile')\n")
    pipelines_dir = tmp_path / "pipelines"
    pipelines_dir.mkdir()
    (pipelines_dir / "tiny.py").write_text(TINY_PIPELINE)
    (tmp_path / "components").mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), REPO])}
    result = subprocess.run(
        [sys.executable, "-m", "kfp_lineage.remote.compiling", "--pipelines-dir", str(pipelines_dir),
         "--components-dir", str(tmp_path / "components"), "--output-dir", str(tmp_path / "specs")],
        capture_output=True, text=True, env=env, cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert f"updated    pipeline  {tmp_path / 'specs'}" in result.stdout
    assert f"(kfp {kfp.__version__})" in result.stdout
    check = subprocess.run(
        [sys.executable, "-m", "kfp_lineage.remote.compiling", "--check", "--pipelines-dir", str(pipelines_dir),
         "--components-dir", str(tmp_path / "components"), "--output-dir", str(tmp_path / "specs")],
        capture_output=True, text=True, env=env, cwd=str(tmp_path),
    )
    assert check.returncode == 0, check.stderr
    assert "stale" not in check.stdout and "up to date" in check.stdout


def test_training_spec_declares_typed_artifacts_and_a_gated_deploy():
    with open(os.path.join(REPO, "specs", "training.yaml")) as f:
        spec = yaml.safe_load(f)
    comps = spec["components"]

    def titles(component, side, kind="artifacts"):
        return {k: v["artifactType"]["schemaTitle"] for k, v in comps[component][side].get(kind, {}).items()}

    assert set(titles("comp-ingest", "outputDefinitions").values()) == {"system.Dataset"}
    assert titles("comp-train", "inputDefinitions") == {"train_data": "system.Dataset"}
    assert titles("comp-train", "outputDefinitions")["model"] == "system.Model"
    assert titles("comp-evaluate", "inputDefinitions")["model"] == "system.Model"
    assert titles("comp-deploy-local", "inputDefinitions") == {"model": "system.Model"}
    assert titles("comp-deploy-vertex", "inputDefinitions") == {"model": "system.Model"}
    conditions = []

    def collect(component):
        for task in comps[component]["dag"]["tasks"].values() if "dag" in comps[component] else []:
            if "triggerPolicy" in task:
                conditions.append(task["triggerPolicy"]["condition"])
            collect(task["componentRef"]["name"])

    for task in spec["root"]["dag"]["tasks"].values():
        if "triggerPolicy" in task:
            conditions.append(task["triggerPolicy"]["condition"])
        collect(task["componentRef"]["name"])
    assert any("evaluate-passed" in c for c in conditions)


def test_a_compiled_component_is_reusable_in_another_pipeline(tmp_path, sqlite_url):
    """Another team loads specs/components/ingest.yaml into its own pipeline; it runs and records lineage."""
    ingest = components.load_component_from_file(os.path.join(REPO, "specs", "components", "ingest.yaml"))

    @dsl.component(base_image="python:3.11-slim")
    def count(data: dsl.Input[dsl.Dataset]) -> int:
        with open(data.path) as f:
            return len(f.read().splitlines()) - 1

    @dsl.pipeline(name="reuse")
    def reuse(source_uri: str):
        ingested = ingest(source_uri=source_uri, label_column="label")
        count(data=ingested.outputs["train"])

    path = tmp_path / "reuse.yaml"
    compiler.Compiler().compile(reuse, str(path))
    result = run_module.run_pipeline(
        str(path), {"source_uri": os.path.join(REPO, "data", "breast_cancer.csv")}, store=sqlite_url,
        pipeline_root=str(tmp_path / "root"), run_id="reuse-1",
    )
    assert result.state == "COMPLETE", result.tasks
    view = RunView(conftest.open_store(sqlite_url), "reuse-1")
    [train_id] = view.outputs("ingest")["train"]
    assert view.inputs("count") == {"data": [train_id]}
    assert view.artifact(train_id).type == "system.Dataset"
    assert result.tasks["count"].outputs["Output"]["value"] == view.artifact(train_id).custom_properties["rows"].double_value


def test_the_compile_command_passes_the_shipping_settings_and_clears_them_after(tmp_path, monkeypatch):
    """`kfp-lineage compile --components-image` / `--index-url` reach the components' decorators; a value left in
    the environment by the user does not leak into a default compile."""
    from click.testing import CliRunner

    from kfp_lineage import cli

    image = "registry.example/team/kfp-lineage-components:1"
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(cli.main, ["compile", "--output-dir", str(tmp_path / "image"),
                                           "--components-image", image])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "image" / "components" / "train.yaml") as f:
        container = next(yaml.safe_load_all(f))["deploymentSpec"]["executors"]["exec-train"]["container"]
    assert (container["image"], container["command"]) == (image, ["python3", "-m", "kfp.dsl.executor_main"])

    result = CliRunner().invoke(cli.main, ["compile", "--output-dir", str(tmp_path / "index"), "--index-url",
                                           "http://127.0.0.1:8000/simple/", "--index-url", "https://pypi.org/simple"])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "index" / "components" / "train.yaml") as f:
        text = f.read()
    assert "--index-url http://127.0.0.1:8000/simple/" in text and "--extra-index-url https://pypi.org/simple" in text

    monkeypatch.setenv(compile_module.IMAGE_ENV_VAR, image)
    result = CliRunner().invoke(cli.main, ["compile", "--output-dir", str(tmp_path / "default")])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "default" / "components" / "train.yaml") as f:
        assert "image: python:3.11-slim" in f.read()
    assert os.environ[compile_module.IMAGE_ENV_VAR] == image
