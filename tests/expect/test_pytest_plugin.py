"""The pytest plugin: its fixtures and assertion helpers here, and in a fresh project that only installed us."""

import os
import subprocess
import sys

import pytest

from tests.fixtures import broken_pipelines, pipelines


def test_the_plugin_is_registered_through_its_entry_point(request):
    plugin = request.config.pluginmanager.get_plugin("kfp_lineage")
    assert plugin is not None and plugin.__name__ == "kfp_lineage.expect.pytest_plugin"


def test_importing_the_plugin_loads_neither_kfp_nor_ml_metadata():
    code = ("import sys, kfp_lineage.expect.pytest_plugin; "
            "print(sorted(m for m in ('kfp', 'ml_metadata', 'google.protobuf', 'jsonschema', 'yaml') if m in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_the_fixtures_run_a_pipeline_into_a_fresh_store_in_tmp_path(run_pipeline, mlmd_store, assert_lineage, tmp_path):
    assert mlmd_store.path == f"{tmp_path}/mlmd.sqlite" and mlmd_store.url == f"sqlite:///{tmp_path}/mlmd.sqlite"
    run = run_pipeline(pipelines.linear, {"rows": 2}, run_id="plugin-1")
    assert run.state == "COMPLETE" and run.pipeline_root == f"{tmp_path}/pipeline-root"
    assert [c.name for c in mlmd_store.store.get_contexts_by_type("system.PipelineRun")] == ["plugin-1"]
    lineage = assert_lineage(run)
    lineage.task("count-rows").consumed("make-dataset.data", key="data", artifact_type="system.Dataset").state(
        "COMPLETE").did_not_consume("count-rows.data")
    lineage.task("make-dataset").produced("data", "system.Dataset", metadata=["rows", "source"])


def test_a_failed_expectation_shows_the_recorded_lineage_of_the_task(run_pipeline, assert_lineage):
    run = run_pipeline(pipelines.linear, {"rows": 2})
    lineage = assert_lineage(run)
    execution = lineage.recorded.tasks["count-rows"].execution_id
    recorded = ("recorded lineage:\n"
                f"  count-rows  system.ContainerExecution  COMPLETE  (execution {execution})\n"
                "    INPUT   data  system.Dataset  from make-dataset.data")
    cases = [
        (lambda: lineage.task("count-rows").consumed("make-data.data"),
         "task count-rows did not consume make-data.data\n" + recorded),
        (lambda: lineage.task("count-rows").consumed("make-dataset.data", key="rows"),
         "task count-rows did not consume make-dataset.data as input 'rows'\n" + recorded),
        (lambda: lineage.task("count-rows").consumed("make-dataset.data", artifact_type="system.Model"),
         "task count-rows consumed make-dataset.data as system.Dataset, expected system.Model\n" + recorded),
        (lambda: lineage.task("count-rows").produced("model"),
         "task count-rows recorded no output 'model'\n" + recorded),
        (lambda: lineage.task("count-rows").state("FAILED", "CANCELED"),
         "task count-rows ended COMPLETE, expected FAILED or CANCELED\n" + recorded),
        (lambda: lineage.task("count-row"),
         "run " + run.run_id + " recorded no task 'count-row' (did you mean count-rows?); recorded tasks: "
         "make-dataset, count-rows"),
    ]
    for call, message in cases:
        with pytest.raises(AssertionError) as raised:
            call()
        assert str(raised.value) == message


def test_matches_checks_a_whole_lineage_spec(run_pipeline, assert_lineage, tmp_path):
    spec = tmp_path / "mini.lineage.yaml"
    spec.write_text(broken_pipelines.GOOD_SPEC)
    assert_lineage(run_pipeline(broken_pipelines.good)).matches(spec)


def test_matches_fails_listing_the_differences(run_pipeline, assert_lineage, tmp_path):
    spec = tmp_path / "mini.lineage.yaml"
    spec.write_text(broken_pipelines.GOOD_SPEC)
    with pytest.raises(AssertionError) as raised:
        assert_lineage(run_pipeline(broken_pipelines.no_metadata)).matches(str(spec))
    lines = str(raised.value).splitlines()
    assert lines[0].endswith(f"of pipeline mini does not match {spec}: 1 difference")
    assert lines[1].startswith(f"  {spec}:15: fit: missing metadata key: OUTPUT model (artifact ")
    assert lines[2:4] == ["recorded lineage of the tasks involved:", lines[3]] and lines[3].startswith("  fit  ")
    with pytest.raises(AssertionError, match="is for pipeline 'mini', but run .* is a run of 'linear'"):
        assert_lineage(run_pipeline(pipelines.linear)).matches(spec)


def test_a_failed_run_fails_the_test_unless_allowed(run_pipeline):
    with pytest.raises(pytest.fail.Exception) as raised:
        run_pipeline(pipelines.failing, run_id="failing-1")
    assert str(raised.value).startswith(
        "run failing-1 ended FAILED: fail: exited with code 1: RuntimeError: boom: the data is bad (log: "
    )
    assert run_pipeline(pipelines.failing, allow_failure=True, run_id="failing-2").state == "FAILED"


TINY_PIPELINE = '''
from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output


@dsl.component(base_image="python:3.11-slim")
def make(rows: int, data: Output[Dataset]):
    with open(data.path, "w") as f:
        f.write("x\\n" * rows)
    data.metadata["rows"] = rows


@dsl.component(base_image="python:3.11-slim")
def summarise(data: Input[Dataset], summary: Output[Metrics]):
    with open(data.path) as f:
        summary.log_metric("rows", len(f.read().splitlines()))


@dsl.pipeline(name="tiny")
def tiny(rows: int = 3):
    summarise(data=make(rows=rows).outputs["data"])
'''

TINY_SPEC = """\
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

TINY_TESTS = '''
import os

from tiny_pipeline import tiny

HERE = os.path.dirname(os.path.abspath(__file__))


def test_summarise_reads_what_make_wrote(run_pipeline, assert_lineage):
    run = run_pipeline(tiny, {{"rows": 4}})
    assert_lineage(run).task("summarise").consumed("make.data", key="data").produced("summary", "{summary_type}")


def test_the_lineage_spec(run_pipeline, assert_lineage, mlmd_store):
    run = run_pipeline(os.path.join(HERE, "tiny_pipeline.py:tiny"))
    assert_lineage(run).matches(os.path.join(HERE, "tiny.lineage.yaml"))
    assert len(mlmd_store.store.get_artifacts()) == 4  # make's data, summarise's summary, and each one's log
'''


def test_the_plugin_works_in_a_fresh_project_and_a_wrong_expectation_shows_the_recorded_lineage(tmp_path):
    """A project with a pipeline, its lineage spec, a test file that must pass and one whose expectation is wrong,
    tested once with this venv's pytest: the plugin must come from the installed entry point alone (no conftest,
    no -p)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "tiny_pipeline.py").write_text(TINY_PIPELINE)
    (project / "tiny.lineage.yaml").write_text(TINY_SPEC)
    (project / "test_tiny.py").write_text(TINY_TESTS.format(summary_type="system.Metrics"))
    (project / "test_tiny_wrong.py").write_text(TINY_TESTS.format(summary_type="system.Model"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTHONPATH")}
    completed = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA"],
                               cwd=project, env=env, capture_output=True, text=True, timeout=300)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 1, output
    assert "1 failed, 3 passed" in completed.stdout, output
    for passed in ("test_tiny.py::test_summarise_reads_what_make_wrote", "test_tiny.py::test_the_lineage_spec",
                   "test_tiny_wrong.py::test_the_lineage_spec"):
        assert f"PASSED {passed}\n" in completed.stdout, output
    assert "FAILED test_tiny_wrong.py::test_summarise_reads_what_make_wrote" in completed.stdout
    assert "E       AssertionError: output 'summary' of task summarise is a system.Metrics, expected system.Model\n" \
           "E       recorded lineage:\n" \
           "E         summarise  system.ContainerExecution  COMPLETE  (execution 3)\n" \
           "E           INPUT   data     system.Dataset  from make.data\n" \
           "E           OUTPUT  summary  system.Metrics  metadata: rows\n" in completed.stdout, output
    assert not (project / ".kfp-lineage").exists()
