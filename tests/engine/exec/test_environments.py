"""Task environments built with real uv from a local wheelhouse, no network (kfp_lineage.engine.exec.environments,
environment_spec, environment_plan, interpreters)."""

import datetime
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from kfp import compiler, dsl

from kfp_lineage import errors
from kfp_lineage.engine.exec import environment_plan, environment_spec, environments, interpreters, uv_installer
from kfp_lineage.ir import requirements
from tests import wheelhouse

RUNNER = interpreters.runner_interpreter()


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    return wheelhouse.write_wheelhouse(str(tmp_path_factory.mktemp("wheelhouse")))


@pytest.fixture
def uv_env(tmp_path):
    """uv's own download cache in tmp, so tests neither read nor fill the user's."""
    return dict(os.environ, UV_CACHE_DIR=str(tmp_path / "uv-cache"))


@pytest.fixture
def counting_uv(tmp_path):
    """The real uv behind a script that logs each call: the tests count uv calls without replacing uv."""
    log = tmp_path / "uv-calls.log"
    script = tmp_path / "uv"
    script.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{uv_installer.find_uv()}" "$@"\n')
    script.chmod(0o755)
    return str(script), log


def spec_of(wheels, *requirement_texts, no_deps=False, python=RUNNER):
    index = requirements.IndexOptions(find_links=(wheels,), no_index=True)
    install = requirements.PipInstall(requirements=tuple(requirement_texts), index=index, no_deps=no_deps)
    return environment_spec.EnvironmentSpec(installs=(install,), python_version=python.version,
                                            interpreter=python.path, platform=environment_spec.current_platform())


def run_in(environment, code):
    return subprocess.run([environment.python_path, "-c", code], capture_output=True, text=True, check=True,
                          env={"PATH": os.environ["PATH"]}).stdout.strip()


def calls(log):
    return log.read_text().splitlines() if log.exists() else []


def test_built_once_then_reused_without_calling_uv(tmp_path, wheels, uv_env, counting_uv):
    uv_bin, log = counting_uv
    spec = spec_of(wheels, "kfpl-probe==1.0")
    lines = []
    cache = environments.EnvironmentCache(str(tmp_path / "envs"))

    first = environments.prepare({spec.digest: (spec, ["train"])}, cache, lines.append, uv_bin=uv_bin,
                                 environ=uv_env)[spec.digest]

    assert first.built and first.packages == {"kfpl-probe": "1.0"}
    assert lines[0] == "preparing environment for train: 1 package, first use"
    assert lines[1].startswith("environment for train ready in ") and spec.digest[:12] in lines[1]
    assert run_in(first, "import kfpl_probe, sys; print(kfpl_probe.__version__, sys.prefix)") == f"1.0 {first.path}"
    assert first.path == str(tmp_path / "envs" / spec.digest)
    uv_calls = len(calls(log))
    assert uv_calls >= 3  # venv, pip install, pip freeze

    lines.clear()
    again = environments.prepare({spec.digest: (spec, ["evaluate"])}, environments.EnvironmentCache(cache.root),
                                 lines.append, uv_bin="/nonexistent/uv", environ=uv_env)[spec.digest]

    assert not again.built and again.python_path == first.python_path and again.packages == first.packages
    assert len(calls(log)) == uv_calls and lines == []
    manifest = json.loads((tmp_path / "envs" / spec.digest / environments.MANIFEST_NAME).read_text())
    assert manifest["digest"] == spec.digest and manifest["packages"] == ["kfpl-probe==1.0"]
    assert manifest["python"].startswith(RUNNER.version + ".")
    assert manifest["created"] <= manifest["last_used"]


def test_two_requirement_sets_pinning_different_versions_coexist(tmp_path, wheels, uv_env):
    old, new = spec_of(wheels, "kfpl-probe==1.0"), spec_of(wheels, "kfpl-probe==2.0")
    cache = environments.EnvironmentCache(str(tmp_path / "envs"))

    built = environments.prepare({old.digest: (old, ["a"]), new.digest: (new, ["b"])}, cache, environ=uv_env,
                                 max_workers=2)

    assert old.digest != new.digest
    assert run_in(built[old.digest], "import kfpl_probe; print(kfpl_probe.__version__)") == "1.0"
    assert run_in(built[new.digest], "import kfpl_probe, kfpl_helper; print(kfpl_probe.__version__)") == "2.0"
    assert built[new.digest].packages == {"kfpl-probe": "2.0", "kfpl-helper": "1.0"}
    assert [record.digest for record in cache.list()] != [] and len(cache.list()) == 2


def test_no_deps_is_honoured_as_on_the_cluster(tmp_path, wheels, uv_env):
    spec = spec_of(wheels, "kfpl-probe==2.0", no_deps=True)
    environment = environments.prepare({spec.digest: (spec, ["a"])}, environments.EnvironmentCache(str(tmp_path)),
                                       environ=uv_env)[spec.digest]
    assert environment.packages == {"kfpl-probe": "2.0"}


def test_the_renamed_environment_runs_its_console_scripts(tmp_path, wheels, uv_env):
    spec = spec_of(wheels, "kfpl-probe==2.0")
    environment = environments.prepare({spec.digest: (spec, ["a"])}, environments.EnvironmentCache(str(tmp_path)),
                                       environ=uv_env)[spec.digest]
    script = os.path.join(environment.path, "bin", "kfpl-probe")
    assert subprocess.run([script], capture_output=True, text=True, check=True).stdout.strip() == "2.0"


def test_concurrent_prepares_from_two_processes_build_once(tmp_path, wheels, uv_env, counting_uv):
    uv_bin, log = counting_uv
    slow_uv = tmp_path / "slow-uv"  # holds the build open for a second, so the second process surely waits
    slow_uv.write_text(f'#!/bin/sh\n[ "$1" = venv ] && sleep 1\nexec "{uv_bin}" "$@"\n')
    slow_uv.chmod(0o755)
    program = textwrap.dedent(f"""
        import json, sys
        from kfp_lineage.engine.exec import environments, environment_spec, interpreters
        from kfp_lineage.ir import requirements
        runner = interpreters.runner_interpreter()
        install = requirements.PipInstall(("kfpl-probe==1.0",), requirements.IndexOptions(find_links=({wheels!r},),
                                                                                           no_index=True))
        spec = environment_spec.EnvironmentSpec((install,), runner.version, runner.path,
                                                environment_spec.current_platform())
        found = environments.prepare({{spec.digest: (spec, [sys.argv[1]])}},
                                     environments.EnvironmentCache({str(tmp_path / "envs")!r}), uv_bin={str(slow_uv)!r})
        print(json.dumps({{"built": found[spec.digest].built, "python": found[spec.digest].python_path}}))
    """)
    processes = [subprocess.Popen([sys.executable, "-c", program, name], stdout=subprocess.PIPE, text=True,
                                  env=uv_env) for name in ("first", "second")]
    results = [json.loads(process.communicate(timeout=120)[0]) for process in processes]

    assert all(process.returncode == 0 for process in processes)
    assert sorted(result["built"] for result in results) == [False, True]
    assert results[0]["python"] == results[1]["python"]
    assert [line for line in calls(log) if line.startswith("venv")] and \
        len([line for line in calls(log) if line.startswith("venv")]) == 1


def test_an_uninstallable_requirement_fails_in_one_line_and_leaves_nothing(tmp_path, wheels, uv_env):
    spec = spec_of(wheels, "kfpl-helper", "kfpl-probe==3.0")
    cache = environments.EnvironmentCache(str(tmp_path / "envs"))

    with pytest.raises(environments.EnvironmentBuildError) as raised:
        environments.prepare({spec.digest: (spec, ["train", "evaluate"])}, cache, environ=uv_env)

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"task 'train' (and 1 more task): cannot install kfpl-probe==3.0 on Python "
                              f"{RUNNER.version}: ")
    reason = message.split(": ", 2)[2]  # uv's, as one line
    assert reason.startswith("No solution found when resolving dependencies: ") and "kfpl-probe" in reason
    assert isinstance(raised.value, errors.InvalidInputError)  # the CLI's exit 2
    assert not (tmp_path / "envs" / spec.digest).exists()
    assert os.listdir(tmp_path / "envs" / ".building") == []
    assert cache.list() == []


def test_one_failed_build_does_not_stop_the_others_being_cached(tmp_path, wheels, uv_env):
    good, bad = spec_of(wheels, "kfpl-probe==1.0"), spec_of(wheels, "kfpl-missing")
    cache = environments.EnvironmentCache(str(tmp_path))
    with pytest.raises(environments.EnvironmentBuildError, match=r"^task 'b': cannot install kfpl-missing "):
        environments.prepare({good.digest: (good, ["a"]), bad.digest: (bad, ["b"])}, cache, environ=uv_env)
    assert [record.digest for record in cache.list()] == [good.digest]


def test_a_cache_that_cannot_be_written_is_a_one_line_error(tmp_path, wheels):
    (tmp_path / "file").write_text("")
    spec = spec_of(wheels, "kfpl-probe==1.0")
    with pytest.raises(environments.EnvironmentBuildError) as raised:
        environments.prepare({spec.digest: (spec, ["a"])}, environments.EnvironmentCache(str(tmp_path / "file" / "x")))
    assert str(raised.value) == (f"cannot write the task environment cache {tmp_path}/file/x (Not a directory): give "
                                 "a writable directory with --env-cache DIR or KFP_LINEAGE_ENV_CACHE")


def test_a_broken_environment_is_rebuilt(tmp_path, wheels, uv_env):
    spec = spec_of(wheels, "kfpl-probe==1.0")
    cache = environments.EnvironmentCache(str(tmp_path))
    first = environments.prepare({spec.digest: (spec, ["a"])}, cache, environ=uv_env)[spec.digest]
    os.unlink(first.python_path)
    os.symlink(str(tmp_path / "gone" / "python3"), first.python_path)  # as when its interpreter is uninstalled

    assert cache.lookup(spec.digest) is None
    assert [record.usable for record in cache.list()] == [False]
    again = environments.prepare({spec.digest: (spec, ["a"])}, cache, environ=uv_env)[spec.digest]
    assert again.built and run_in(again, "import kfpl_probe; print(kfpl_probe.__version__)") == "1.0"


def test_prune_by_age(tmp_path, wheels, uv_env):
    old, recent = spec_of(wheels, "kfpl-probe==1.0"), spec_of(wheels, "kfpl-probe==2.0")
    cache = environments.EnvironmentCache(str(tmp_path))
    environments.prepare({old.digest: (old, ["a"]), recent.digest: (recent, ["b"])}, cache, environ=uv_env)
    manifest_path = tmp_path / old.digest / environments.MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["last_used"] = "2026-01-01T00:00:00+00:00"
    manifest_path.write_text(json.dumps(manifest))
    os.makedirs(tmp_path / ".building" / f"{recent.digest}-interrupted")  # what a killed build leaves

    removed = cache.prune(older_than=datetime.timedelta(days=30))

    assert [record.digest for record in removed] == [old.digest]
    assert not (tmp_path / old.digest).exists() and (tmp_path / recent.digest).is_dir()
    assert os.listdir(tmp_path / ".building") == []
    assert [record.digest for record in cache.list()] == [recent.digest]
    assert [record.digest for record in cache.prune()] == [recent.digest]
    assert cache.list() == []


def test_the_runners_environment_is_never_modified(tmp_path, wheels, uv_env):
    def freeze():
        return subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True,
                              check=True).stdout

    before = freeze()
    spec = spec_of(wheels, "kfpl-probe==2.0")
    environments.prepare({spec.digest: (spec, ["a"])}, environments.EnvironmentCache(str(tmp_path)),
                         environ=dict(uv_env, VIRTUAL_ENV=sys.prefix))  # even with the runner's venv "active"
    assert freeze() == before
    assert "kfpl" not in before


@pytest.mark.skipif(interpreters.find_interpreter("3.12") is None, reason="no Python 3.12 on this machine")
def test_an_environment_on_the_python_the_image_asks_for(tmp_path, wheels, uv_env):
    python = interpreters.find_interpreter("3.12")
    spec = spec_of(wheels, "kfpl-probe==1.0", python=python)
    environment = environments.prepare({spec.digest: (spec, ["a"])}, environments.EnvironmentCache(str(tmp_path)),
                                       environ=uv_env)[spec.digest]
    assert environment.python.startswith("3.12.")
    assert run_in(environment, "import sys; print(sys.version_info[:2])") == "(3, 12)"


# Digests ---------------------------------------------------------------------------------------------------------

def test_the_digest_names_the_requirement_set_not_its_spelling(wheels):
    assert spec_of(wheels, "Kfpl_Probe >= 1.0, <3", "kfpl-helper").digest == \
        spec_of(wheels, "kfpl-helper", "kfpl-probe<3,>=1.0").digest
    assert spec_of(wheels, "kfpl-probe==1.0").digest != spec_of(wheels, "kfpl-probe==2.0").digest
    assert spec_of(wheels, "kfpl-probe").digest != spec_of(wheels, "kfpl-probe", no_deps=True).digest
    other_python = interpreters.Interpreter("/x/python3.99", "3.99", "PATH")
    assert spec_of(wheels, "kfpl-probe").digest != spec_of(wheels, "kfpl-probe", python=other_python).digest
    moved = interpreters.Interpreter("/elsewhere/python", RUNNER.version, "PATH")
    assert spec_of(wheels, "kfpl-probe").digest == spec_of(wheels, "kfpl-probe", python=moved).digest
    assert spec_of(wheels, "kfpl-probe").digest != spec_of("/other/wheels", "kfpl-probe").digest


def test_install_order_is_part_of_the_digest():
    first = requirements.PipInstall(("kfp==2.17.3",), no_deps=True)
    second = requirements.PipInstall(("yapf",))
    def spec(installs):
        return environment_spec.EnvironmentSpec(installs, "3.12", "/p", "linux-x86_64")
    assert spec((first, second)).digest != spec((second, first)).digest
    assert len(spec((first, second)).digest) == 24
    assert spec((first, second)).package_count == 2


# Cache directory ---------------------------------------------------------------------------------------------------

def test_cache_directory_resolution():
    home = {"HOME": "/home/u"}
    assert environments.default_cache_dir(home, "linux") == "/home/u/.cache/kfp-lineage/envs"
    assert environments.default_cache_dir(dict(home, XDG_CACHE_HOME="/xdg"), "linux") == "/xdg/kfp-lineage/envs"
    assert environments.default_cache_dir(home, "darwin") == "/home/u/Library/Caches/kfp-lineage/envs"
    assert environments.resolve_cache_dir(None, dict(home, KFP_LINEAGE_ENV_CACHE="/env/var")) == "/env/var"
    assert environments.resolve_cache_dir("/option", dict(home, KFP_LINEAGE_ENV_CACHE="/env/var")) == "/option"


# Interpreters ------------------------------------------------------------------------------------------------------

def _executable(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_interpreters_on_path_then_pyenv_skipping_shims(tmp_path):
    shim = _executable(tmp_path / "pyenv" / "shims" / "python3.98")
    on_path = _executable(tmp_path / "bin" / "python3.98")
    _executable(tmp_path / "pyenv" / "versions" / "3.98.2" / "bin" / "python3.98")
    newest = _executable(tmp_path / "pyenv" / "versions" / "3.98.10" / "bin" / "python3.98")
    _executable(tmp_path / "pyenv" / "versions" / "3.98-dev" / "bin" / "python3.98")
    pyenv_only = {"PATH": os.path.dirname(shim), "PYENV_ROOT": str(tmp_path / "pyenv")}

    assert interpreters.find_interpreter("3.98", dict(pyenv_only, PATH=f"{os.path.dirname(shim)}:"
                                                                         f"{os.path.dirname(on_path)}")) == \
        interpreters.Interpreter(on_path, "3.98", "PATH")
    assert interpreters.find_interpreter("3.98", pyenv_only) == interpreters.Interpreter(newest, "3.98", "pyenv")
    assert interpreters.find_interpreter("3.97", pyenv_only) is None
    assert interpreters.find_interpreter(RUNNER.version, {"PATH": ""}) == RUNNER
    with pytest.raises(ValueError, match="not of the form 3.Y"):
        interpreters.find_interpreter("3")


def test_uv_managed_interpreters_in_uvs_directory(tmp_path):
    uv_python = tmp_path / "data" / "uv" / "python"
    _executable(uv_python / "cpython-3.98.1-linux-x86_64-gnu" / "bin" / "python3.98")
    newest = _executable(uv_python / "cpython-3.98.3-linux-x86_64-gnu" / "bin" / "python3.98")
    _executable(uv_python / "cpython-3.98.9+freethreaded-linux-x86_64-gnu" / "bin" / "python3.98")
    environ = {"PATH": "", "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "data")}
    assert interpreters.find_interpreter("3.98", environ) == interpreters.Interpreter(newest, "3.98", "uv")
    assert interpreters.find_interpreter("3.98", {"PATH": "", "UV_PYTHON_INSTALL_DIR": str(uv_python)}) == \
        interpreters.Interpreter(newest, "3.98", "uv")


def test_uv_managed_interpreters_are_asked_of_uv(tmp_path):
    # uv knows no managed 3.98, and must not download one.
    assert interpreters.find_interpreter("3.98", {"PATH": "", "HOME": str(tmp_path)},
                                         uv_bin=uv_installer.find_uv()) is None


# Decisions ---------------------------------------------------------------------------------------------------------

def _command(*packages):
    quoted = " ".join(f"'{package}'" for package in packages)
    return ("sh", "-c", f"python3 -m pip install --quiet {quoted} && \"$0\" \"$@\"", "sh", "-ec", "program")


def _task(label, packages=(), image=None, executor=None):
    command = _command(*packages) if packages else ("python3", "-c", "print(1)")
    return environment_plan.TaskRequest(label, executor or f"exec-{label}", image or f"python:{RUNNER.version}",
                                        command)


def _kinds(plan):
    return {executor: decision.kind for executor, decision in plan.decisions.items()}


def test_auto_uses_the_runner_when_it_meets_every_requirement_else_isolates():
    import kfp

    tasks = [
        _task("met", ["click", f"kfp=={kfp.__version__}"]),
        _task("missing", ["kfpl-probe==1.0"]),
        _task("other-version", ["click==1.0"]),
        _task("container"),
        _task("no-python-named", ["click"], image="gcr.io/project/trainer:latest"),
        _task("url", ["git+https://example.com/x.git"]),
    ]
    plan = environment_plan.plan_environments(tasks, "auto")
    assert _kinds(plan) == {"exec-met": "current", "exec-missing": "isolated", "exec-other-version": "isolated",
                            "exec-container": "current", "exec-no-python-named": "current", "exec-url": "isolated"}
    assert plan.decisions["exec-missing"].reason == "needs kfpl-probe==1.0 (not installed)"
    assert plan.decisions["exec-other-version"].reason.startswith("needs click==1.0 (installed: ")
    assert plan.decisions["exec-missing"].spec.python_version == RUNNER.version
    assert plan.notices == ()


def test_auto_isolates_a_task_whose_image_asks_for_another_python_found_here():
    python = interpreters.Interpreter("/opt/python3.98/bin/python3.98", "3.98", "PATH")
    plan = environment_plan.plan_environments([_task("train", ["click"], image="python:3.98-slim")], "auto",
                                              find_interpreter=lambda version: python if version == "3.98" else None)
    decision = plan.decisions["exec-train"]
    assert (decision.kind, decision.python, decision.reason) == ("isolated", "3.98",
                                                                 "image 'python:3.98-slim' asks for Python 3.98")
    assert decision.spec.interpreter == python.path and decision.spec.python_version == "3.98"


def test_a_python_missing_here_is_a_notice_and_the_runners_python_is_used():
    tasks = [_task("a", ["click"], image="python:3.98"), _task("b", ["kfpl-probe"], image="python:3.98")]
    plan = environment_plan.plan_environments(tasks, "auto", find_interpreter=lambda version: None)
    assert plan.notices == (f"image 'python:3.98' asks for Python 3.98, which is not on this machine (PATH, pyenv, "
                            f"uv): task 'a' runs on Python {RUNNER.version}",)
    assert _kinds(plan) == {"exec-a": "current", "exec-b": "isolated"}
    assert plan.decisions["exec-b"].spec.python_version == RUNNER.version


def test_isolated_mode_isolates_every_task_with_a_prefix():
    plan = environment_plan.plan_environments([_task("met", ["click"]), _task("container")], "isolated")
    assert _kinds(plan) == {"exec-met": "isolated", "exec-container": "current"}
    assert plan.decisions["exec-met"].reason == "--task-env isolated"


def test_current_mode_refuses_a_missing_package_and_warns_about_another_version():
    import importlib.metadata

    plan = environment_plan.plan_environments([_task("a", ["click==1.0"]), _task("b", ["click==1.0"])], "current")
    assert _kinds(plan) == {"exec-a": "current", "exec-b": "current"}
    assert plan.notices == (f"task 'a' asks for click==1.0 (installed: {importlib.metadata.version('click')}); "
                            "running with the installed version",)
    with pytest.raises(errors.InvalidInputError) as raised:
        environment_plan.plan_environments([_task("train", ["kfpl-probe==1.0"])], "current")
    assert str(raised.value) == (
        "task 'train' needs kfpl-probe==1.0 (not installed); with --task-env current kfp-lineage never installs "
        "packages: install it into this environment (pip install 'kfpl-probe==1.0'), or use --task-env auto")


def test_pip_options_that_cannot_apply_are_named_once():
    command = ("sh", "-c", "pip install --quiet -r extra.txt --target /opt/x kfpl-probe && \"$0\" \"$@\"", "prog")
    task = environment_plan.TaskRequest("train", "exec-train", f"python:{RUNNER.version}", command)
    plan = environment_plan.plan_environments([task], "isolated")
    assert plan.notices == ("task 'train': pip options -r extra.txt, --target /opt/x cannot apply outside its image; "
                            "ignored in its environment",)


def test_an_unknown_mode_is_refused():
    with pytest.raises(errors.InvalidInputError, match=r"^task environment mode 'fast' is not known: use auto, "
                                                       r"isolated, current \(--task-env or KFP_LINEAGE_TASK_ENV\)$"):
        environment_plan.plan_environments([], "fast")
    assert environment_plan.check_mode(None) == "auto"


def test_tasks_sharing_a_requirement_set_share_one_environment():
    tasks = [_task("a", ["kfpl-probe==1.0"]), _task("b", ["kfpl-probe==1.0"], executor="exec-a"),
             _task("c", ["kfpl-probe==1.0"]), _task("d", ["kfpl-probe==2.0"])]
    plan = environment_plan.plan_environments(tasks, "auto")
    assert plan.decisions["exec-a"].tasks == ("a", "b")
    specs = plan.specs()
    assert sorted(labels for _, labels in specs.values()) == [("a", "b", "c"), ("d",)]


@dsl.component(base_image="python:3.98", packages_to_install=["kfpl-probe==1.0"])
def _probe() -> str:
    import kfpl_probe
    return kfpl_probe.__version__


@dsl.container_component
def _echo():
    return dsl.ContainerSpec(image="alpine", command=["echo", "hi"])


@dsl.pipeline(name="probe")
def _probe_pipeline(flag: str = "a"):
    _probe()
    with dsl.If(flag == "a"):
        _echo()


def test_a_compiled_pipeline_is_planned_per_executor(tmp_path):
    from kfp_lineage.ir import spec as spec_module

    path = tmp_path / "probe.yaml"
    compiler.Compiler().compile(_probe_pipeline, str(path))
    tasks = environment_plan.tasks_of_pipeline(spec_module.load_pipeline(str(path)).spec)
    assert sorted((task.label, task.executor, task.image) for task in tasks) == [
        ("condition-1/echo", "exec-echo", "alpine"), ("probe", "exec-probe", "python:3.98")]

    plan = environment_plan.plan_environments(tasks, "auto", find_interpreter=lambda version: None)
    decision = plan.decisions["exec-probe"]
    assert decision.kind == "isolated" and decision.reason == "needs kfpl-probe==1.0 (not installed)"
    # The compiler adds no `kfp==X` install when a listed package's name starts with "kfp", as kfpl-probe's does.
    assert [install.requirements for install in decision.spec.installs] == [("kfpl-probe==1.0",)]
    assert plan.decisions["exec-echo"].kind == "current"


# The real package index ------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(interpreters.find_interpreter("3.12") is None, reason="no Python 3.12 on this machine")
def test_a_kfp_2173_spec_gets_kfp_2173_on_python_312_from_the_real_index(tmp_path):
    from tests.ir import test_requirements

    command = ["sh", "-c", test_requirements.KFP_2173_PLAIN] + test_requirements.PROGRAM
    task = environment_plan.TaskRequest("print-version", "exec-print-version", "python:3.12", tuple(command))
    plan = environment_plan.plan_environments([task], "auto")
    decision = plan.decisions["exec-print-version"]
    assert decision.kind == "isolated" and decision.python == "3.12"

    started = time.monotonic()
    environment = environments.prepare(plan.specs(), environments.EnvironmentCache(str(tmp_path)))[
        decision.spec.digest]
    cold = time.monotonic() - started
    started = time.monotonic()
    environments.prepare(plan.specs(), environments.EnvironmentCache(str(tmp_path)))
    warm = time.monotonic() - started

    # kfp is installed with --no-deps, as on the cluster: the compiled program imports it with _KFP_RUNTIME set.
    printed = subprocess.run([environment.python_path, "-c", "import kfp, sys; print(kfp.__version__, "
                              "'py%d.%d' % sys.version_info[:2])"], capture_output=True, text=True, check=True,
                             env={"PATH": os.environ["PATH"], "_KFP_RUNTIME": "true"}).stdout.strip()
    assert printed == "2.17.3 py3.12"
    assert environment.packages["kfp"] == "2.17.3"
    print(f"cold build {cold:.2f} s, warm lookup {warm * 1000:.2f} ms")
