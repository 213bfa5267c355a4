"""Reading lineage from ML Metadata: readers (reader, mlmd_reader, sqlite_reader, server_reader) and opening one
from a store URL (store_access), the graph, finding what a user names (references), trace/impact (walk), show
(describe), runs, verify, and the renderers."""
