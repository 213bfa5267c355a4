"""Commands that compare a run's lineage with a lineage spec: `check` and `expect`."""

from __future__ import annotations

import json
import sys
from typing import Optional

import click

from kfp_lineage.expect import check as expectations
from kfp_lineage.expect import record as expectations_record
from kfp_lineage.expect import spec as expectations_spec
from kfp_lineage.cli import _common


@click.command("check")
@click.argument("spec_path", metavar="SPEC.lineage.yaml")
@_common.read_store_options
@click.option("--run", "run_id", metavar="RUN_ID",
              help="The run to check (default: the newest run of the spec's pipeline; `latest`: the newest run).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: ok, run_id, pipeline, spec, differences.")
def check_command(spec_path: str, store: Optional[str], run_id: Optional[str], as_json: bool) -> None:
    """Check that a run recorded the lineage a lineage spec expects.

    Exit codes: 0 the lineage matches; 1 it differs (each difference is printed with the spec line it
    concerns, then the recorded lineage of the tasks involved); 2 bad input (invalid spec, no such run,
    unreachable store). Works on stores written by the KFP backend too (--store grpc://... for a cluster's
    metadata service), and on Vertex AI Pipelines runs (--vertex-run).

    \b
    Examples:
      kfp-lineage check specs/training.lineage.yaml
      kfp-lineage check specs/training.lineage.yaml --run training-1 --json
      kfp-lineage check specs/training.lineage.yaml \\
          --vertex-run projects/my-project/locations/us-central1/pipelineJobs/training-20261203
    """
    with _common.errors_to_exit_codes():
        spec = expectations_spec.load_lineage_spec(spec_path)
        metadata_store = _common.open_existing_store(store)
        label = _common.parse_read_url(store).redacted
        result = expectations.check_lineage(metadata_store, spec, run_id, store_label=label)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))
    else:
        click.echo(result.to_text())
    if not result.ok:
        sys.exit(_common.EXIT_RUN_FAILED)


@click.command("expect")
@click.argument("run_id", metavar="RUN_ID")
@_common.read_store_options
@click.option("--no-metadata", is_flag=True, help="Leave out the artifacts' metadata keys.")
def expect_command(run_id: str, store: Optional[str], no_metadata: bool) -> None:
    """Print the lineage spec a recorded run satisfies, as YAML, to start a specs/<pipeline>.lineage.yaml from.

    RUN_ID may be `latest`. Review the result: drop metadata keys you do not care about, then commit it;
    `kfp-lineage check` passes on the same run.

    \b
    Examples:
      kfp-lineage expect latest > specs/training.lineage.yaml
      kfp-lineage expect training-20261126-055643-fea47a --store mysql://root@127.0.0.1:3306/mlmd
    """
    with _common.errors_to_exit_codes():
        metadata_store = _common.open_existing_store(store)
        run = expectations_record.read_run(metadata_store, run_id)
        spec = expectations.expect_lineage(run, metadata=not no_metadata)
    click.echo(expectations_spec.dump_lineage_spec(spec, header=[
        f"Expected lineage of pipeline {run.pipeline}, as run {run.run_id} recorded it (kfp-lineage expect).",
        "Review before committing; check with: kfp-lineage check <this file>. Format: docs/lineage-spec.md",
    ]), nl=False)


COMMANDS = [check_command, expect_command]
