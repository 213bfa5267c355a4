"""Whole runs whose tasks get the environments their compiled specs ask for (kfp_lineage.engine.task_environments
and the handlers behind it), built with the real uv from a local wheelhouse with no network: uv runs with
UV_FIND_LINKS=<wheelhouse> and UV_OFFLINE=1, and the wheelhouse holds the runner's kfp packed from its own installed
copy, so the `kfp==X --no-deps` of every compiled prefix (X is the runner's kfp: the tests compile with it) installs
offline."""

import importlib.metadata
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from kfp import compiler, dsl

from kfp_lineage import cli
from kfp_lineage import errors
from kfp_lineage.engine import run as run_module
from kfp_lineage.engine.exec import environments, interpreters
from kfp_lineage.ir import spec
from tests import conftest
from tests import wheelhouse
from tests.mlmd_view import RunView

KFP = importlib.metadata.version("kfp")  # the runner's kfp: what the compiled prefixes pin and the wheelhouse holds

RUNNER_IMAGE = "python:%d.%d" % sys.version_info[:2]  # an image whose Python is the runner's: no other interpreter
CLICK = f"click=={importlib.metadata.version('click')}"  # a requirement the runner meets exactly
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")


@dsl.component(base_image=RUNNER_IMAGE, packages_to_install=["lineage-probe==1.0"])
def probe_one() -> str:
    import json
    import os
    import sys

    import kfp
    import lineage_probe

    return json.dumps({"probe": lineage_probe.__version__, "kfp": kfp.__version__, "prefix": sys.prefix,
                       "server": os.getppid(), "python3": os.popen("command -v python3").read().strip()})


@dsl.component(base_image=RUNNER_IMAGE, packages_to_install=["lineage-probe==2.0"])
def probe_two() -> str:
    import json
    import os
    import sys

    import kfp
    import lineage_probe

    return json.dumps({"probe": lineage_probe.__version__, "kfp": kfp.__version__, "prefix": sys.prefix,
                       "server": os.getppid(), "python3": os.popen("command -v python3").read().strip()})


@dsl.pipeline(name="two-probes")
def two_probes():
    probe_one()
    probe_two()
    probe_one().set_caching_options(False)


@dsl.component(base_image=RUNNER_IMAGE, packages_to_install=[CLICK])
def uses_click() -> str:
    import json
    import sys

    import click

    return json.dumps({"click": click.__version__, "prefix": sys.prefix})


@dsl.pipeline(name="runner-suffices")
def runner_suffices():
    uses_click()


@dsl.component(base_image=RUNNER_IMAGE, packages_to_install=["lineage-probe>=1.0"])
def probe_any() -> str:
    import lineage_probe

    return lineage_probe.__version__


@dsl.pipeline(name="probe-any")
def probe_any_pipeline():
    probe_any()


@dsl.component(base_image=RUNNER_IMAGE, packages_to_install=["lineage-probe==9.9"])
def impossible() -> str:
    return "never"


@dsl.pipeline(name="impossible")
def impossible_pipeline():
    impossible()
    impossible()


@dsl.component(base_image="python:3.12", packages_to_install=["lineage-probe==1.0"])
def on_312() -> str:
    import sys

    return "%d.%d" % sys.version_info[:2]


@dsl.pipeline(name="on-312")
def on_312_pipeline():
    on_312()


class Collect:
    """A reporter keeping the warnings and notes a run gives before and while it runs."""

    def __init__(self):
        self.warnings, self.notes = [], []

    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def warn(self, message):
        self.warnings.append(message)

    def note(self, message):
        self.notes.append(message)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    return wheelhouse.write_wheelhouse(str(tmp_path_factory.mktemp("wheelhouse")), with_kfp=True)


@pytest.fixture
def offline_uv(monkeypatch, tmp_path, wheels):
    """uv installs from the local wheelhouse and never reaches the network; its download cache is in tmp."""
    monkeypatch.setenv("UV_FIND_LINKS", wheels)
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    return wheels


def run(pipeline, tmp_path, task_env="auto", reporter=None, **kwargs):
    return run_module.run_pipeline(pipeline, store=str(tmp_path / "mlmd.sqlite"),
                                   pipeline_root=str(tmp_path / "root"), env_cache=str(tmp_path / "envs"),
                                   task_env=task_env, reporter=reporter or Collect(), **kwargs)


def output(result, task):
    return json.loads(result.tasks[task].outputs["Output"]["value"])


def freeze():
    return subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True,
                          check=True).stdout


def test_two_components_pinning_different_versions_each_run_with_theirs(tmp_path, offline_uv):
    before = freeze()
    reporter = Collect()
    result = run(two_probes, tmp_path, reporter=reporter, launcher="fork")  # one warm server per environment

    assert result.state == "COMPLETE"
    one, two, again = output(result, "probe-one"), output(result, "probe-two"), output(result, "probe-one-2")
    assert (one["probe"], two["probe"], again["probe"]) == ("1.0", "2.0", "1.0")
    assert one["kfp"] == two["kfp"] == KFP
    cache = environments.EnvironmentCache(str(tmp_path / "envs"))
    assert sorted(record.path for record in cache.list()) == sorted({one["prefix"], two["prefix"]})
    assert one["prefix"] == again["prefix"] != two["prefix"]
    # The task's `python3` is its environment's; a warm fork server per environment: the two tasks of one
    # environment forked from the same server, the other environment's from another.
    assert one["python3"] == os.path.join(one["prefix"], "bin", "python3")
    assert one["server"] == again["server"] != two["server"]
    # Planned and built before the run started, each with a line before and after.
    assert sorted(reporter.notes[:2]) == ["preparing environment for probe-one (and 1 more task): 2 packages, "
                                          "first use", "preparing environment for probe-two: 2 packages, first use"]
    assert len(reporter.notes) == 4 and all(" ready in " in note for note in reporter.notes[2:])
    # The runner's own environment was not touched.
    assert freeze() == before and "lineage-probe" not in before and "lineage_probe" not in before


def test_the_log_starts_with_the_environment_and_its_installed_versions(tmp_path, offline_uv):
    result = run(two_probes, tmp_path)
    [record] = [r for r in environments.EnvironmentCache(str(tmp_path / "envs")).list()
                if r.path == output(result, "probe-two")["prefix"]]
    with open(result.tasks["probe-two"].log_path) as log:
        first, second = log.readline().rstrip("\n"), log.readline().rstrip("\n")
    assert first == (f"kfp-lineage: task environment {record.digest} (Python {record.python}; needs "
                     "lineage-probe==2.0 (not installed))")
    assert second == f"kfp-lineage: installed: kfp=={KFP}, lineage-helper==1.0, lineage-probe==2.0"


def test_a_second_run_reuses_every_environment_without_uv(tmp_path, offline_uv, monkeypatch):
    first = run(two_probes, tmp_path)
    built = {record.digest: os.stat(record.path).st_ino
             for record in environments.EnvironmentCache(str(tmp_path / "envs")).list()}
    # Any uv install would now fail: nothing to install from, and no network.
    monkeypatch.setenv("UV_FIND_LINKS", str(tmp_path / "empty"))
    os.makedirs(tmp_path / "empty")
    reporter = Collect()

    second = run(two_probes, tmp_path, reporter=reporter, enable_cache=False)

    assert second.state == "COMPLETE" and reporter.notes == []
    assert {record.digest: os.stat(record.path).st_ino
            for record in environments.EnvironmentCache(str(tmp_path / "envs")).list()} == built
    assert output(second, "probe-two")["prefix"] == output(first, "probe-two")["prefix"]


def test_auto_keeps_the_fast_path_when_the_runner_meets_every_requirement(tmp_path, offline_uv):
    result = run(runner_suffices, tmp_path)
    assert output(result, "uses-click") == {"click": CLICK.split("==")[1], "prefix": sys.prefix}
    assert not os.path.exists(tmp_path / "envs")  # nothing looked up, nothing built
    with open(result.tasks["uses-click"].log_path) as log:
        assert log.readline().rstrip("\n") == (f"kfp-lineage: the runner's environment (Python "
                                               f"{'%d.%d.%d' % sys.version_info[:3]}; the runner's environment "
                                               "meets every requirement)")
        assert log.readline().rstrip("\n") == f"kfp-lineage: installed: {CLICK}, kfp=={KFP}"


@pytest.mark.parametrize("launcher", ["fork", "subprocess"])
def test_isolated_always_isolates(tmp_path, offline_uv, launcher):
    result = run(runner_suffices, tmp_path, task_env="isolated", launcher=launcher)
    [record] = environments.EnvironmentCache(str(tmp_path / "envs")).list()
    assert output(result, "uses-click") == {"click": CLICK.split("==")[1], "prefix": record.path}


def test_the_mode_comes_from_the_environment_variable_when_not_given(tmp_path, offline_uv, monkeypatch):
    monkeypatch.setenv("KFP_LINEAGE_TASK_ENV", "isolated")
    result = run(runner_suffices, tmp_path, task_env=None)
    assert output(result, "uses-click")["prefix"] != sys.prefix
    monkeypatch.setenv("KFP_LINEAGE_TASK_ENV", "nowhere")
    with pytest.raises(errors.InvalidInputError) as caught:
        run(runner_suffices, tmp_path, task_env=None)
    assert str(caught.value) == ("task environment mode 'nowhere' is not known: use auto, isolated, current "
                                 "(--task-env or KFP_LINEAGE_TASK_ENV)")


def test_the_cli_takes_the_mode_from_task_env_or_its_environment_variable(tmp_path, offline_uv):
    spec_path = tmp_path / "runner-suffices.yaml"
    compiler.Compiler().compile(runner_suffices, str(spec_path))
    common = [str(spec_path), "--store", str(tmp_path / "mlmd.sqlite"), "--pipeline-root", str(tmp_path / "root"),
              "--env-cache", str(tmp_path / "envs"), "--json"]
    cli_runner = CliRunner()

    by_variable = cli_runner.invoke(cli.main, ["run", *common], env={"KFP_LINEAGE_TASK_ENV": "isolated"})
    by_option = cli_runner.invoke(cli.main, ["run", *common, "--task-env", "current", "--no-cache"],
                                  env={"KFP_LINEAGE_TASK_ENV": "isolated"})
    refused = cli_runner.invoke(cli.main, ["run", *common], env={"KFP_LINEAGE_TASK_ENV": "nowhere"})

    assert by_variable.exit_code == 0, by_variable.output
    [record] = environments.EnvironmentCache(str(tmp_path / "envs")).list()
    prefix = json.loads(json.loads(by_variable.stdout)["tasks"]["uses-click"]["outputs"]["Output"]["value"])["prefix"]
    assert prefix == record.path
    assert by_option.exit_code == 0, by_option.output
    prefix = json.loads(json.loads(by_option.stdout)["tasks"]["uses-click"]["outputs"]["Output"]["value"])["prefix"]
    assert prefix == sys.prefix
    assert refused.exit_code == 2
    assert "Invalid value for '--task-env' (env var: 'KFP_LINEAGE_TASK_ENV'): 'nowhere' is not one of 'auto', " \
           "'isolated', 'current'." in refused.stderr


def test_current_refuses_a_missing_package_before_anything_is_written(tmp_path, offline_uv):
    with pytest.raises(errors.InvalidInputError) as caught:
        run(two_probes, tmp_path, task_env="current")
    assert str(caught.value) == (
        "task 'probe-one' needs lineage-probe==1.0 (not installed); with --task-env current kfp-lineage never "
        "installs packages: install it into this environment (pip install 'lineage-probe==1.0'), or use "
        "--task-env auto")
    assert not os.path.exists(tmp_path / "mlmd.sqlite") and not os.path.exists(tmp_path / "envs")


def test_an_uninstallable_requirement_exits_2_with_one_line_and_nothing_recorded(tmp_path, offline_uv):
    spec_path = tmp_path / "impossible.yaml"
    compiler.Compiler().compile(impossible_pipeline, str(spec_path))
    completed = subprocess.run(
        [sys.executable, "-m", "kfp_lineage", "run", str(spec_path), "--task-env", "auto", "--store",
         str(tmp_path / "mlmd.sqlite"), "--pipeline-root", str(tmp_path / "root"), "--env-cache",
         str(tmp_path / "envs")], capture_output=True, text=True)

    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.splitlines()
    assert lines[0].endswith("] preparing environment for impossible (and 1 more task): 2 packages, first use")
    [error] = [line for line in lines if line.startswith("Error:")]
    assert error == lines[-1] and error.startswith(
        "Error: task 'impossible' (and 1 more task): cannot install lineage-probe==9.9 on Python %d.%d: "
        % sys.version_info[:2])
    assert "lineage-probe" in error.split(" on Python ", 1)[1]
    assert completed.stdout == ""
    assert not os.path.exists(tmp_path / "mlmd.sqlite") and not os.path.exists(tmp_path / "root")
    assert environments.EnvironmentCache(str(tmp_path / "envs")).list() == []


def test_an_upgraded_package_is_a_cache_miss_an_unchanged_environment_a_hit(tmp_path, offline_uv, monkeypatch):
    only_old = tmp_path / "only-old"
    wheelhouse.write_wheel(str(only_old), "lineage-probe", "1.0")
    wheelhouse.write_installed_wheel(str(only_old), "kfp")
    monkeypatch.setenv("UV_FIND_LINKS", str(only_old))
    first = run(probe_any_pipeline, tmp_path, run_id="first")
    again = run(probe_any_pipeline, tmp_path, run_id="again")
    assert first.tasks["probe-any"].outputs["Output"]["value"] == "1.0"
    assert again.tasks["probe-any"].state == "CACHED"

    # The same requirement set (`lineage-probe>=1.0`) built again when 2.0 is out: same digest, newer package.
    environments.EnvironmentCache(str(tmp_path / "envs")).prune()
    monkeypatch.setenv("UV_FIND_LINKS", offline_uv)
    upgraded = run(probe_any_pipeline, tmp_path, run_id="upgraded")

    assert upgraded.tasks["probe-any"].state == "COMPLETE"
    assert upgraded.tasks["probe-any"].outputs["Output"]["value"] == "2.0"
    store = conftest.open_store(str(tmp_path / "mlmd.sqlite"))
    fingerprints = {run_id: RunView(store, run_id).execution("probe-any").custom_properties["cache_fingerprint"]
                    .string_value for run_id in ("first", "upgraded")}
    assert fingerprints["first"] != fingerprints["upgraded"]


def test_an_environment_whose_kfp_cannot_serve_runs_its_tasks_as_the_compiled_command_would(tmp_path, offline_uv,
                                                                                             monkeypatch):
    # A kfp of the runner's version with no kfp.dsl in it: the environment's fork server cannot start, so its tasks run as plain
    # processes, and fail with the error the cluster would show, not with the fork server's.
    broken = tmp_path / "broken-kfp"
    wheelhouse.write_wheel(str(broken), "kfp", KFP)
    wheelhouse.write_installed_wheel(str(broken), "click")
    monkeypatch.setenv("UV_FIND_LINKS", str(broken))
    result = run(runner_suffices, tmp_path, task_env="isolated", launcher="fork")
    task = result.tasks["uses-click"]
    assert task.state == "FAILED"
    assert task.error.startswith("exited with code 1: ") and "No module named 'kfp.dsl'" in task.error


def test_a_task_in_isolated_mode_misses_the_cache_of_the_runners_environment(tmp_path, offline_uv):
    assert run(runner_suffices, tmp_path, task_env="current").tasks["uses-click"].state == "COMPLETE"
    assert run(runner_suffices, tmp_path, task_env="current").tasks["uses-click"].state == "CACHED"
    assert run(runner_suffices, tmp_path, task_env="isolated").tasks["uses-click"].state == "COMPLETE"
    assert run(runner_suffices, tmp_path, task_env="isolated").tasks["uses-click"].state == "CACHED"


@pytest.mark.skipif(interpreters.find_interpreter("3.12") is None, reason="no Python 3.12 on this machine")
def test_a_task_runs_on_the_python_its_image_names(tmp_path, offline_uv):
    result = run(on_312_pipeline, tmp_path)
    assert result.tasks["on-312"].outputs["Output"]["value"] == "3.12"


# The real package index ------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(interpreters.find_interpreter("3.12") is None, reason="no Python 3.12 on this machine")
def test_a_kfp_2173_spec_runs_its_task_on_kfp_2173_and_python_312(tmp_path):
    loaded = spec.load_pipeline(os.path.join(FIXTURES, "kfp-2.17.3-versions.yaml"))
    result = run(loaded, tmp_path)
    assert result.tasks["report-versions"].outputs["Output"]["value"] == "kfp 2.17.3 on Python 3.12"
    assert importlib.metadata.version("kfp") == KFP  # the runner stays on its own kfp
