"""Commands that maintain a store itself: `index`."""

from __future__ import annotations

import json
from typing import Optional

import click

from kfp_lineage.cli import _common
from kfp_lineage.mlmd import indexes
from kfp_lineage.mlmd import store as store_module


@click.command("index")
@_common.store_option
@click.option("--drop", is_flag=True, help="Remove kfp-lineage's indexes and marker instead.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: store, added, present, created_by, "
                                                       "seconds.")
def index_command(store: Optional[str], drop: bool, as_json: bool) -> None:
    """Add kfp-lineage's lineage-walk indexes to an existing store.

    Stores that `kfp-lineage run` creates have them already; this adds them to a store made elsewhere (by an
    older kfp-lineage, the KFP backend or ml-metadata itself), after which runs keep them current. They make
    `trace` and `impact` on large stores faster, cost about a quarter more disk, and change nothing ml-metadata
    reads or writes (ml-metadata's own statements cannot use them). SQLite stores only.

    \b
    Examples:
      kfp-lineage index
      kfp-lineage index --store sqlite:////data/mlmd.sqlite
      kfp-lineage index --drop
    """
    with _common.errors_to_exit_codes():
        url = store_module.parse_store_url(store)
        report = indexes.drop_indexes(url) if drop else indexes.add_indexes(url)
    if as_json:
        click.echo(json.dumps(report.to_json(), sort_keys=True))
        return
    origin = f"created by {report.created_by}" if report.created_by else "not marked as created by kfp-lineage"
    if drop:
        click.echo(f"dropped {len(report.present)} indexes from {report.store} ({origin}) in {report.seconds:.2f} s")
        return
    click.echo(f"indexed {report.store} ({origin}) in {report.seconds:.2f} s: {len(report.added)} added, "
               f"{len(report.present)} present already")
    for name in report.added:
        click.echo(f"  added   {name}")
    for name in report.present:
        click.echo(f"  present {name}")


COMMANDS = [index_command]
