"""Each component's compiled source runs under the real KFP executor: ingest -> train -> evaluate -> deploy_local.

KFP ships only the function source (plus its own imports) to the task, so this catches what calling
`python_func` cannot: a default or name that only exists in our module, metadata that is not
JSON, an output parameter the executor cannot write. Only the `pip install` prefix of the task
command is skipped; this environment already has the pinned packages.
"""

import json
from pathlib import Path
from typing import Any, Dict

import pytest
from component_test_support import DEMO_CSV
from kfp.dsl import executor, utils
from kfp_lineage_components import _packaging
from kfp_lineage_components.deploy import deploy_local, deploy_vertex
from kfp_lineage_components.evaluate import evaluate
from kfp_lineage_components.ingest import ingest
from kfp_lineage_components.train import train

COMPONENTS = {c.component_spec.name: c for c in (ingest, train, evaluate, deploy_local, deploy_vertex)}


def embedded_source(component) -> str:
    command = component.component_spec.implementation.container.command
    return command[-1]  # [pip prefix..., "sh", "-ec", launcher, source]


def artifact(name: str, schema_title: str, uri: Path, metadata: Dict[str, Any] = None) -> Dict[str, Any]:
    return {
        "artifacts": [
            {"name": name, "type": {"schemaTitle": schema_title}, "uri": str(uri), "metadata": metadata or {}}
        ]
    }


def run_task(
    tmp_path: Path, component, inputs: Dict[str, Any], outputs: Dict[str, Any], parameters=()
) -> Dict[str, Any]:
    """Load the embedded source the way executor_main does, execute it, and return executor_output.json."""
    name = component.component_spec.name
    task_dir = tmp_path / name
    task_dir.mkdir()
    (task_dir / "ephemeral_component.py").write_text(embedded_source(component))
    module = utils.load_module(module_name="ephemeral_component", module_directory=str(task_dir))
    executor_input = {
        "inputs": inputs,
        "outputs": {
            "artifacts": outputs,
            "parameters": {p: {"outputFile": str(task_dir / p)} for p in parameters},
            "outputFile": str(task_dir / "executor_output.json"),
        },
    }
    function = getattr(module, component.component_spec.implementation.container.args[-1])
    executor.Executor(executor_input=executor_input, function_to_execute=function).execute()
    return json.loads((task_dir / "executor_output.json").read_text())


def out_metadata(output: Dict[str, Any], name: str) -> Dict[str, Any]:
    return output["artifacts"][name]["artifacts"][0]["metadata"]


def test_compiled_sources_run_under_the_kfp_executor(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "root"
    ingested = run_task(
        tmp_path,
        ingest,
        {"parameterValues": {"source_uri": str(DEMO_CSV), "label_column": "label"}},
        {
            "train": artifact("train", "system.Dataset", root / "ingest" / "train"),
            "test": artifact("test", "system.Dataset", root / "ingest" / "test"),
        },
    )
    train_meta = out_metadata(ingested, "train")
    assert train_meta["split"] == "train" and train_meta["rows"] == 426

    trained = run_task(
        tmp_path,
        train,
        {
            "parameterValues": {"label_column": "label", "code_version": "deadbeef", "n_estimators": 20},
            "artifacts": {"train_data": artifact("train", "system.Dataset", root / "ingest" / "train", train_meta)},
        },
        {
            "model": artifact("model", "system.Model", root / "train" / "model"),
            "metrics": artifact("metrics", "system.Metrics", root / "train" / "metrics"),
        },
    )
    model_meta = out_metadata(trained, "model")
    assert model_meta["code_version"] == "deadbeef"
    assert model_meta["training_data_sha256"] == train_meta["sha256"]

    model_input = artifact("model", "system.Model", root / "train" / "model", model_meta)
    evaluated = run_task(
        tmp_path,
        evaluate,
        {
            "parameterValues": {"label_column": "label", "threshold": 0.9},
            "artifacts": {
                "model": model_input,
                "test_data": artifact(
                    "test", "system.Dataset", root / "ingest" / "test", out_metadata(ingested, "test")
                ),
            },
        },
        {
            "metrics": artifact("metrics", "system.Metrics", root / "evaluate" / "metrics"),
            "classification_metrics": artifact(
                "classification_metrics", "system.ClassificationMetrics", root / "evaluate" / "classification_metrics"
            ),
        },
        parameters=("passed",),
    )
    assert evaluated["parameterValues"] == {"passed": True}
    assert out_metadata(evaluated, "metrics")["accuracy"] >= 0.9

    deployed = run_task(
        tmp_path,
        deploy_local,
        {
            "parameterValues": {"model_name": "clf", "pipeline_job_name": "{{$.pipeline_job_name}}"},
            "artifacts": {"model": model_input},
        },
        {"endpoint": artifact("endpoint", "system.Artifact", root / "deploy-local" / "endpoint")},
    )
    endpoint_meta = out_metadata(deployed, "endpoint")
    assert endpoint_meta["model_version"] == 1
    assert endpoint_meta["registry_path"] == str(tmp_path / ".kfp-lineage" / "model-registry" / "clf" / "v1")


def test_deploy_vertex_source_loads_with_gcpc_artifact_types(tmp_path):
    (tmp_path / "ephemeral_component.py").write_text(embedded_source(deploy_vertex))
    module = utils.load_module(module_name="ephemeral_component", module_directory=str(tmp_path))
    annotations = module.deploy_vertex.__annotations__
    assert annotations["vertex_model"].__args__[0].schema_title == "google.VertexModel"
    assert annotations["vertex_endpoint"].__args__[0].schema_title == "google.VertexEndpoint"


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_task_installs_the_pinned_packages_on_the_pinned_image(name):
    container = COMPONENTS[name].component_spec.implementation.container
    assert container.image == _packaging.BASE_IMAGE
    install = " ".join(container.command[:3])
    for requirement in _packaging.PACKAGES_TO_INSTALL:
        assert f"'{requirement}'" in install
    assert "from kfp_lineage_components import" in embedded_source(COMPONENTS[name])
