"""What every command shares: the error-to-exit-code boundary, the --store option, parameter parsing."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

import click

from kfp_lineage import errors
from kfp_lineage.lineage import store_access
from kfp_lineage.mlmd import store as store_module

if TYPE_CHECKING:
    from ml_metadata.metadata_store import metadata_store

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
    "mysql://USER:PASSWORD@HOST:PORT/DB, postgresql://USER@HOST:PORT/DB, or a KFP cluster's metadata-grpc-service: "
    "grpc://HOST:PORT (grpcs://HOST:PORT?ca=CA.pem for TLS).",
)


def read_store_options(command: Callable) -> Callable:
    """--store, or --vertex-run (with --api-endpoint), for the commands that read one run's lineage.

    --vertex-run reaches the command as its `store` argument, a vertex:// URL that open_existing_store reads.
    """

    @functools.wraps(command)
    def with_vertex_run(*args: Any, vertex_run: Optional[str], vertex_endpoint: Optional[str], **kwargs: Any) -> Any:
        if vertex_run or vertex_endpoint:
            with errors_to_exit_codes():
                kwargs["store"] = _vertex_store(vertex_run, vertex_endpoint)
        return command(*args, **kwargs)

    with_vertex_run = click.option(
        "--api-endpoint", "vertex_endpoint", metavar="URL",
        help="With --vertex-run: a custom Vertex AI API endpoint (private endpoint, emulator); "
             "plain http:// is called anonymously.")(with_vertex_run)
    with_vertex_run = click.option(
        "--vertex-run", metavar="projects/P/locations/L/pipelineJobs/JOB",
        help="Read a Vertex AI Pipelines run from Vertex ML Metadata instead of a store: the pipeline job's name, "
             "as `submit --vertex` prints it (its run id is the job ID; `latest` names it too).")(with_vertex_run)
    return store_option(with_vertex_run)


def _vertex_store(vertex_run: Optional[str], endpoint: Optional[str]) -> str:
    """The vertex:// URL for --vertex-run and --api-endpoint; refuses them with --store, or an endpoint alone."""
    if not vertex_run:
        raise errors.InvalidInputError("--api-endpoint applies only with --vertex-run: pass the pipeline job too")
    if click.get_current_context().get_parameter_source("store") == click.core.ParameterSource.COMMANDLINE:
        raise errors.InvalidInputError("--store and --vertex-run both name what to read: pass one")
    from kfp_lineage.remote import vertex_lineage as vertex_reader

    return vertex_reader.parse_vertex_run(vertex_run, api_endpoint=endpoint or "").redacted


def parse_read_url(url_text: str | None) -> Any:
    """A store URL for a read command: a store (store.parse_store_url) or a vertex:// Vertex AI pipeline job."""
    if url_text and url_text.startswith("vertex://"):
        from kfp_lineage.remote import vertex_lineage

        return vertex_lineage.parse_vertex_run(url_text)
    return store_module.parse_store_url(url_text)


def open_existing_store(url_text: str | None) -> metadata_store.MetadataStore:
    """Opens a store for reading; a SQLite file that does not exist is an error, not a new empty store. A vertex://
    URL (--vertex-run) is read from Vertex ML Metadata into a scratch store.

    Raises:
        StoreError: bad URL, missing SQLite file, or unreachable server or Vertex AI endpoint.
    """
    url = parse_read_url(url_text)
    if url.scheme == "vertex":
        from kfp_lineage.remote import vertex_lineage

        return vertex_lineage.open_vertex_run(url)  # type: ignore[arg-type]
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
