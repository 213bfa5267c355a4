"""The compiled pipeline: loading IR YAML, pre-run checks, conditions, input resolution."""
