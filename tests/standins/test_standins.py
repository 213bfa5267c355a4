"""The stand-ins answer the real client libraries as the services do, record what they got, and fail on request."""

import io
import json
import urllib.error
import urllib.request

import pytest

from tests.standins.project import PROJECT
from tests.standins.server import Reply, StandInServer

pytest_plugins = ["tests.standins.fixtures"]


def storage_client():
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project=PROJECT, credentials=AnonymousCredentials())


def test_gcs_takes_every_upload_kind_the_client_uses_and_serves_the_bytes_back(gcs):
    gcs.add_bucket("bucket")
    bucket = storage_client().bucket("bucket")
    bucket.blob("small.txt").upload_from_string(b"hello")  # multipart
    big = bucket.blob("big.bin", chunk_size=256 * 1024)
    big.upload_from_file(io.BytesIO(b"x" * (600 * 1024)))  # resumable, in three chunks
    assert bucket.blob("small.txt").download_as_bytes() == b"hello"
    assert bucket.blob("big.bin").download_as_bytes() == b"x" * (600 * 1024)
    uploads = [(r.query["uploadType"], r.status) for r in gcs.requests_to(path_pattern="^/upload/")]
    assert uploads == [("multipart", 200), ("resumable", 200), ("resumable", 308), ("resumable", 308),
                       ("resumable", 200)]
    assert gcs.object_names("bucket") == ["big.bin", "small.txt"]


def test_gcs_media_upload_and_metadata(gcs):
    gcs.add_bucket("bucket")
    request = urllib.request.Request(f"{gcs.url}/upload/storage/v1/b/bucket/o?uploadType=media&name=a%2Fb.txt",
                                     data=b"abc", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.load(response)["size"] == "3"
    resource = storage_client().bucket("bucket").get_blob("a/b.txt")
    assert (resource.size, resource.md5_hash) == (3, "kAFQmDzST7DWlj99KOF/cg==")


def test_429_then_success_is_retried_by_the_storage_client_itself(gcs):
    gcs.add_bucket("bucket")
    gcs.fail("GET", "^/storage/v1/b/bucket$", 429)
    assert storage_client().bucket("bucket").exists()
    assert [r.status for r in gcs.requests] == [429, 200]


@pytest.mark.parametrize("status, error", [(403, "Forbidden"), (404, "NotFound")])
def test_injected_failures_reach_the_client_as_its_own_errors(gcs, status, error):
    from google.api_core import exceptions

    gcs.add_bucket("bucket")
    gcs.fail("GET", "/o/", status)
    with pytest.raises(exceptions.GoogleAPICallError) as excinfo:
        storage_client().bucket("bucket").blob("missing").reload()
    assert type(excinfo.value).__name__ == error and excinfo.value.code == status


def test_a_failure_is_used_up_after_its_count_and_then_the_route_answers():
    server = StandInServer()
    server.route("GET", "/thing", lambda request: Reply(200, {"ok": True}))
    server.fail("GET", "^/thing$", 503, times=2, message="try later")
    with server:
        statuses = []
        for _ in range(3):
            try:
                with urllib.request.urlopen(f"{server.url}/thing?x=1", timeout=5) as response:
                    statuses.append((response.status, json.load(response)))
            except urllib.error.HTTPError as e:
                statuses.append((e.code, json.load(e)))
        assert statuses == [
            (503, {"error": {"code": 503, "message": "try later", "status": "UNAVAILABLE"}}),
            (503, {"error": {"code": 503, "message": "try later", "status": "UNAVAILABLE"}}),
            (200, {"ok": True}),
        ]
        assert [(r.line, r.query, r.status) for r in server.requests] == [("GET /thing", {"x": "1"}, 503)] * 2 + [
            ("GET /thing", {"x": "1"}, 200)
        ]


def test_an_unknown_path_is_a_404_naming_the_stand_in():
    with StandInServer() as server:
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            urllib.request.urlopen(f"{server.url}/nothing", timeout=5)
        assert json.load(excinfo.value)["error"]["message"] == "stand-in has no route for GET /nothing"
