"""What every command shares: the error-to-exit-code boundary, the --store option, parameter parsing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import Iterator, Sequence

import click
from ml_metadata.metadata_store import metadata_store

from kfp_lineage import errors
from kfp_lineage.mlmd import store as store_module

EXIT_OK, EXIT_RUN_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_TERMINATED = 143  # SIGTERM: 128 + 15, as a shell reports a process SIGTERM killed


@contextlib.contextmanager
def errors_to_exit_codes() -> Iterator[None]:
    """Turns library errors into a one-line `Error: ...` and the exit code of their class."""
    try:
        yield
    except errors.LineageError as e:
        echo_safely(f"Error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt as e:  # errors.RunCanceled says which signal (128 + its number); Ctrl-C is 130
        code = getattr(e, "exit_code", EXIT_INTERRUPTED)
        cause = "interrupted" if code == EXIT_INTERRUPTED else f"stopped by {_signal_name(code - 128)}"
        echo_safely(f"Error: {cause}; running tasks were stopped and recorded as CANCELED", err=True)
        sys.exit(code)


def echo_safely(text: str, err: bool = False) -> None:
    """click.echo that survives a reader that went away (`| head -5`, a closed terminal): the rest of that output
    is dropped (the stream is pointed at /dev/null, so Python's flush at exit cannot fail either) and the
    command goes on to its exit code."""
    try:
        click.echo(text, err=err)
    except (OSError, ValueError):  # BrokenPipeError, EIO from a hung-up terminal, a closed file
        drop_stream(sys.stderr if err else sys.stdout)


def drop_stream(stream) -> None:
    """Points a standard stream whose reader is gone at /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


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
    if url.scheme == "sqlite" and not os.path.exists(url.path):
        raise errors.StoreError(f"no store at {url.path}: run a pipeline first, or pass --store")
    if url.scheme == "sqlite" and os.path.isfile(url.path) and os.path.getsize(url.path) == 0:
        # ml-metadata would write its schema into it: a read must not change the file.
        raise errors.StoreError(f"{url.path} is empty, not an MLMD store: run a pipeline into it, or pass --store")
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
