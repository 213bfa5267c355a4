"""Running a pipeline: scheduling DAGs, loops, retries, caching and importers."""
