"""Reading lineage from ML Metadata: readers (reader, mlmd_reader, sqlite_reader), the graph, finding what a user
names (references), trace/impact (walk), show (describe), runs, verify, and the renderers."""
