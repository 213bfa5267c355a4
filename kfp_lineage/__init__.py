"""Run compiled KFP pipelines locally and record KFP-compatible ML Metadata lineage."""
