"""The `kfp-lineage` CLI contract: exit codes, --json shape, one-line errors, store untouched on bad input."""

import json
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from kfp import compiler

from kfp_lineage import cli
from tests.fixtures import pipelines


@pytest.fixture
def linear_yaml(tmp_path):
    path = tmp_path / "linear.yaml"
    compiler.Compiler().compile(pipelines.linear, str(path))
    return str(path)


@pytest.fixture
def failing_yaml(tmp_path):
    path = tmp_path / "failing.yaml"
    compiler.Compiler().compile(pipelines.failing, str(path))
    return str(path)


def invoke(*args):
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


def test_run_json_contract(tmp_path, linear_yaml):
    store = tmp_path / "mlmd.sqlite"
    result = invoke(
        "run", linear_yaml, "--param", "rows=4", "--store", str(store), "--pipeline-root", str(tmp_path / "root"),
        "--run-id", "cli-1", "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run_id"] == "cli-1" and data["state"] == "COMPLETE"
    assert data["store"] == f"sqlite:///{store}"  # sqlite:////abs/path: parses back to the same file
    assert data["pipeline_root"] == str(tmp_path / "root")
    make = data["tasks"]["make-dataset"]
    assert make["state"] == "COMPLETE" and isinstance(make["execution_id"], int)
    assert set(make["outputs"]["data"]) == {"artifact_id", "uri"}
    assert data["tasks"]["count-rows"]["outputs"]["Output"] == {"value": 4}
    assert "start  make-dataset" in result.stderr and "run COMPLETE" in result.stderr


def test_failed_run_exits_1_naming_task_and_log(tmp_path, failing_yaml):
    result = invoke("run", failing_yaml, "--store", str(tmp_path / "m.sqlite"), "--pipeline-root", str(tmp_path / "r"))
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: task fail failed: exited with code 1: RuntimeError: boom: the data is bad (log: ")
    assert last.endswith("/logs/fail.log)")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--param", "rowz=3"], "Error: unknown parameter 'rowz': did you mean 'rows'? this pipeline takes rows"),
        (["--param", "rows=three"], "Error: parameter 'rows' expects int, got 'three'"),
        (["--param", "rows"], "Error: --param 'rows' is not NAME=VALUE"),
        (["--store", "sqlit:///x.db"], "Error: store URL scheme 'sqlit' is not supported"),
        (["--store", "mysql://root:pw@127.0.0.1:1/db"], "Error: cannot open the metadata store mysql://root:***@"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, linear_yaml, args, message):
    store = tmp_path / "mlmd.sqlite"
    base = ["run", linear_yaml, "--pipeline-root", str(tmp_path / "root")]
    if "--store" not in args:
        base += ["--store", str(store)]
    result = invoke(*base, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not store.exists() and not (tmp_path / "root").exists()
    assert "pw@" not in result.stderr


def test_bad_spec_file_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("{not: yaml: at all")
    result = invoke("run", str(bad), "--store", str(tmp_path / "m.sqlite"))
    assert result.exit_code == 2 and result.stderr.startswith(f"Error: pipeline spec {bad} is not valid YAML")
    assert not (tmp_path / "m.sqlite").exists()


def test_console_script_runs_from_the_store_env_var(tmp_path, linear_yaml):
    env = dict(os.environ, KFP_LINEAGE_STORE=str(tmp_path / "env.sqlite"))
    completed = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "kfp-lineage"), "run", linear_yaml, "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["store"] == f"sqlite:///{tmp_path}/env.sqlite"
    assert (tmp_path / ".kfp-lineage" / "pipeline-root" / "linear").is_dir()


def test_every_command_has_help_with_an_example():
    names = cli.main.list_commands(click.Context(cli.main))
    assert names == sorted(cli.COMMAND_MODULES) and "trace" in names
    for name in names:
        command = cli.load_command(name)
        assert command.help and "kfp-lineage" in command.help, f"{name} needs help with an example"


def test_interrupt_stops_tasks_and_leaves_the_store_final(tmp_path):
    import signal
    import time

    from tests import conftest
    from tests.mlmd_view import RunView

    spec_path = tmp_path / "slow.yaml"
    compiler.Compiler().compile(pipelines.slow, str(spec_path))
    store = tmp_path / "m.sqlite"
    process = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "kfp-lineage"), "run", str(spec_path), "--store", str(store),
         "--pipeline-root", str(tmp_path / "root"), "--run-id", "interrupted"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    log = tmp_path / "root" / "slow" / "interrupted" / "logs" / "sleep-then-write.log"
    deadline = time.monotonic() + 30
    while not (log.exists() and log.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.1)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1] == "Error: interrupted; running tasks were stopped and recorded as CANCELED"
    view = RunView(conftest.open_store(str(store)), "interrupted")
    assert view.state("sleep-then-write") == "CANCELED"
    assert view.outputs("sleep-then-write") == {}
    assert "count-rows" not in view.by_key
    assert view.state("") == "CANCELED"
