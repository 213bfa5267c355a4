"""The base of every stand-in: a threaded HTTP server on 127.0.0.1 that records requests and injects failures.

A stand-in answers exactly the calls our code makes through the real client libraries. Each request it
receives is recorded (method, path, query, parsed JSON body, the status it was answered with), so tests
assert the requests themselves, and `fail()` makes the next matching requests answer with an error status
(403, 404, 429, ...) before the normal answer resumes; `stall()` holds answers back to exercise timeouts.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Pattern, Tuple
from urllib.parse import parse_qsl, urlsplit

# google.rpc.Code names for the HTTP statuses Google APIs answer with.
GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
DEFAULT_MESSAGES = {
    403: "Permission denied on resource (or it may not exist).",
    404: "Requested entity was not found.",
    429: "Quota exceeded: too many requests, retry later.",
}


@dataclasses.dataclass
class Request:
    """One request a stand-in received, and the status it answered with."""

    method: str
    path: str
    query: Dict[str, str]
    body: Any  # parsed JSON, or None when the body is empty or not JSON
    raw: bytes
    headers: Dict[str, str]
    status: int = 0

    @property
    def line(self) -> str:
        """`METHOD /path` for compact assertions."""
        return f"{self.method} {self.path}"


@dataclasses.dataclass
class Reply:
    """What a route answers: a status and a JSON-able body, or bytes with a content type."""

    status: int = 200
    body: Any = None
    content_type: str = "application/json"
    headers: Dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Failure:
    method: str
    pattern: Pattern[str]
    status: int
    remaining: int
    message: str


Handler = Callable[..., Reply]


class HttpError(Exception):
    """Raised by a route to answer with an error status (rendered by the stand-in's error format)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class StandInServer:
    """A recording, failure-injecting HTTP server; subclasses add routes in `__init__`.

    Use as a context manager (or call `start()` / `close()`): it serves on an ephemeral port on 127.0.0.1 from a
    daemon thread of the test process, and `close()` shuts it down.
    """

    name = "stand-in"

    def __init__(self) -> None:
        self.requests: List[Request] = []
        self._routes: List[Tuple[str, Pattern[str], Handler]] = []
        self._failures: List[_Failure] = []
        self._stalls: List[Tuple[str, Pattern[str], threading.Event]] = []
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )
        self.host = f"127.0.0.1:{self._server.server_port}"
        self.url = f"http://{self.host}"

    # --- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> "StandInServer":
        self._thread.start()
        return self

    def close(self) -> None:
        for _, _, release in self._stalls:
            release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- configuration -------------------------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Answers `method` requests whose path fully matches `pattern` with handler(request, **groups)."""
        self._routes.append((method, re.compile(pattern), handler))

    def fail(self, method: str, path_pattern: str, status: int, times: int = 1, message: str = "") -> None:
        """Answers the next `times` requests matching method and path (a regex searched in the path) with `status`."""
        with self._lock:
            message = message or DEFAULT_MESSAGES.get(status, "error")
            self._failures.append(_Failure(method, re.compile(path_pattern), status, times, message))

    def stall(self, method: str, path_pattern: str) -> threading.Event:
        """Requests matching method and path get no answer until the returned event is set (at most 30 s)."""
        release = threading.Event()
        with self._lock:
            self._stalls.append((method, re.compile(path_pattern), release))
        return release

    def requests_to(self, method: Optional[str] = None, path_pattern: str = "") -> List[Request]:
        """The recorded requests with this method (any when None) whose path matches the regex."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and re.search(path_pattern, r.path)
            ]

    # --- what subclasses override --------------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> Any:
        """The JSON body of an error answer; the Google API format by default."""
        return {"error": {"code": status, "message": message, "status": GOOGLE_STATUS.get(status, "UNKNOWN")}}

    # --- dispatch ------------------------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            stalls = [e for m, p, e in self._stalls if m == request.method and p.search(request.path)]
        for release in stalls:
            release.wait(30)
        with self._lock:
            for failure in self._failures:
                if failure.remaining > 0 and failure.method == request.method and failure.pattern.search(request.path):
                    failure.remaining -= 1
                    return Reply(failure.status, self.error_body(failure.status, failure.message))
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if method == request.method and match:
                try:
                    with self._lock:
                        return handler(request, **match.groupdict())
                except HttpError as e:
                    return Reply(e.status, self.error_body(e.status, e.message))
        message = f"{self.name} has no route for {request.method} {request.path}"
        return Reply(404, self.error_body(404, message))

    def _handler_class(self) -> type:
        standin = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                raw = self._read_body()
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                    body=body,
                    raw=raw,
                    headers={k.lower(): v for k, v in self.headers.items()},
                )
                reply = standin._dispatch(request)
                request.status = reply.status
                if isinstance(reply.body, bytes):
                    data = reply.body
                else:
                    data = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        return _Handler
