"""Commands that read lineage from a store: `trace`, `impact`, `runs` and `show`."""

from __future__ import annotations

import contextlib
import json
from typing import Callable, Iterator, Optional

import click

from kfp_lineage import errors
from kfp_lineage.lineage import graph as lineage_graph
from kfp_lineage.lineage import describe as lineage_describe
from kfp_lineage.lineage import references
from kfp_lineage.lineage import reader as lineage_reader
from kfp_lineage.lineage import runs as lineage_runs
from kfp_lineage.lineage import store_access
from kfp_lineage.lineage import walk
from kfp_lineage.lineage.render import graph as render_graph
from kfp_lineage.lineage.render import html_page as render_html
from kfp_lineage.lineage.render import text as render_text
from kfp_lineage.cli import _common

FORMATS = ("text", "json", "dot", "mermaid", "html")

format_option = click.option(
    "--format", "output_format", type=click.Choice(FORMATS), default="text", show_default=True,
    help="text for people; json (docs/lineage-json.md); dot (Graphviz); mermaid; html (one offline page with "
         "an interactive graph).")
json_option = click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
output_option = click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
    help="Write to FILE instead of standard output.")
depth_option = click.option(
    "--depth", type=click.IntRange(min=0), default=walk.DEFAULT_DEPTH, show_default=True,
    help="How many steps to walk.")


@contextlib.contextmanager
def _reading(store: Optional[str]) -> Iterator[lineage_reader.Reader]:
    """A reader of the --store store (the SQL reader when it applies; a vertex:// run read into a scratch store),
    closed afterwards."""
    url = _common.parse_read_url(store)
    if url.scheme == "vertex":
        from kfp_lineage.lineage import mlmd_reader

        reader: lineage_reader.Reader = mlmd_reader.MlmdReader(_common.open_existing_store(store))
    else:
        reader = store_access.open_reader(url)
    try:
        yield reader
    finally:
        reader.close()


def _chosen_format(output_format: str, as_json: bool) -> str:
    """--format, or json for --json; both at once must agree (exit 2 otherwise)."""
    if as_json and output_format not in ("text", "json"):
        with _common.errors_to_exit_codes():
            raise errors.InvalidInputError(f"--json and --format {output_format} ask for two formats: pass one")
    return "json" if as_json else output_format


def _emit(graph: lineage_graph.LineageGraph, output_format: str, title: str, output: Optional[str],
          text: Callable[[lineage_graph.LineageGraph], str]) -> None:
    """Renders a lineage graph in the chosen format to stdout or a file."""
    if output_format == "json":
        rendered = json.dumps(graph.to_json(), indent=2, sort_keys=True, default=str) + "\n"
    elif output_format == "dot":
        rendered = render_graph.to_dot(graph, title)
    elif output_format == "mermaid":
        rendered = render_graph.to_mermaid(graph, title)
    elif output_format == "html":
        rendered = render_html.to_html(graph, title)
    else:
        rendered = text(graph) + "\n"
    if output:
        with _common.errors_to_exit_codes():
            try:
                with open(output, "w", encoding="utf-8") as f:
                    f.write(rendered)
            except OSError as e:
                raise errors.InvalidInputError(
                    f"cannot write {output}: {e.strerror}: pass -o FILE in a directory that exists and you can "
                    "write") from None
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(rendered, nl=False)


def _name(artifact: Optional[lineage_graph.Artifact]) -> str:
    if artifact is None:
        return "artifact"
    return f"{artifact.name or 'artifact'} (artifact {artifact.id}, {artifact.type})"


@click.command("trace")
@click.argument("artifact", metavar="ARTIFACT")
@_common.read_store_options
@depth_option
@format_option
@json_option
@output_option
def trace_command(artifact: str, store: Optional[str], depth: int, output_format: str, as_json: bool,
                  output: Optional[str]) -> None:
    """Show where an artifact came from: its producer, their inputs, upstream to the sources, with the code
    version, the evaluations and the deployments that used it.

    ARTIFACT is an MLMD artifact id, a URI, or RUN_ID/TASK/OUTPUT (RUN_ID may be `latest`). A cache hit leads to
    the task that really made the artifact.

    \b
    Examples:
      kfp-lineage trace latest/train/model
      kfp-lineage trace 42 --format json
      kfp-lineage trace latest/train/model --format html -o lineage.html
    """
    output_format = _chosen_format(output_format, as_json)
    with _common.errors_to_exit_codes():
        with _reading(store) as reader:
            graph = walk.trace(reader, references.resolve_artifact(reader, artifact), depth=depth)
    _emit(graph, output_format, f"trace of {_name(graph.root)}", output,
          render_text.trace_text)


@click.command("impact")
@click.argument("artifact", metavar="ARTIFACT")
@_common.read_store_options
@depth_option
@format_option
@json_option
@output_option
def impact_command(artifact: str, store: Optional[str], depth: int, output_format: str, as_json: bool,
                   output: Optional[str]) -> None:
    """Show everything downstream of an artifact, grouped by run: the tasks that read it, what they wrote (models,
    metrics, endpoints), and so on down.

    ARTIFACT is an MLMD artifact id, a URI, or RUN_ID/TASK/OUTPUT (RUN_ID may be `latest`). The text format reads
    only what it shows; the other formats read every property.

    \b
    Examples:
      kfp-lineage impact latest/ingest/train
      kfp-lineage impact 7 --format json > impact.json
    """
    output_format = _chosen_format(output_format, as_json)
    with _common.errors_to_exit_codes():
        with _reading(store) as reader:
            graph = walk.impact(reader, references.resolve_artifact(reader, artifact), depth=depth,
                                full=output_format != "text")
    _emit(graph, output_format, f"impact of {_name(graph.root)}", output, render_text.impact_text)


@click.command("runs")
@_common.store_option
@click.option("--pipeline", metavar="NAME", help="Only runs of this pipeline (its pipelineInfo.name).")
@click.option("--limit", type=click.IntRange(min=1), default=lineage_runs.DEFAULT_RUN_LIMIT, show_default=True,
              help="At most this many runs, newest first.")
@click.option("--format", "output_format", type=click.Choice(("text", "json")), default="text", show_default=True,
              help="text: a table; json: {\"format_version\", \"runs\": [...]} (docs/lineage-json.md).")
@json_option
def runs_command(store: Optional[str], pipeline: Optional[str], limit: int, output_format: str,
                 as_json: bool) -> None:
    """List recent runs: id, pipeline, state, start time, duration and task counts.

    \b
    Examples:
      kfp-lineage runs
      kfp-lineage runs --pipeline training --limit 5 --format json
    """
    with _common.errors_to_exit_codes():
        with _reading(store) as reader:
            runs = lineage_runs.list_runs(reader, pipeline=pipeline, limit=limit)
    if as_json or output_format == "json":
        data = {"format_version": lineage_graph.JSON_FORMAT_VERSION, "runs": [r.to_json() for r in runs]}
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(render_text.runs_table(runs))


@click.command("show")
@click.argument("reference", metavar="RUN_ID|ARTIFACT")
@_common.read_store_options
@format_option
@json_option
@output_option
def show_command(reference: str, store: Optional[str], output_format: str, as_json: bool,
                 output: Optional[str]) -> None:
    """Show one run (its tasks with states, durations, parameters and artifacts) or one artifact (every property,
    its producer and its consumers).

    A run id or `latest` shows a run; anything else is an artifact: an MLMD artifact id, a URI, or
    RUN_ID/TASK/OUTPUT.

    \b
    Examples:
      kfp-lineage show latest
      kfp-lineage show latest/train/model
      kfp-lineage show training-20261126-055643-fea47a --format mermaid
    """
    output_format = _chosen_format(output_format, as_json)
    with _common.errors_to_exit_codes():
        with _reading(store) as reader:
            graph = lineage_describe.describe(reader, reference)
    if graph.view == "run":
        title, text = f"run {graph.run_id}", render_text.run_text
    else:
        title, text = _name(graph.root), render_text.artifact_text
    _emit(graph, output_format, title, output, text)


COMMANDS = [trace_command, impact_command, runs_command, show_command]
