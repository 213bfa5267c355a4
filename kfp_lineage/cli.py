"""The `kfp-lineage` command line: a thin layer over the library; maps errors to exit codes in one place."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Iterator, List, Optional, Sequence, Tuple

import os
import warnings

# ml-metadata's C++ layer logs every MySQL/PostgreSQL connection to stderr through glog; only warnings and
# errors should reach a user. glog reads this when the extension loads, so it is set before any import of it.
os.environ.setdefault("GLOG_minloglevel", "1")

# google-api-core warns on every import that Python 3.11 support ends in 2027; it is not actionable for users
# of this CLI and buries the progress lines. Installed before the library imports that trigger it.
warnings.filterwarnings("ignore", message=r"You are using a Python version .* which Google will stop supporting")
warnings.filterwarnings("ignore", message=r"The default base_image used by the @dsl.component decorator")

import click  # noqa: E402

from kfp_lineage import compile as compile_module  # noqa: E402
from kfp_lineage import errors, progress, queries, render, run as run_module, spec, store as store_module  # noqa: E402

EXIT_OK, EXIT_RUN_FAILED, EXIT_INVALID = 0, 1, 2


@contextlib.contextmanager
def _errors_to_exit_codes() -> Iterator[None]:
    """Turns library errors into a one-line `Error: ...` and the exit code of their class."""
    try:
        yield
    except errors.LineageError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("Error: interrupted; running tasks were stopped and recorded as CANCELED", err=True)
        sys.exit(130)


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
        loaded = spec.load_pipeline(pipeline)
        arguments = _parse_params(params)
        if CODE_VERSION_PARAMETER in loaded.spec.root.input_definitions.parameters:
            arguments.setdefault(CODE_VERSION_PARAMETER, _git_commit())
        result = run_module.run_pipeline(
            loaded,
            arguments,
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


@main.command("compile")
@click.option("--pipelines-dir", default="pipelines", show_default=True, type=click.Path(file_okay=False))
@click.option("--components-dir", default="components", show_default=True, type=click.Path(file_okay=False))
@click.option("--output-dir", default="specs", show_default=True, type=click.Path(file_okay=False))
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when a spec differs from a fresh compile.")
def compile_command(pipelines_dir: str, components_dir: str, output_dir: str, check: bool) -> None:
    """Compile every pipeline and component to IR YAML under specs/.

    Pipelines go to specs/<name>.yaml, components to specs/components/<name>.yaml, ready for
    kfp.components.load_component_from_file.

    \b
    Examples:
      kfp-lineage compile
      kfp-lineage compile --check    # in CI: fail when a checked-in spec is stale
    """
    with _errors_to_exit_codes():
        results = compile_module.compile_project(pipelines_dir, components_dir, output_dir, check=check)
    stale = [r for r in results if r.changed]
    for r in results:
        status = ("stale" if check else "updated") if r.changed else "up to date"
        click.echo(f"{status:<10} {r.kind:<9} {r.path}")
    if check and stale:
        click.echo(f"Error: {len(stale)} spec(s) differ from a fresh compile: run `kfp-lineage compile` "
                   "(or `make specs`) and commit the result", err=True)
        sys.exit(EXIT_RUN_FAILED)


@main.command("trace")
@click.argument("artifact", metavar="ARTIFACT")
@store_option
@click.option("--depth", type=click.IntRange(min=0), default=queries.DEFAULT_DEPTH, show_default=True,
              help="How many producer steps to walk upstream.")
@click.option("--json", "as_json", is_flag=True, help="Print the lineage as JSON.")
def trace_command(artifact: str, store: Optional[str], depth: int, as_json: bool) -> None:
    """Show where an artifact came from: its producer, their inputs, upstream to the sources.

    ARTIFACT is an MLMD artifact id, a URI, or RUN_ID/TASK/OUTPUT (RUN_ID may be `latest`).

    \b
    Examples:
      kfp-lineage trace latest/train/model
      kfp-lineage trace 42 --json
    """
    with _errors_to_exit_codes():
        url = store_module.parse_store_url(store)
        if url.scheme == "sqlite" and not os.path.exists(url.path):
            raise errors.StoreError(f"no store at {url.path}: run a pipeline first, or pass --store")
        metadata_store = store_module.open_store(url)
        node = queries.trace(metadata_store, queries.find_artifact(metadata_store, artifact), depth=depth)
    if as_json:
        click.echo(json.dumps(node.to_json(), indent=2, sort_keys=True, default=str))
    else:
        click.echo(render.trace_text(node))


CODE_VERSION_PARAMETER = "code_version"


def _git_commit() -> str:
    """The git commit of the working directory (with `-dirty` when it has changes), or "unknown"."""
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.strip() + ("-dirty" if dirty.strip() else "")


def entrypoint(argv: Optional[List[str]] = None) -> None:
    """The console script: runs `main` with argv (default sys.argv[1:])."""
    main.main(args=argv, prog_name="kfp-lineage")
