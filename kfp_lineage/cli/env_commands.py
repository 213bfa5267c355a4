"""Commands for the cache of task environments: `envs list` and `envs prune`."""

from __future__ import annotations

import datetime
import json
import os
import re
from typing import Optional

import click

from kfp_lineage import errors
from kfp_lineage.cli import _common
from kfp_lineage.engine.exec import environments

env_cache_option = click.option(
    "--env-cache", "env_cache", metavar="DIR",
    help=f"The task environment cache (default: ${environments.CACHE_ENV_VAR}, else the user cache directory's "
         "kfp-lineage/envs).",
)


@click.group("envs")
def envs_group() -> None:
    """List and prune the cached environments tasks run in.

    Each task whose compiled requirements the runner's own environment does not meet runs in an environment built
    once for its requirement set and reused by every run that asks for the same set.

    \b
    Examples:
      kfp-lineage envs list
      kfp-lineage envs prune --older-than 30d
    """


@envs_group.command("list")
@env_cache_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per environment.")
def list_command(env_cache: Optional[str], as_json: bool) -> None:
    """List the cached task environments, most recently used first.

    \b
    Examples:
      kfp-lineage envs list
      kfp-lineage envs list --env-cache /tmp/envs --json
    """
    with _common.errors_to_exit_codes():
        cache = environments.EnvironmentCache(_cache_dir(env_cache))
        records = cache.list()
    if as_json:
        for record in records:
            click.echo(json.dumps(record.to_json(), sort_keys=True))
        return
    if not records:
        click.echo(f"no task environments in {cache.root}")
        return
    now = datetime.datetime.now(datetime.timezone.utc)
    click.echo(f"{'DIGEST':<24}  {'PYTHON':<8}  {'PACKAGES':>8}  {'SIZE':>9}  LAST USED")
    for record in records:
        python = record.python if record.usable else f"{record.python}!"
        click.echo(f"{record.digest:<24}  {python:<8}  {record.package_count:>8}  {_size(record.size):>9}  "
                   f"{_ago(now - record.last_used)}")
    total = sum(record.size for record in records)
    click.echo(f"{len(records)} environment{'s' if len(records) != 1 else ''}, {_size(total)}, in {cache.root}")
    if any(not record.usable for record in records):
        click.echo("!: the interpreter it was made from is gone; `kfp-lineage envs prune` removes it")


@envs_group.command("prune")
@env_cache_option
@click.option("--older-than", metavar="DURATION",
              help="Remove only environments not used for this long: 30d, 12h, 45m, 1d12h (default: remove all).")
def prune_command(env_cache: Optional[str], older_than: Optional[str]) -> None:
    """Remove cached task environments: all of them, or those not used for --older-than.

    An environment whose interpreter is gone is always removed; one being built is left alone. A run that needs a
    removed environment builds it again.

    \b
    Examples:
      kfp-lineage envs prune --older-than 30d
      kfp-lineage envs prune
    """
    with _common.errors_to_exit_codes():
        age = parse_duration(older_than, "--older-than") if older_than is not None else None
        cache = environments.EnvironmentCache(_cache_dir(env_cache))
        kept_before = len(cache.list())
        removed = cache.prune(older_than=age)
    for record in removed:
        count = record.package_count
        click.echo(f"removed {record.digest}  Python {record.python}, {count} package{'s' if count != 1 else ''}, "
                   f"{_size(record.size)}")
    freed = sum(record.size for record in removed)
    kept = kept_before - len(removed)
    click.echo(f"removed {len(removed)} environment{'s' if len(removed) != 1 else ''} ({_size(freed)}); "
               f"{kept} kept in {cache.root}")


COMMANDS = (envs_group,)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, option: str) -> datetime.timedelta:
    """`30d`, `12h`, `1d12h`, `90s` -> a timedelta; raises InvalidInputError naming `option` and the form."""
    cleaned = text.strip().lower()
    if not cleaned or _DURATION_PART.sub("", cleaned) != "":
        raise errors.InvalidInputError(
            f"{option} {text!r} is not a duration: use a number and a unit (s, m, h, d, w), e.g. 30d, 12h, 1d12h")
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(cleaned))
    return datetime.timedelta(seconds=seconds)


def _cache_dir(option_value: Optional[str]) -> str:
    """The cache directory; an --env-cache that is not a directory is refused (a default one may not exist yet)."""
    if option_value is not None and not os.path.isdir(option_value):
        raise errors.InvalidInputError(
            f"--env-cache {option_value!r} is not a directory: give the directory task environments are cached in")
    return environments.resolve_cache_dir(option_value)


def _size(size: int) -> str:
    value, unit = float(size), "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000:
            break
        value /= 1000
    return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"


def _ago(age: datetime.timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds // length} {unit} ago"
    return "just now"
