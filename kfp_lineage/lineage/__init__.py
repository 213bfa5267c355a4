"""Reading lineage from ML Metadata: readers, the graph, trace/impact/describe, renderers."""
