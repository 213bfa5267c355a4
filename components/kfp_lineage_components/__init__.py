"""Reusable KFP v2 components with typed artifacts: ingest, train, evaluate, deploy."""
