"""What every command shares: the error-to-exit-code boundary, the --store option, parameter parsing."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator, Sequence

import click
from ml_metadata.metadata_store import metadata_store

from kfp_lineage import errors, store as store_module

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


def parse_params(values: Sequence[str]) -> dict:
    """`NAME=VALUE` strings -> {NAME: VALUE}; raises InvalidInputError naming a malformed one."""
    params = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise errors.InvalidInputError(f"--param {item!r} is not NAME=VALUE: write e.g. --param threshold=0.8")
        params[name] = value
    return params


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
    if url.scheme == "sqlite" and not os.path.exists(url.path):
        raise errors.StoreError(f"no store at {url.path}: run a pipeline first, or pass --store")
    return store_module.open_store(url)
