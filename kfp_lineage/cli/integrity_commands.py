"""Commands that keep a store truthful: `verify` (artifact drift) and `recover` (runs whose runner died)."""

from __future__ import annotations

import json
import sys
from typing import Optional

import click

from kfp_lineage.mlmd import recovery
from kfp_lineage.lineage import verify
from kfp_lineage.cli import _common


@click.command("verify")
@click.argument("reference", metavar="ARTIFACT|RUN_ID")
@_common.store_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per artifact checked.")
def verify_command(reference: str, store: Optional[str], as_json: bool) -> None:
    """Re-hash artifacts and report any whose content changed since they were recorded.

    Exit 0 when every checked artifact matches its recorded sha256, 1 when one changed or is missing.

    \b
    Examples:
      kfp-lineage verify latest
      kfp-lineage verify training-20261126-055643-fea47a
      kfp-lineage verify latest/train/model
    """
    with _common.errors_to_exit_codes():
        metadata_store = _common.open_existing_store(store)
        checks = verify.verify_artifacts(verify.artifacts_to_verify(metadata_store, reference))
    for check in checks:
        if as_json:
            click.echo(json.dumps(check.to_json(), sort_keys=True))
        else:
            click.echo(f"{check.status:<20} {check.artifact_id:>6}  {check.uri}")
    drifted = [c for c in checks if c.drifted]
    if drifted:
        click.echo(f"Error: {len(drifted)} of {len(checks)} artifacts changed or are missing since they were "
                   f"recorded (first: {drifted[0].uri})", err=True)
        sys.exit(_common.EXIT_RUN_FAILED)


@click.command("recover")
@_common.store_option
@click.option("--run", "run_id", metavar="RUN_ID", help="Recover this run only (its runner must be dead).")
def recover_command(store: Optional[str], run_id: Optional[str]) -> None:
    """Mark the RUNNING executions of runs whose runner was killed as FAILED.

    Only runs started on this machine whose runner process is gone are touched; `kfp-lineage run` does the same
    for earlier runs of its pipeline before it starts.

    \b
    Examples:
      kfp-lineage recover
      kfp-lineage recover --run training-20261126-055643-fea47a
    """
    with _common.errors_to_exit_codes():
        metadata_store = _common.open_existing_store(store)
        recovered = recovery.recover(metadata_store, run_id=run_id)
    for run in recovered:
        click.echo(f"recovered run {run.run_id}: {run.executions_failed} executions marked FAILED "
                   f"(runner {run.runner} is gone)")
    if not recovered:
        click.echo("no dead runs found")


COMMANDS = [verify_command, recover_command]
