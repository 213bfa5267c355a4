"""`python -m kfp_lineage` runs the CLI."""

from kfp_lineage import cli

cli.entrypoint()
