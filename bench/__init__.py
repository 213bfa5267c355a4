"""Benchmarks: the synthetic store builder and the lineage query benchmark (see bench/results-queries.md)."""
