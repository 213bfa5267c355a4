"""`kfp-lineage envs list|prune`: the cache of task environments, built with real uv from a local wheelhouse."""

import datetime
import json
import os

import pytest
from click.testing import CliRunner

from kfp_lineage import cli
from kfp_lineage.cli import env_commands
from kfp_lineage.engine.exec import environment_spec, environments, interpreters
from kfp_lineage.ir import requirements
from tests import wheelhouse


@pytest.fixture(scope="module")
def cache_with_two(tmp_path_factory):
    """A cache holding kfpl-probe 1.0 and kfpl-probe 2.0 (+ kfpl-helper) environments."""
    root = tmp_path_factory.mktemp("envs")
    wheels = wheelhouse.write_wheelhouse(str(tmp_path_factory.mktemp("wheels")))
    runner = interpreters.runner_interpreter()
    specs = {}
    for version in ("1.0", "2.0"):
        install = requirements.PipInstall((f"kfpl-probe=={version}",),
                                          requirements.IndexOptions(find_links=(wheels,), no_index=True))
        spec = environment_spec.EnvironmentSpec((install,), runner.version, runner.path,
                                                environment_spec.current_platform())
        specs[spec.digest] = (spec, [f"task-{version}"])
    environments.prepare(specs, environments.EnvironmentCache(str(root)),
                         environ=dict(os.environ, UV_CACHE_DIR=str(tmp_path_factory.mktemp("uv-cache"))))
    return str(root), list(specs)


def invoke(*args, env=None):
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False, env=env)


def test_list_shows_each_environment(cache_with_two):
    root, digests = cache_with_two
    result = invoke("envs", "list", "--env-cache", root)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["DIGEST", "PYTHON", "PACKAGES", "SIZE", "LAST", "USED"]
    rows = {line.split()[0]: line.split() for line in lines[1:3]}
    assert set(rows) == set(digests)
    python = environments.EnvironmentCache(root).lookup(digests[0], touch=False).python
    assert sorted(row[2] for row in rows.values()) == ["1", "2"]
    assert all(row[1] == python for row in rows.values())
    assert lines[3].startswith("2 environments, ") and lines[3].endswith(f", in {root}")


def test_list_json_and_the_environment_variable(cache_with_two):
    root, digests = cache_with_two
    result = invoke("envs", "list", "--json", env={environments.CACHE_ENV_VAR: root})
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert sorted(record["digest"] for record in records) == sorted(digests)
    assert set(records[0]) == {"digest", "path", "python", "packages", "size", "created", "last_used", "usable"}
    assert all(record["size"] > 0 and record["usable"] for record in records)


def test_list_of_an_empty_cache(tmp_path):
    result = invoke("envs", "list", "--env-cache", str(tmp_path))
    assert (result.exit_code, result.output) == (0, f"no task environments in {tmp_path}\n")


def test_prune_by_age_then_all(tmp_path, cache_with_two):
    import shutil

    root = str(tmp_path / "copy")
    shutil.copytree(cache_with_two[0], root, symlinks=True)
    old, recent = cache_with_two[1]
    manifest_path = os.path.join(root, old, environments.MANIFEST_NAME)
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    manifest["last_used"] = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=31)).isoformat()
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle)

    result = invoke("envs", "prune", "--older-than", "30d", "--env-cache", root)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"removed {old}  Python ") and ", 1 package, " in lines[0]
    assert lines[1].startswith("removed 1 environment (") and lines[1].endswith(f"); 1 kept in {root}")
    assert recent in os.listdir(root) and old not in os.listdir(root)

    result = invoke("envs", "prune", "--env-cache", root)
    assert result.output.splitlines()[-1].startswith("removed 1 environment (")
    assert invoke("envs", "list", "--env-cache", root).output == f"no task environments in {root}\n"


@pytest.mark.parametrize("args, message", [
    (["prune", "--older-than", "3x"],
     "Error: --older-than '3x' is not a duration: use a number and a unit (s, m, h, d, w), e.g. 30d, 12h, 1d12h\n"),
    (["prune", "--older-than", ""],
     "Error: --older-than '' is not a duration: use a number and a unit (s, m, h, d, w), e.g. 30d, 12h, 1d12h\n"),
    (["list", "--env-cache", "/nonexistent/envs"],
     "Error: --env-cache '/nonexistent/envs' is not a directory: give the directory task environments are cached "
     "in\n"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = CliRunner().invoke(cli.main, ["envs"] + args)
    assert (result.exit_code, result.stderr, result.stdout) == (2, message, "")


@pytest.mark.parametrize("text, seconds", [("30d", 30 * 86400), ("12h", 43200), ("45m", 2700), ("90s", 90),
                                           ("2w", 1209600), ("1d12h", 129600), ("1.5h", 5400), (" 7D ", 604800)])
def test_durations(text, seconds):
    assert env_commands.parse_duration(text, "--older-than") == datetime.timedelta(seconds=seconds)
