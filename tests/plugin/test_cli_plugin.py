"""pytest-kfp-lineage (plugin/): kfp-lineage's fixtures over its CLI, for a project whose kfp differs from the tool's.

Its recorded lineage and its assertion messages must be those of the in-process plugin: both read the same runs here.
"""

import dataclasses
import os
import subprocess
import sys

import pytest
from pytest_kfp_lineage import cli as light_cli
from pytest_kfp_lineage import lineage as light
from pytest_kfp_lineage import plugin as light_plugin

from kfp_lineage.engine import run as run_module
from kfp_lineage.expect import record
from tests import conftest
from tests.conformance import pipelines as conformance
from tests.expect.test_pytest_plugin import TINY_PIPELINE, TINY_SPEC
from tests.fixtures import pipelines

KFP_LINEAGE = os.path.join(os.path.dirname(sys.executable), "kfp-lineage")


@pytest.fixture(autouse=True)
def this_venvs_cli(monkeypatch):
    monkeypatch.setenv(light_cli.CLI_ENV_VAR, KFP_LINEAGE)


def test_it_stays_out_where_kfp_lineage_is_installed(request):
    assert not light_plugin.ACTIVE
    assert request.config.pluginmanager.get_plugin("kfp_lineage_cli") is light_plugin
    assert request.config.pluginmanager.get_plugin("kfp_lineage").__name__ == "kfp_lineage.expect.pytest_plugin"


@pytest.mark.parametrize("pipeline, arguments", [
    (pipelines.linear, {"rows": 2}),
    (pipelines.branches, {"value": 7}),
    (pipelines.nested, {}),
    (conformance.loop_over_task_output, {"count": 3}),
    (conformance.loop_over_artifacts, {"count": 2}),
], ids=["linear", "branches", "nested", "loop", "loop-over-artifacts"])
def test_the_recorded_run_is_the_one_the_library_reads(pipeline, arguments, tmp_path):
    url = f"sqlite:///{tmp_path}/mlmd.sqlite"
    for run_id in ("first", "cached"):  # the second run's tasks are cache hits pointing at the first's artifacts
        result = run_module.run_pipeline(pipeline, arguments, store=url, pipeline_root=str(tmp_path / "root"),
                                         run_id=run_id, cwd=str(tmp_path))
        assert result.succeeded, result.tasks
        expected = record.read_run(conftest.open_store(url), run_id)
        read = light.read_run(run_id, url)
        assert (read.run_id, read.pipeline) == (expected.run_id, expected.pipeline)
        assert {p: dataclasses.asdict(t) for p, t in read.tasks.items()} == \
               {p: dataclasses.asdict(t) for p, t in expected.tasks.items()}
        assert [light.describe_task(t) for t in read.tasks.values()] == \
               [record.describe_task(t) for t in expected.tasks.values()]
    assert "CACHED" in {t.state for t in read.tasks.values()}


def test_run_pipeline_compiles_with_this_kfp_and_reports_as_the_library_does(tmp_path):
    url = f"sqlite:///{tmp_path}/mlmd.sqlite"
    result = light_cli.run_pipeline(pipelines.failing, {"message": "bad rows"}, store=url,
                                    workdir=str(tmp_path / "compiled"), run_id="failing-1", cwd=str(tmp_path),
                                    pipeline_root=str(tmp_path / "root"))
    assert (result.run_id, result.state, result.succeeded, result.pipeline_name) == (
        "failing-1", "FAILED", False, "failing")
    assert result.pipeline_root == str(tmp_path / "root") and result.store == url
    assert result.tasks["fail"].state == "FAILED"
    assert result.tasks["fail"].error.endswith("RuntimeError: bad rows")
    assert result.tasks["fail"].log_path.startswith(str(tmp_path / "root"))
    assert (tmp_path / "compiled" / "failing.yaml").exists()
    with pytest.raises(light_cli.KfpLineageError) as raised:
        light_cli.run_pipeline(pipelines.linear, {"rows": "many"}, store=url, workdir=str(tmp_path / "compiled"))
    assert (str(raised.value), raised.value.exit_code) == (
        "parameter 'rows' expects int, got 'many': pass --param rows=<int>", 2)


def test_the_assertions_fail_with_the_in_process_plugins_messages(tmp_path):
    url = f"sqlite:///{tmp_path}/mlmd.sqlite"
    run = light_cli.run_pipeline(pipelines.linear, {"rows": 2}, store=url, workdir=str(tmp_path / "compiled"),
                                 cwd=str(tmp_path))
    lineage = light.assert_lineage(run)
    lineage.task("count-rows").consumed("make-dataset.data", key="data", artifact_type="system.Dataset").state(
        "COMPLETE").did_not_consume("count-rows.data")
    lineage.task("make-dataset").produced("data", "system.Dataset", metadata=["rows", "source"])
    execution = lineage.recorded.tasks["count-rows"].execution_id
    recorded = ("recorded lineage:\n"
                f"  count-rows  system.ContainerExecution  COMPLETE  (execution {execution})\n"
                "    INPUT   data  system.Dataset  from make-dataset.data")
    cases = [
        (lambda: lineage.task("count-rows").consumed("make-data.data"),
         "task count-rows did not consume make-data.data\n" + recorded),
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


def test_a_missing_cli_is_one_line_with_the_fix(monkeypatch):
    monkeypatch.delenv(light_cli.CLI_ENV_VAR)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(light_cli.KfpLineageError) as raised:
        light_cli.find_cli()
    assert str(raised.value) == (
        "the kfp-lineage command is not on PATH: install the tool on its own (uv tool install kfp-lineage, or "
        "pipx install kfp-lineage), or set KFP_LINEAGE_CLI to its path"
    )


LIGHT_TESTS = '''
import os

import pytest
from tiny_pipeline import tiny

HERE = os.path.dirname(os.path.abspath(__file__))


def test_summarise_reads_what_make_wrote(run_pipeline, assert_lineage):
    run = run_pipeline(tiny, {{"rows": 4}})
    assert run.tasks["make"].state == "COMPLETE"
    assert_lineage(run).task("summarise").consumed("make.data", key="data").produced("summary", "{summary_type}")


def test_the_lineage_spec(run_pipeline, assert_lineage, mlmd_store):
    run = run_pipeline(os.path.join(HERE, "tiny_pipeline.py:tiny"))
    assert_lineage(run).matches(os.path.join(HERE, "tiny.lineage.yaml"))
    assert os.path.isfile(mlmd_store.path)
'''


def test_the_fixtures_work_in_a_project_through_the_cli(tmp_path):
    """The in-process plugin's project test (tests/expect/test_pytest_plugin.py), with the CLI plugin serving the
    fixtures: the same passes, the same failure and the same recorded lineage in its message."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "tiny_pipeline.py").write_text(TINY_PIPELINE)
    (project / "tiny.lineage.yaml").write_text(TINY_SPEC)
    (project / "test_tiny.py").write_text(LIGHT_TESTS.format(summary_type="system.Metrics"))
    (project / "test_tiny_wrong.py").write_text(LIGHT_TESTS.format(summary_type="system.Model"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTHONPATH")}
    env.update({light_plugin.PLUGIN_ENV_VAR: "cli", light_cli.CLI_ENV_VAR: KFP_LINEAGE})
    completed = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:kfp_lineage"],
                               cwd=project, env=env, capture_output=True, text=True, timeout=300)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 1, output
    assert "1 failed, 3 passed" in completed.stdout, output
    assert "FAILED test_tiny_wrong.py::test_summarise_reads_what_make_wrote" in completed.stdout
    assert "E       AssertionError: output 'summary' of task summarise is a system.Metrics, expected system.Model\n" \
           "E       recorded lineage:\n" \
           "E         summarise  system.ContainerExecution  COMPLETE  (execution 3)\n" \
           "E           INPUT   data     system.Dataset  from make.data\n" \
           "E           OUTPUT  summary  system.Metrics  metadata: rows\n" in completed.stdout, output
    assert not (project / ".kfp-lineage").exists()


def test_importing_it_loads_neither_kfp_nor_ml_metadata():
    code = ("import sys, pytest_kfp_lineage.plugin; "
            "print(sorted(m for m in ('kfp', 'ml_metadata', 'google.protobuf', 'yaml', 'kfp_lineage') if m in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"
