"""Tamper evidence: output digests are recorded at publish; `kfp-lineage verify` re-hashes and reports drift."""

import os
import stat
import subprocess
import sys

import pytest
from kfp import dsl

from kfp_lineage import digests, errors
from kfp_lineage.engine import run as run_module
from tests import conftest
from tests.fixtures import pipelines
from tests.mlmd_view import RunView

KFP_LINEAGE = os.path.join(os.path.dirname(sys.executable), "kfp-lineage")


@dsl.component(base_image="python:3.11-slim")
def make_directory(out: dsl.Output[dsl.Artifact]):
    import os

    os.makedirs(os.path.join(out.path, "sub"))
    for name, text in (("a.txt", "alpha"), ("sub/b.txt", "beta")):
        with open(os.path.join(out.path, name), "w") as f:
            f.write(text)


@dsl.pipeline(name="directory")
def directory():
    make_directory()


def test_digests_are_recorded_for_files_and_directories(tmp_path, sqlite_url):
    result = run_module.run_pipeline(directory, store=sqlite_url, pipeline_root=str(tmp_path / "r"), run_id="d")
    view = RunView(conftest.open_store(sqlite_url), "d")
    [artifact_id] = view.outputs("make-directory")["out"]
    recorded = view.artifact(artifact_id).custom_properties[digests.DIGEST_PROPERTY].string_value
    assert recorded == digests.path_sha256(result.tasks["make-directory"].outputs["out"]["uri"])
    assert len(recorded) == 64


def test_verify_reports_changed_and_missing_artifacts(tmp_path, sqlite_url):
    result = run_module.run_pipeline(pipelines.fan_out_in, store=sqlite_url, pipeline_root=str(tmp_path / "r"),
                                     run_id="v")
    ok = subprocess.run([KFP_LINEAGE, "verify", "v", "--store", sqlite_url], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    logs = [line for line in lines if "/executor-logs-" in line]  # each task's log is checked too
    assert [line.split()[0] for line in lines] == ["ok"] * len(lines) and len(lines) == 3 + len(logs) > 3

    changed = result.tasks["make-dataset"].outputs["data"]["uri"]
    with open(changed, "a") as f:
        f.write("999\n")
    os.remove(result.tasks["combine"].outputs["merged"]["uri"])
    drift = subprocess.run([KFP_LINEAGE, "verify", "v", "--store", sqlite_url], capture_output=True, text=True)
    assert drift.returncode == 1
    statuses = {line.split()[-1]: line.split()[0] for line in drift.stdout.splitlines()}
    assert statuses[changed] == "changed"
    assert statuses[result.tasks["combine"].outputs["merged"]["uri"]] == "missing"
    assert drift.stderr.startswith(f"Error: 2 of {len(lines)} artifacts changed or are missing since they were recorded")

    one = subprocess.run([KFP_LINEAGE, "verify", "v/make-dataset-2/data", "--store", sqlite_url],
                         capture_output=True, text=True)
    assert one.returncode == 0 and one.stdout.startswith("ok")


def test_path_parts_that_would_escape_the_pipeline_root_are_refused(tmp_path, sqlite_url):
    import yaml
    from kfp import compiler

    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(pipelines.linear, str(path))
    spec = yaml.safe_load(path.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    tasks["../../escape"] = tasks.pop("make-dataset")
    spec["root"]["dag"]["tasks"]["count-rows"]["dependentTasks"] = ["../../escape"]
    spec["root"]["dag"]["tasks"]["count-rows"]["inputs"]["artifacts"]["data"]["taskOutputArtifact"][
        "producerTask"] = "../../escape"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(errors.InvalidInputError, match=r"task name '\.\./\.\./escape' cannot be used in a path"):
        run_module.run_pipeline(str(path), store=sqlite_url, pipeline_root=str(tmp_path / "r"))
    with pytest.raises(errors.InvalidInputError, match="run id '../x' is not allowed"):
        run_module.run_pipeline(pipelines.linear, store=sqlite_url, run_id="../x")
    assert not os.path.exists(sqlite_url) and not (tmp_path / "r").exists()


def test_a_task_whose_component_is_missing_is_refused(tmp_path, sqlite_url):
    import yaml
    from kfp import compiler

    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(pipelines.linear, str(path))
    spec = yaml.safe_load(path.read_text())
    del spec["components"]["comp-count-rows"]
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(errors.InvalidInputError, match="task 'count-rows' refers to component 'comp-count-rows', "
                                                       "which the spec does not define"):
        run_module.run_pipeline(str(path), store=sqlite_url)


def test_store_files_are_private_to_their_owner(tmp_path):
    url = str(tmp_path / "private" / "mlmd.sqlite")
    run_module.run_pipeline(pipelines.linear, store=url, pipeline_root=str(tmp_path / "r"))
    assert stat.S_IMODE(os.stat(url).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "private").st_mode) == 0o700
