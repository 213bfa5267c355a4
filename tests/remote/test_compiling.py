"""`kfp-lineage compile`: checked-in specs match a fresh compile, and compiled components are reusable."""

import os

import yaml
from kfp import compiler, components, dsl

from kfp_lineage.remote import compiling as compile_module
from kfp_lineage.engine import run as run_module
from tests import conftest
from tests.mlmd_view import RunView

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_checked_in_specs_are_current():
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
