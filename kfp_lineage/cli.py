"""The `kfp-lineage` command line: a thin layer over the library; maps errors to exit codes in one place."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Iterator, List, Optional, Sequence, Tuple

import click

from kfp_lineage import errors, progress, run as run_module, store as store_module

EXIT_OK, EXIT_RUN_FAILED, EXIT_INVALID = 0, 1, 2


@contextlib.contextmanager
def _errors_to_exit_codes() -> Iterator[None]:
    """Turns library errors into a one-line `Error: ...` and the exit code of their class."""
    try:
        yield
    except errors.LineageError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(e.exit_code)


def _parse_params(values: Sequence[str]) -> dict:
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kfp-lineage")
def main() -> None:
    """Run compiled Kubeflow / Vertex AI pipelines locally and record their lineage in ML Metadata."""


@main.command("run")
@click.argument("pipeline", metavar="SPEC_OR_MODULE[:FUNC]")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A pipeline parameter (repeatable).")
@store_option
@click.option("--pipeline-root", metavar="DIR", help="Where artifacts and logs go (default .kfp-lineage/pipeline-root).")
@click.option("--run-id", metavar="ID", help="The run's id (default: <pipeline>-<UTC time>-<random>).")
@click.option("--max-parallel", type=click.IntRange(min=1), help="Tasks running at once (default: CPU count).")
@click.option("--task-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Kill and fail a task that runs longer.")
@click.option("--no-cache", is_flag=True, help="Run every task even when a cached result exists.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the run's result on stdout.")
def run_command(
    pipeline: str,
    params: Tuple[str, ...],
    store: Optional[str],
    pipeline_root: Optional[str],
    run_id: Optional[str],
    max_parallel: Optional[int],
    task_timeout: Optional[float],
    no_cache: bool,
    as_json: bool,
) -> None:
    """Run a pipeline locally and record its lineage.

    \b
    Examples:
      kfp-lineage run specs/training.yaml
      kfp-lineage run specs/training.yaml --param threshold=0.95 --json
      kfp-lineage run pipelines/training.py:training --store mysql://root@127.0.0.1:3306/mlmd
    """
    with _errors_to_exit_codes():
        result = run_module.run_pipeline(
            pipeline,
            _parse_params(params),
            store=store,
            pipeline_root=pipeline_root,
            run_id=run_id,
            max_parallel=max_parallel,
            task_timeout=task_timeout,
            reporter=progress.TextReporter(),
        )
        if as_json:
            click.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))
        else:
            click.echo(f"{result.state} run {result.run_id}")
        if not result.succeeded:
            failed = [t for t in result.tasks.values() if t.state == "FAILED" and t.log_path]
            if failed:
                click.echo(f"Error: task {failed[0].key} failed: {failed[0].error} (log: {failed[0].log_path})",
                           err=True)
            sys.exit(EXIT_RUN_FAILED)


def entrypoint(argv: Optional[List[str]] = None) -> None:
    """The console script: runs `main` with argv (default sys.argv[1:])."""
    main.main(args=argv, prog_name="kfp-lineage")
