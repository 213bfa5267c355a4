"""The training pipeline runs with every task in an isolated environment that installs exactly what its compiled
command names, for each way the components ship their shared code: embedded (the checked-in specs/), the
components' wheel from a PEP 503 index on 127.0.0.1, and a containerized component run from the directory its image
is built from (--image-source). A pipeline of another team that loads specs/components/*.yaml runs the same way.

No network: the components' wheel is built here (pip wheel, whose build backend comes from PyPI or pip's cache) and
served by an http.server; every other wheel is packed from the runner's own installed copies into a wheelhouse in
tmp (tests/wheelhouse.py), given to the runner as --find-links, and uv's default index is the local one.
"""

import functools
import hashlib
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading

import pytest
from kfp import components, dsl

from kfp_lineage.engine import run as run_module
from kfp_lineage.expect import check as expectations
from kfp_lineage.ir import requirements
from kfp_lineage.mlmd import vocabulary
from kfp_lineage.remote import compiling
from tests import conftest
from tests import wheelhouse

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COMPONENTS_DIR = os.path.join(REPO, "components")
SPECS = os.path.join(REPO, "specs")
DATA = os.path.join(REPO, "data", "breast_cancer.csv")
IMAGE = "registry.example/kfp-lineage-components:0.1.0"


def _task_pins():
    with open(os.path.join(COMPONENTS_DIR, "requirements.txt")) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


# The wheelhouse is the runner's installed copies: the tasks' pins (the legacy stack's, python:3.11-slim) must be
# what is installed here.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(requirements.check_requirements(_task_pins())),
                       reason="the components' task pins (legacy stack) are not what this environment has installed, "
                              "so no offline wheelhouse can be packed from it"),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("shipping")


@pytest.fixture(scope="module")
def wheels(work):
    return wheelhouse.write_installed_closure(str(work / "wheelhouse"), _task_pins())


@pytest.fixture(scope="module")
def index_url(work):
    """The components' wheel, built from a copy of components/, served as a PEP 503 simple index on 127.0.0.1."""
    source = work / "components-src"
    shutil.copytree(COMPONENTS_DIR, source, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    files = work / "index" / "files"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "--wheel-dir", str(files), str(source)], check=True)
    [wheel] = os.listdir(files)
    assert wheel == "kfp_lineage_components-0.1.0-py3-none-any.whl"
    with open(files / wheel, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    project = work / "index" / "simple" / "kfp-lineage-components"
    project.mkdir(parents=True)
    (project / "index.html").write_text(
        f'<!DOCTYPE html><html><body><a href="../../files/{wheel}#sha256={digest}">{wheel}</a></body></html>\n')
    (work / "index" / "simple" / "index.html").write_text(
        '<!DOCTYPE html><html><body><a href="kfp-lineage-components/">kfp-lineage-components</a></body></html>\n')

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Quiet, directory=str(work / "index")))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def local_uv(monkeypatch, work, index_url):
    """uv's default index is the local one (a task without index options never reaches PyPI); its cache in tmp."""
    monkeypatch.setenv("UV_DEFAULT_INDEX", index_url)
    monkeypatch.setenv("UV_CACHE_DIR", str(work / "uv-cache"))
    monkeypatch.delenv("UV_OFFLINE", raising=False)


def compile_training(work, name, shipping):
    output = work / name
    compiling.compile_project(os.path.join(REPO, "pipelines"), COMPONENTS_DIR, str(output), shipping=shipping)
    return str(output / "training.yaml")


def run_isolated(pipeline, work, run_id, wheels, **kwargs):
    result = run_module.run_pipeline(
        pipeline, {"source_uri": DATA, "code_version": "abc123"}, store=str(work / f"{run_id}.sqlite"),
        pipeline_root=str(work / "root"), run_id=run_id, cwd=str(work), env_cache=str(work / "envs"),
        task_env="isolated", find_links=[wheels], **kwargs)
    assert result.state == "COMPLETE", {key: task.error for key, task in result.tasks.items() if task.error}
    return result


def environment_of(result, task):
    """The task's log head: (its environment line, the installed distributions' canonical names)."""
    with open(result.tasks[task].log_path) as log:
        head = [next(log).rstrip("\n") for _ in range(3)]
    installed = next(line for line in head if line.startswith("kfp-lineage: installed: "))
    names = {re.split(r"==| @ ", item)[0] for item in installed[len("kfp-lineage: installed: "):].split(", ")}
    return head[0], names


def assert_installs_exactly_its_command(result, task, named):
    """The task ran in an isolated environment holding what its command names and their dependencies, no more."""
    first, installed = environment_of(result, task)
    assert first.startswith("kfp-lineage: task environment "), first
    assert installed == set(wheelhouse.installed_closure(named)), installed ^ set(wheelhouse.installed_closure(named))


def test_the_checked_in_specs_run_with_every_task_isolated(work, wheels, local_uv):
    from kfp_lineage_components import _packaging

    result = run_isolated(os.path.join(SPECS, "training.yaml"), work, "embedded", wheels)

    assert_installs_exactly_its_command(result, "train", _packaging.PACKAGES_TO_INSTALL)
    assert_installs_exactly_its_command(result, "ingest", _packaging.GCS_BIGQUERY_PACKAGES)
    checked = expectations.check_lineage(conftest.open_store(str(work / "embedded.sqlite")),
                                         os.path.join(SPECS, "training.lineage.yaml"))
    assert checked.ok, checked.to_text()


def test_the_wheel_from_a_local_index_reaches_every_task(work, wheels, index_url, local_uv):
    from kfp_lineage_components import _packaging

    spec = compile_training(work, "index-specs", compiling.ShippingOptions(index_urls=(index_url,)))
    with open(spec) as f:
        compiled = f.read()
    assert f"--index-url {index_url}" in compiled and _packaging.COMPONENTS_REQUIREMENT in compiled

    result = run_isolated(spec, work, "from-index", wheels)

    components_requirement = [_packaging.COMPONENTS_REQUIREMENT]
    assert_installs_exactly_its_command(result, "train", _packaging.PACKAGES_TO_INSTALL + components_requirement)
    assert_installs_exactly_its_command(result, "evaluate", _packaging.PACKAGES_TO_INSTALL + components_requirement)
    assert_installs_exactly_its_command(result, "ingest", _packaging.GCS_BIGQUERY_PACKAGES + components_requirement)
    first, _ = environment_of(result, "check-deploy-settings")
    assert first.startswith("kfp-lineage: task environment ")
    checked = expectations.check_lineage(conftest.open_store(str(work / "from-index.sqlite")),
                                         os.path.join(SPECS, "training.lineage.yaml"))
    assert checked.ok, checked.to_text()


def test_a_containerized_component_runs_from_the_directory_its_image_is_built_from(work, wheels, local_uv):
    spec = compile_training(work, "image-specs", compiling.ShippingOptions(components_image=IMAGE))

    result = run_isolated(spec, work, "from-source", wheels, image_sources={IMAGE: COMPONENTS_DIR})

    with open(result.tasks["train"].log_path) as log:
        head = log.read()
    assert f"image '{IMAGE}' built from {COMPONENTS_DIR}" in head
    assert f"kfp-lineage: code from {COMPONENTS_DIR} (sha256 " in head
    assert f"--component_module_path `{os.path.join(COMPONENTS_DIR, 'kfp_lineage_components', 'train.py')}`" in head
    _, installed = environment_of(result, "train")
    assert installed == set(wheelhouse.installed_closure(_task_pins()))  # what the Dockerfile installs
    store = conftest.open_store(str(work / "from-source.sqlite"))
    images = {execution.custom_properties[vocabulary.TASK_NAME].string_value:
              execution.custom_properties[vocabulary.IMAGE].string_value
              for execution in store.get_executions() if vocabulary.IMAGE in execution.custom_properties}
    assert images["train"] == images["ingest"] == IMAGE  # recorded as the cluster would
    checked = expectations.check_lineage(store, os.path.join(SPECS, "training.lineage.yaml"))
    assert checked.ok, checked.to_text()


# Another team's pipeline: the components as compiled specs, nothing of kfp_lineage_components imported.
ingest_op = components.load_component_from_file(os.path.join(SPECS, "components", "ingest.yaml"))
train_op = components.load_component_from_file(os.path.join(SPECS, "components", "train.yaml"))
evaluate_op = components.load_component_from_file(os.path.join(SPECS, "components", "evaluate.yaml"))


@dsl.pipeline(name="retrain")
def retrain(source_uri: str, code_version: str = "unknown"):
    split = ingest_op(source_uri=source_uri, label_column="label")
    model = train_op(train_data=split.outputs["train"], label_column="label", code_version=code_version,
                     n_estimators=20)
    evaluate_op(model=model.outputs["model"], test_data=split.outputs["test"], label_column="label", threshold=0.9)


def test_a_pipeline_loading_the_compiled_train_component_runs_isolated(work, wheels, local_uv):
    from kfp_lineage_components import _packaging

    result = run_isolated(retrain, work, "retrain", wheels)

    assert result.tasks["evaluate"].outputs["passed"]["value"] is True
    assert_installs_exactly_its_command(result, "train", _packaging.PACKAGES_TO_INSTALL)
