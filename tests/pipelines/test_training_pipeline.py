"""pipelines/training.py compiles with kfp 2.13 into the spec the runner expects: typed artifacts and gated deploys."""

import runpy
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import yaml
from kfp import compiler

PIPELINE_FILE = Path(__file__).resolve().parents[2] / "pipelines" / "training.py"


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Dict[str, Any]:
    training = runpy.run_path(str(PIPELINE_FILE))["training"]  # loadable by file path, as the runner loads it
    output = tmp_path_factory.mktemp("compiled") / "training.yaml"
    compiler.Compiler().compile(training, str(output))
    return yaml.safe_load(output.read_text())


def artifact_types(spec: Dict[str, Any], component: str, direction: str) -> Dict[str, str]:
    definitions = spec["components"][component][f"{direction}Definitions"].get("artifacts", {})
    return {name: d["artifactType"]["schemaTitle"] for name, d in definitions.items()}


def task_paths(spec: Dict[str, Any]) -> Dict[str, List[Tuple[str, Dict[str, Any]]]]:
    """For every leaf task: the chain of (task name, task spec) from the root DAG down to it."""
    found: Dict[str, List[Tuple[str, Dict[str, Any]]]] = {}

    def walk(dag: Dict[str, Any], chain: List[Tuple[str, Dict[str, Any]]]) -> None:
        for name, task in dag["tasks"].items():
            component = spec["components"][task["componentRef"]["name"]]
            if "dag" in component:
                walk(component["dag"], chain + [(name, task)])
            else:
                found[name] = chain + [(name, task)]

    walk(spec["root"]["dag"], [])
    return found


def test_pipeline_identity_and_parameters(spec):
    assert spec["pipelineInfo"]["name"] == "training"
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    defaults = {name: p.get("defaultValue") for name, p in parameters.items()}
    assert defaults["source_uri"] == "data/breast_cancer.csv"
    assert defaults["label_column"] == "label"
    assert defaults["threshold"] == 0.9
    assert defaults["deploy_target"] == "local"
    assert defaults["model_name"] == "breast-cancer-classifier"
    assert {"code_version", "deployed_by", "project", "location"} <= set(defaults)


def test_artifacts_are_typed(spec):
    assert artifact_types(spec, "comp-ingest", "output") == {"train": "system.Dataset", "test": "system.Dataset"}
    assert artifact_types(spec, "comp-train", "input") == {"train_data": "system.Dataset"}
    assert artifact_types(spec, "comp-train", "output") == {"model": "system.Model", "metrics": "system.Metrics"}
    assert artifact_types(spec, "comp-evaluate", "input") == {"model": "system.Model", "test_data": "system.Dataset"}
    assert artifact_types(spec, "comp-evaluate", "output") == {
        "metrics": "system.Metrics",
        "classification_metrics": "system.ClassificationMetrics",
    }
    assert (
        spec["components"]["comp-evaluate"]["outputDefinitions"]["parameters"]["passed"]["parameterType"] == "BOOLEAN"
    )
    for deploy in ("comp-deploy-local", "comp-deploy-vertex"):
        assert artifact_types(spec, deploy, "input") == {"model": "system.Model"}
    assert artifact_types(spec, "comp-deploy-local", "output") == {"endpoint": "system.Artifact"}
    assert artifact_types(spec, "comp-deploy-vertex", "output") == {
        "vertex_model": "google.VertexModel",
        "vertex_endpoint": "google.VertexEndpoint",
    }


def test_every_task_has_a_display_name(spec):
    names = {leaf: chain[-1][1]["taskInfo"]["name"] for leaf, chain in task_paths(spec).items()}
    assert names == {
        "check-deploy-settings": "Check deploy settings",
        "ingest": "Ingest data",
        "train": "Train model",
        "evaluate": "Evaluate model",
        "deploy-local": "Deploy to local registry",
        "deploy-vertex": "Deploy to Vertex AI",
    }


@pytest.mark.parametrize("task, target", [("deploy-local", "local"), ("deploy-vertex", "vertex")])
def test_deploy_tasks_are_gated_on_passed_and_target(spec, task, target):
    chain = task_paths(spec)[task]
    conditions = [t["triggerPolicy"]["condition"] for _, t in chain if "triggerPolicy" in t]
    assert "inputs.parameter_values['pipelinechannel--evaluate-passed'] == true" in conditions
    assert any(f"inputs.parameter_values['pipelinechannel--deploy_target'] == '{target}'" in c for c in conditions)
    assert chain[-1][1]["inputs"]["artifacts"]["model"]["componentInputArtifact"] == "pipelinechannel--train-model"


def test_ungated_tasks_and_caching(spec):
    paths = task_paths(spec)
    for task in ("ingest", "train", "evaluate"):
        assert len(paths[task]) == 1 and "triggerPolicy" not in paths[task][0][1]
    # Side effects, external sources and the settings check are never served from cache.
    for task in ("check-deploy-settings", "ingest", "deploy-local", "deploy-vertex"):
        assert not paths[task][-1][1]["cachingOptions"].get("enableCache", False)


def test_deploy_settings_are_checked_before_ingest(spec):
    paths = task_paths(spec)
    assert paths["ingest"][-1][1]["dependentTasks"] == ["check-deploy-settings"]
    check = paths["check-deploy-settings"][-1][1]
    assert {name: p["componentInputParameter"] for name, p in check["inputs"]["parameters"].items()} == {
        "deploy_target": "deploy_target", "project": "project"}


@pytest.mark.parametrize("deploy_target, project, message", [
    ("lokal", "", "deploy_target 'lokal' is not one of local, vertex: pass --param deploy_target=local or "
                  "--param deploy_target=vertex"),
    ("", "p", "deploy_target '' is not one of local, vertex: pass --param deploy_target=local or "
              "--param deploy_target=vertex"),
    ("vertex", "", "deploy_target 'vertex' needs a Google Cloud project: pass --param project=PROJECT_ID"),
])
def test_check_deploy_settings_refuses_what_cannot_deploy(deploy_target, project, message):
    check = runpy.run_path(str(PIPELINE_FILE))["check_deploy_settings"].python_func
    with pytest.raises(ValueError) as raised:
        check(deploy_target=deploy_target, project=project)
    assert str(raised.value) == message


@pytest.mark.parametrize("deploy_target, project", [("local", ""), ("vertex", "my-project")])
def test_check_deploy_settings_accepts_what_can_deploy(deploy_target, project):
    check = runpy.run_path(str(PIPELINE_FILE))["check_deploy_settings"].python_func
    assert check(deploy_target=deploy_target, project=project) is None
