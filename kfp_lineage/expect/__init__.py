"""Expected lineage: the lineage-spec format, recording a spec from a run, checking, pytest plugin."""
