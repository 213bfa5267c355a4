"""The CLI starts fast because it imports only what a command uses: `--help` imports no command module, the read
commands never import kfp or google-cloud-aiplatform, and reading a SQLite store through SQL never imports
ml-metadata. Checked in fresh interpreters (sys.modules at exit); the static command table is checked against the
commands themselves."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from typing import Set

import click
import pytest

from kfp_lineage import cli
from tests import conftest
from tests.lineage_stores import Builder, training_run

# Runs the CLI like the console script, then writes the names of every module it imported to $MODULES_OUT.
PROBE = ("import atexit, json, os, sys; "
         "atexit.register(lambda: json.dump(sorted(sys.modules), open(os.environ['MODULES_OUT'], 'w'))); "
         "from kfp_lineage import cli; cli.entrypoint()")
HEAVY = ("kfp", "google.cloud.aiplatform", "ml_metadata")


def run_cli(tmp_path, *args: str) -> tuple:
    """(completed process, set of imported module names) of one CLI call in a fresh interpreter."""
    out = tmp_path / "modules.json"
    completed = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                               env=dict(os.environ, MODULES_OUT=str(out), COLUMNS="100"), cwd=tmp_path)
    return completed, set(json.loads(out.read_text()))


def loaded(modules: Set[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


@pytest.fixture
def store_url(sqlite_url):
    builder = Builder(conftest.open_store(sqlite_url))
    source = builder.artifact("system.Dataset", "bq://project.data.events", name="source")
    training_run(builder, "r1", source)
    return sqlite_url


def test_the_command_table_matches_the_commands():
    commands = {}
    for name, (module, attribute, short_help) in cli.COMMAND_MODULES.items():
        command = cli.load_command(name)
        assert command.name == name, f"{module}.{attribute} is named {command.name!r}, the table says {name!r}"
        for limit in (45, 1000):
            static = click.Command(name, help=short_help).get_short_help_str(limit)
            assert static == command.get_short_help_str(limit), (
                f"COMMAND_MODULES[{name!r}] has a stale short help: copy the first sentence of its docstring")
        commands[name] = command
    # A command added to a module's COMMANDS must be in the table too.
    listed = {command.name for name in set(m for m, _, _ in cli.COMMAND_MODULES.values())
              for command in importlib.import_module(f"kfp_lineage.cli.{name}").COMMANDS}
    assert listed == set(commands)


def test_help_lists_every_command_like_an_eager_group():
    eager = click.Group("main")
    for name in cli.COMMAND_MODULES:
        eager.add_command(cli.load_command(name))
    sections = []
    for group in (cli.main, eager):
        with click.Context(group, info_name="kfp-lineage", terminal_width=100) as ctx:
            formatter = ctx.make_formatter()
            group.format_commands(ctx, formatter)
            sections.append(formatter.getvalue())
    assert sections[0] == sections[1] and sections[0].count("\n") == len(cli.COMMAND_MODULES) + 1


def test_help_imports_no_command_module(tmp_path):
    completed, modules = run_cli(tmp_path, "--help")
    assert completed.returncode == 0, completed.stderr
    assert all(f"  {name} " in completed.stdout for name in cli.COMMAND_MODULES)
    assert not [m for m in modules if m.startswith("kfp_lineage.cli.") and m.endswith("_commands")]
    assert not [p for p in HEAVY if loaded(modules, p)]


@pytest.mark.parametrize("args", [["trace", "r1/train/model"], ["impact", "source-uri"], ["runs"], ["show", "r1"],
                                  ["show", "latest/train/model", "--format", "json"]])
def test_read_commands_on_sqlite_import_neither_kfp_nor_aiplatform_nor_ml_metadata(tmp_path, store_url, args):
    args = ["bq://project.data.events" if a == "source-uri" else a for a in args]
    completed, modules = run_cli(tmp_path, *args, "--store", store_url)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip()
    assert [p for p in HEAVY if loaded(modules, p)] == []


@pytest.mark.parametrize("args", [["expect", "latest"], ["verify", "latest"], ["recover"]])
def test_commands_reading_through_ml_metadata_import_neither_kfp_nor_aiplatform(tmp_path, store_url, args):
    completed, modules = run_cli(tmp_path, *args, "--store", store_url)
    assert completed.returncode in (0, 1), completed.stderr
    assert loaded(modules, "ml_metadata")
    assert [p for p in ("kfp", "google.cloud.aiplatform") if loaded(modules, p)] == []


def test_an_unknown_command_is_a_usage_error(tmp_path):
    completed, _ = run_cli(tmp_path, "tracee")
    assert completed.returncode == 2 and "No such command 'tracee'" in completed.stderr


@pytest.mark.parametrize("kind", ["mysql", "postgresql"])
def test_read_commands_on_a_server_store_with_its_driver_import_no_ml_metadata(tmp_path, kind):
    url = conftest.fresh_database_url(kind)
    builder = Builder(conftest.open_store(url))
    training_run(builder, "r1", builder.artifact("system.Dataset", "bq://project.data.events", name="source"))
    for args in (["trace", "r1/train/model"], ["runs"]):
        completed, modules = run_cli(tmp_path, *args, "--store", url)
        assert completed.returncode == 0, completed.stderr
        assert "r1" in completed.stdout
        assert [p for p in HEAVY if loaded(modules, p)] == []
