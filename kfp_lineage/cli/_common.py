"""What every command shares: the error-to-exit-code boundary, the --store option, parameter parsing."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import TYPE_CHECKING, Iterator, Sequence

import click

from kfp_lineage import errors
from kfp_lineage.lineage import store_access
from kfp_lineage.mlmd import store as store_module

if TYPE_CHECKING:
    from ml_metadata.metadata_store import metadata_store

EXIT_OK, EXIT_RUN_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


@contextlib.contextmanager
def errors_to_exit_codes() -> Iterator[None]:
    """Turns library errors into a one-line `Error: ...` and the exit code of their class."""
    try:
        yield
    except errors.LineageError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("Error: interrupted; running tasks were stopped and recorded as CANCELED", err=True)
        sys.exit(EXIT_INTERRUPTED)


def parse_pairs(values: Sequence[str], option: str = "--param", example: str = "threshold=0.8") -> dict:
    """`NAME=VALUE` strings of a repeatable option -> {NAME: VALUE}; raises InvalidInputError naming a malformed
    one, with `example` as the fix."""
    pairs = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            placeholder = "KEY=VALUE" if option == "--label" else "NAME=VALUE"
            raise errors.InvalidInputError(f"{option} {item!r} is not {placeholder}: write e.g. {option} {example}")
        pairs[name] = value
    return pairs


def parse_params(values: Sequence[str]) -> dict:
    """`--param NAME=VALUE` values -> {NAME: VALUE}."""
    return parse_pairs(values)


store_option = click.option(
    "--store",
    envvar=store_module.STORE_ENV_VAR,
    show_envvar=True,
    help="Metadata store: a path or sqlite:///PATH (default .kfp-lineage/mlmd.sqlite), "
    "mysql://USER:PASSWORD@HOST:PORT/DB or postgresql://USER@HOST:PORT/DB.",
)


def open_existing_store(url_text: str | None) -> metadata_store.MetadataStore:
    """Opens a store for reading; a SQLite file that does not exist is an error, not a new empty store.

    Raises:
        StoreError: bad URL, missing SQLite file, or unreachable server.
    """
    url = store_module.parse_store_url(url_text)
    store_access.refuse_missing_store(url)
    return store_module.open_store(url)


CODE_VERSION_PARAMETER = "code_version"


def git_commit() -> str:
    """The git commit of the working directory (with `-dirty` when it has changes), or "unknown"."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.strip() + ("-dirty" if dirty.strip() else "")
