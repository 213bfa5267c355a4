"""ML Metadata: store URLs, the MLMD vocabulary and value codec, the writer, recovery."""
