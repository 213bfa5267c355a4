"""How the components' shared code reaches a task (kfp_lineage_components/_component.py): embedded in the checked-in
specs, from an index (`--index-url`), or in an image built from components/ (`--components-image`)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kfp_lineage_components import _component, _packaging
from kfp_lineage_components.deploy import deploy_local, deploy_vertex
from kfp_lineage_components.evaluate import evaluate
from kfp_lineage_components.ingest import ingest
from kfp_lineage_components.train import train

from kfp_lineage.engine.exec import image_sources
from kfp_lineage.ir import requirements
from kfp_lineage.remote import compiling

REPO = Path(__file__).resolve().parents[2]
COMPONENTS_DIR = REPO / "components"
COMPONENTS = {"ingest": ingest, "train": train, "evaluate": evaluate, "deploy_local": deploy_local,
              "deploy_vertex": deploy_vertex}
IMAGE = "us-central1-docker.pkg.dev/my-project/ml/kfp-lineage-components:0.1.0"
EXECUTOR = ["python3", "-m", "kfp.dsl.executor_main"]


def executors(spec_path):
    with open(spec_path) as f:
        spec = next(yaml.safe_load_all(f))
    return spec["deploymentSpec"]["executors"] if "deploymentSpec" in spec else {}


def component_executors(directory):
    """Every executor of our components in the specs under `directory` (the pipeline's and each component's),
    check-deploy-settings (pipelines/training.py, not a component of the package) left out."""
    found = {}
    for path in [directory / "training.yaml"] + sorted((directory / "components").glob("*.yaml")):
        for name, executor in executors(path).items():
            if name != "exec-check-deploy-settings":
                found[f"{path.name}:{name}"] = executor["container"]
    return found


def test_helper_modules_are_what_the_function_imports_and_what_those_import():
    source = deploy_vertex.component_spec.implementation.container.command[-1]
    assert _component.helper_modules(source) == ["_registry", "_shared", "_vertex"]
    assert _component.helper_modules("from kfp_lineage_components import _modeling\n") == \
        ["_data", "_modeling", "_shared"]


def test_a_missing_helper_module_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"^kfp_lineage_components has no module '_nope' .*: fix the import"):
        _component.helper_modules("    from kfp_lineage_components import _nope\n")


@pytest.mark.parametrize("path", ["training.yaml"] + [f"components/{p.name}" for p in
                                                        sorted((REPO / "specs" / "components").glob("*.yaml"))])
def test_the_checked_in_specs_install_only_pinned_pypi_packages(path):
    pins = set(_packaging.PACKAGES_TO_INSTALL + _packaging.GCS_BIGQUERY_PACKAGES + _packaging.VERTEX_PACKAGES)
    for name, executor in executors(REPO / "specs" / path).items():
        container = executor["container"]
        prefix = requirements.split_pip_prefix(container["command"])
        assert container["image"] == _packaging.BASE_IMAGE
        assert prefix is not None and all(install.index.is_default for install in prefix.installs), name
        assert set(prefix.requirements) <= pins, (name, set(prefix.requirements) - pins)
        if name != "exec-check-deploy-settings":
            assert "def _kfp_lineage_components_embedded():" in container["command"][-1], name


def test_the_embedded_modules_win_over_an_installed_copy_and_show_in_tracebacks(tmp_path):
    """In a fresh interpreter (this one has the package installed, editable), the task's module serves its own copy
    of the helpers from memory: the spec does not depend on what the image has, and writes no files."""
    program = tmp_path / "ephemeral_component.py"
    program.write_text(train.component_spec.implementation.container.command[-1])
    check = ("import sys, traceback; sys.path.insert(0, sys.argv[1]); import ephemeral_component\n"
             "from kfp_lineage_components import _modeling, _data, _shared\n"
             "print([type(m.__spec__.loader).__name__ for m in (_modeling, _data, _shared)])\n"
             "print([getattr(m, '__file__', None) for m in (_modeling, _data, _shared)])\n"
             "try:\n    _modeling.check_hyperparameters(0, 1)\nexcept ValueError:\n    traceback.print_exc()\n")
    result = subprocess.run([sys.executable, "-c", check, str(tmp_path)], capture_output=True, text=True,
                            check=True)
    loaders, files = result.stdout.splitlines()
    assert loaders == "['EmbeddedModules', 'EmbeddedModules', 'EmbeddedModules']"
    assert files == "[None, None, None]"
    assert 'File "<embedded>/kfp_lineage_components/_modeling.py", line ' in result.stderr
    assert 'raise ValueError(f"n_estimators {n_estimators} must be at least 1' in result.stderr
    assert os.listdir(tmp_path) == ["ephemeral_component.py"] or "__pycache__" in os.listdir(tmp_path)


def test_compiling_for_an_image_gives_containerized_components_with_no_pip_install(tmp_path):
    compiling.compile_project(str(REPO / "pipelines"), str(COMPONENTS_DIR), str(tmp_path),
                              shipping=compiling.ShippingOptions(components_image=IMAGE))

    found = component_executors(tmp_path)
    assert len(found) == 10  # 5 in the pipeline, one in each component spec
    for where, container in found.items():
        assert container["image"] == IMAGE, where
        assert container["command"] == EXECUTOR, where
        assert container["args"][-2] == "--function_to_execute", where
        assert "pip" not in " ".join(container["command"] + container["args"]), where
    # The settings held for that compile only: these modules, imported before it, and a default compile are as before.
    assert train.component_spec.implementation.container.image == _packaging.BASE_IMAGE
    assert not any(name in os.environ for name in (compiling.IMAGE_ENV_VAR, compiling.INDEX_ENV_VAR))
    compiling.compile_project(str(REPO / "pipelines"), str(COMPONENTS_DIR), str(tmp_path / "default"))
    for where, container in component_executors(tmp_path / "default").items():
        assert container["image"] == _packaging.BASE_IMAGE, where
        assert "def _kfp_lineage_components_embedded():" in container["command"][-1], where


def test_compiling_with_an_index_installs_the_components_wheel_from_it(tmp_path):
    urls = ("https://us-central1-python.pkg.dev/my-project/ml-python/simple/", "https://pypi.org/simple")
    compiling.compile_project(str(REPO / "pipelines"), str(COMPONENTS_DIR), str(tmp_path),
                              shipping=compiling.ShippingOptions(index_urls=urls))

    for where, container in component_executors(tmp_path).items():
        prefix = requirements.split_pip_prefix(container["command"])
        assert _packaging.COMPONENTS_REQUIREMENT in prefix.requirements, where
        assert {install.index.index_url for install in prefix.installs} == {urls[0]}, where
        assert {install.index.extra_index_urls for install in prefix.installs} == {urls[1:]}, where
        assert "_kfp_lineage_components_embedded" not in container["command"][-1], where


def test_the_image_holds_every_pin_and_finds_every_component():
    """components/Dockerfile installs requirements.txt, the union of the pins; kfp_config.ini names each component's
    file; both read the way `kfp-lineage run --image-source` reads them."""
    source = image_sources.read_image_source(IMAGE, str(COMPONENTS_DIR))
    assert source.base_image == _packaging.BASE_IMAGE and source.python_version == "3.11"
    [install] = source.installs
    pins = _packaging.PACKAGES_TO_INSTALL + _packaging.GCS_BIGQUERY_PACKAGES + _packaging.VERTEX_PACKAGES
    assert sorted(install.requirements) == sorted(set(pins))
    assert sorted(source.components) == sorted(COMPONENTS)
    for name, component in COMPONENTS.items():
        assert source.components[name] == os.path.abspath(component.python_func.__code__.co_filename)


def _container_engine():
    """docker or podman when one answers; else None and why."""
    for engine in ("docker", "podman"):
        path = shutil.which(engine)
        if path is None:
            continue
        try:
            answer = subprocess.run([path, "info"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"{engine} info failed: {e}"
        if answer.returncode == 0:
            return path, ""
        return None, f"{engine} is installed but its daemon does not answer: {answer.stderr.strip()[:200]}"
    return None, "no container engine (docker or podman) on PATH"


@pytest.mark.slow
def test_the_image_runs_a_task_command_as_compiled(tmp_path):
    engine, why = _container_engine()
    if engine is None:
        pytest.skip(f"building the components' image needs a container engine: {why}")
    tag = "kfp-lineage-components:test"
    subprocess.run([engine, "build", "-q", "-t", tag, str(COMPONENTS_DIR)], check=True, timeout=1800)
    compiling.compile_project(str(REPO / "pipelines"), str(COMPONENTS_DIR), str(tmp_path),
                              shipping=compiling.ShippingOptions(components_image=tag))
    container = executors(tmp_path / "components" / "train.yaml")["exec-train"]["container"]
    (tmp_path / "data").mkdir()
    shutil.copy(REPO / "data" / "breast_cancer.csv", tmp_path / "data" / "train.csv")
    executor_input = (
        '{"inputs": {"parameterValues": {"label_column": "label", "n_estimators": 5}, "artifacts": {"train_data": '
        '{"artifacts": [{"name": "train", "type": {"schemaTitle": "system.Dataset"}, "uri": "/data/train.csv", '
        '"metadata": {}}]}}}, "outputs": {"artifacts": {"model": {"artifacts": [{"name": "model", "type": '
        '{"schemaTitle": "system.Model"}, "uri": "/data/model"}]}, "metrics": {"artifacts": [{"name": "metrics", '
        '"type": {"schemaTitle": "system.Metrics"}, "uri": "/data/metrics"}]}}, "outputFile": "/data/out.json"}}')
    args = [executor_input if arg == "{{$}}" else arg for arg in container["args"]]
    subprocess.run([engine, "run", "--rm", "-v", f"{tmp_path / 'data'}:/data", container["image"]]
                   + container["command"] + args, check=True, timeout=600)
    assert (tmp_path / "data" / "model").stat().st_size > 0
