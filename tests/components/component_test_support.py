"""Constants and assertions shared by the component tests (a plain module so test files can import it)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Tuple
from urllib.parse import unquote, urlparse

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_CSV = REPO_ROOT / "data" / "breast_cancer.csv"
CI_VARIABLES = (
    "KFP_LINEAGE_DEPLOYED_BY",
    "BUILD_URL",
    "GITHUB_SERVER_URL",
    "GITHUB_REPOSITORY",
    "GITHUB_RUN_ID",
    "CI_JOB_URL",
)


def assert_one_line(excinfo: pytest.ExceptionInfo, *fragments: str) -> str:
    """The runner shows the last log line of a failed task, so messages must be single lines."""
    message = str(excinfo.value)
    assert message and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def assert_no_output(path: Path) -> None:
    """Nothing (not even a leftover temp file) where a valid output would be."""
    assert not path.exists(), f"{path} was written"
    if path.parent.exists():
        assert not [p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]


class FakeGoogleApis:
    """A tiny HTTP server standing in for the Cloud Storage and BigQuery REST APIs.

    Point STORAGE_EMULATOR_HOST and BIGQUERY_EMULATOR_HOST at `url`; the real client libraries then
    talk to it. It serves `objects` ({"bucket/name": bytes}) and answers every query with
    `query_result` (column names and rows of strings), recording the SQL it was sent.
    """

    def __init__(self, objects: Dict[str, bytes], query_result: Tuple[List[str], List[List[str]]]):
        self.objects = objects
        self.columns, self.rows = query_result
        self.queries: List[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeGoogleApis":
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _query_response(self) -> Dict[str, object]:
        return {
            "jobReference": {"projectId": "p", "jobId": "job-1", "location": "US"},
            "status": {"state": "DONE"},
            "jobComplete": True,
            "totalRows": str(len(self.rows)),
            "schema": {"fields": [{"name": name, "type": "STRING"} for name in self.columns]},
            "rows": [{"f": [{"v": value} for value in row]} for row in self.rows],
        }

    def _handler(self) -> type:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def send(self, code: int, body: object, content_type: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = urlparse(self.path).path
                if path.startswith("/download/storage/v1/b/"):
                    bucket, _, name = path[len("/download/storage/v1/b/") :].partition("/o/")
                    data = fake.objects.get(f"{bucket}/{unquote(name)}")
                    if data is not None:
                        return self.send(200, data, "application/octet-stream")
                if path.startswith("/bigquery/v2/projects/") and "/queries/" in path:
                    return self.send(200, fake._query_response())
                self.send(404, {"error": {"code": 404, "message": f"{path} not found", "status": "NOT_FOUND"}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if urlparse(self.path).path.endswith("/jobs"):
                    fake.queries.append(body["configuration"]["query"]["query"])
                    return self.send(200, fake._query_response())
                self.send(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})

        return Handler
