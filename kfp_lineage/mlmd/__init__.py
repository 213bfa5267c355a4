"""ML Metadata: store URLs, the MLMD vocabulary and value codec, the writer, recovery, and kfp-lineage's own
indexes on the stores it creates (indexes)."""
