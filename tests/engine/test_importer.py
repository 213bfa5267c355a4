"""What an imported artifact records beside its metadata, as the backend's importer launcher writes it."""

from kfp_lineage.engine import importer


def test_an_imported_artifact_gets_the_session_of_its_uri_s_object_store():
    assert importer._store_session_info("gs://bucket/data.csv") == '{"Provider":"gs","Params":{"fromEnv":"true"}}'
    assert importer._store_session_info("s3://bucket/data.csv") == '{"Provider":"s3","Params":{"fromEnv":"true"}}'
    assert importer._store_session_info("/data/x.csv") == '{"Provider":"local","Params":{}}'
    assert importer._store_session_info("https://host/x.csv") == '{"Provider":"local","Params":{}}'
