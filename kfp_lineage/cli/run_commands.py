"""Commands that run and build pipelines: `run` and `compile`."""

from __future__ import annotations

import json
import sys
from typing import Optional, Tuple

import click

from kfp_lineage.remote import compiling as compile_module
from kfp_lineage.engine import progress
from kfp_lineage.engine import run as run_module
from kfp_lineage.ir import spec
from kfp_lineage.cli import _common
from kfp_lineage.cli import env_commands
from kfp_lineage.engine.exec import environment_plan
from kfp_lineage.engine.exec import image_sources as image_sources_module


@click.command("run")
@click.argument("pipeline", metavar="SPEC_OR_MODULE[:FUNC]")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A pipeline parameter (repeatable).")
@_common.store_option
@click.option("--pipeline-root", metavar="DIR", help="Where artifacts and logs go (default .kfp-lineage/pipeline-root).")
@click.option("--run-id", metavar="ID", help="The run's id (default: <pipeline>-<UTC time>-<random>).")
@click.option("--max-parallel", type=click.IntRange(min=1), help="Tasks running at once (default: CPU count).")
@click.option("--task-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Kill and fail a task that runs longer.")
@click.option("--no-cache", is_flag=True, help="Run every task even when a cached result exists.")
@click.option("--task-env", type=click.Choice(environment_plan.MODES), envvar=environment_plan.MODE_ENV_VAR,
              show_envvar=True,
              help="Where tasks run: auto (default; the runner's environment when it meets a task's requirements "
                   "and image Python, else an environment built for them), isolated (always built), current "
                   "(always the runner's; a missing package is refused).")
@env_commands.env_cache_option
@click.option("--find-links", "find_links", multiple=True, metavar="DIR",
              help="A directory of wheels (or a URL of a page of links) that building a task environment also looks "
                   "in, as pip's --find-links; the spec's own index URLs still apply (repeatable).")
@click.option("--image-source", "image_sources", multiple=True, metavar="IMAGE=DIR",
              help="Run containerized Python components of IMAGE from DIR, the directory the image is built from "
                   "(its Dockerfile and kfp_config.ini): in an environment holding what the Dockerfile installs, "
                   "with DIR's code; the run records IMAGE (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the run's result on stdout.")
@click.option("--target", type=click.Choice(["kfp", "vertex"]), default="kfp", show_default=True,
              help="Where the pipeline will run: warn about what that backend rejects (ParallelFor over artifacts, "
                   "importer URIs outside an object store, ...).")
@click.option("--strict", is_flag=True, help="Make --target's warnings errors (exit 2, nothing run).")
def run_command(
    pipeline: str,
    params: Tuple[str, ...],
    store: Optional[str],
    pipeline_root: Optional[str],
    run_id: Optional[str],
    max_parallel: Optional[int],
    task_timeout: Optional[float],
    no_cache: bool,
    task_env: Optional[str],
    env_cache: Optional[str],
    find_links: Tuple[str, ...],
    image_sources: Tuple[str, ...],
    as_json: bool,
    target: str,
    strict: bool,
) -> None:
    """Run a pipeline locally and record its lineage.

    \b
    Examples:
      kfp-lineage run specs/training.yaml
      kfp-lineage run specs/training.yaml --param threshold=0.95 --json
      kfp-lineage run pipelines/training.py:training --store mysql://root@127.0.0.1:3306/mlmd
      kfp-lineage run specs/training.yaml --target vertex --strict
      kfp-lineage run specs/training.yaml --task-env isolated --env-cache /tmp/envs
      kfp-lineage run build/specs/training.yaml --find-links dist/
      kfp-lineage run build/specs/training.yaml --image-source REGISTRY/kfp-lineage-components:0.1.0=components

    \b
    Exit codes:
      0    the run succeeded
      1    a task failed, or the runner itself failed (the run is recorded FAILED)
      2    invalid input (spec, parameter, option, store); nothing was written
      130  interrupted (Ctrl-C); 143 terminated (SIGTERM); 129 hung up (SIGHUP):
           running tasks were killed and recorded CANCELED
    """
    with _common.errors_to_exit_codes():
        loaded = spec.load_pipeline(pipeline)
        arguments = _common.parse_params(params)
        if _common.CODE_VERSION_PARAMETER in loaded.spec.root.input_definitions.parameters:
            arguments.setdefault(_common.CODE_VERSION_PARAMETER, _common.git_commit())
        result = run_module.run_pipeline(
            loaded,
            arguments,
            store=store,
            pipeline_root=pipeline_root,
            run_id=run_id,
            max_parallel=max_parallel,
            task_timeout=task_timeout,
            enable_cache=not no_cache,
            task_env=task_env,
            env_cache=env_cache,
            image_sources=image_sources_module.parse_image_sources(image_sources),
            find_links=find_links,
            reporter=progress.TextReporter(),
            target=target,
            strict=strict,
        )
        # A reader that went away (`| head -5`) changes nothing: the run is recorded, its exit code stands.
        if as_json:
            _common.echo_safely(json.dumps(result.to_json(), indent=2, sort_keys=True))
        else:
            _common.echo_safely(f"{result.state} run {result.run_id}")
        if not result.succeeded:
            failed = [t for t in result.tasks.values() if t.state == "FAILED" and t.log_path]
            if failed:
                _common.echo_safely(
                    f"Error: task {failed[0].key} failed: {failed[0].error} (log: {failed[0].log_path})", err=True)
            sys.exit(_common.EXIT_RUN_FAILED)


@click.command("compile")
@click.option("--pipelines-dir", default="pipelines", show_default=True, type=click.Path(file_okay=False))
@click.option("--components-dir", default="components", show_default=True, type=click.Path(file_okay=False))
@click.option("--output-dir", default="specs", show_default=True, type=click.Path(file_okay=False))
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when a spec differs from a fresh compile.")
@click.option("--components-image", default="", metavar="IMAGE",
              help="Compile containerized components that run in IMAGE (built from components/ by `make image`), "
                   "with no pip install at start-up.")
@click.option("--index-url", "index_urls", multiple=True, metavar="URL",
              help="Compile lightweight components that pip-install the components' wheel (`make dist`) from URL; "
                   "repeatable: the first is pip's --index-url, the others --extra-index-url.")
def compile_command(pipelines_dir: str, components_dir: str, output_dir: str, check: bool, components_image: str,
                    index_urls: Tuple[str, ...]) -> None:
    """Compile every pipeline and component to IR YAML under specs/.

    Pipelines go to specs/<name>.yaml, components to specs/components/<name>.yaml, ready for
    kfp.components.load_component_from_file. By default each component carries the shared modules it imports
    and installs only PyPI packages; --components-image and --index-url ship them the other two KFP ways.

    \b
    Examples:
      kfp-lineage compile
      kfp-lineage compile --check    # in CI: fail when a checked-in spec is stale
      kfp-lineage compile --output-dir build/specs \\
          --components-image us-central1-docker.pkg.dev/PROJECT/REPO/kfp-lineage-components:0.1.0
      kfp-lineage compile --output-dir build/specs \\
          --index-url https://us-central1-python.pkg.dev/PROJECT/REPO/simple/ --index-url https://pypi.org/simple
    """
    shipping = compile_module.ShippingOptions(components_image=components_image, index_urls=index_urls)
    with _common.errors_to_exit_codes():
        results = compile_module.compile_project(pipelines_dir, components_dir, output_dir, check=check,
                                                 shipping=shipping)
    stale = [r for r in results if r.changed]
    for r in results:
        status = ("stale" if check else "updated") if r.changed else "up to date"
        click.echo(f"{status:<10} {r.kind:<9} {r.path}")
    if check and stale:
        click.echo(f"Error: {len(stale)} spec(s) differ from a fresh compile: run `kfp-lineage compile` "
                   "(or `make specs`) and commit the result", err=True)
        sys.exit(_common.EXIT_RUN_FAILED)


COMMANDS = [run_command, compile_command]
