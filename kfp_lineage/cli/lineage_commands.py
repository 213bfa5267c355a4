"""Commands that read lineage from a store: `trace`."""

from __future__ import annotations

import json
from typing import Optional

import click

from kfp_lineage import queries, render
from kfp_lineage.cli import _common

@click.command("trace")
@click.argument("artifact", metavar="ARTIFACT")
@_common.store_option
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
    with _common.errors_to_exit_codes():
        metadata_store = _common.open_existing_store(store)
        node = queries.trace(metadata_store, queries.find_artifact(metadata_store, artifact), depth=depth)
    if as_json:
        click.echo(json.dumps(node.to_json(), indent=2, sort_keys=True, default=str))
    else:
        click.echo(render.trace_text(node))


COMMANDS = [trace_command]
