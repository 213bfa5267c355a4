"""ml-metadata's gRPC service as a store: `grpc://HOST:PORT` (a KFP cluster's metadata-grpc-service) and
`grpcs://HOST:PORT?ca=...` over TLS, through ml-metadata's own gRPC client, with a deadline on every call.

URL options (the query string) map onto ml-metadata's MetadataStoreClientConfig:

- `timeout=SECONDS`: client_timeout_sec, the deadline of every call (default DEFAULT_TIMEOUT).
- grpcs:// only: `ca=FILE` (ssl_config.custom_ca: the PEM CA that signed the server's certificate; default the
  system's roots), `cert=FILE` and `key=FILE` (ssl_config.server_cert and client_key: a client certificate and its
  key for mutual TLS; ml-metadata names the certificate field server_cert, and hands it to gRPC as the client's
  certificate chain).

A call that does not get through (unreachable, timed out, refused by TLS or by the server) raises StoreError with
one line naming the URL and the fix, instead of ml-metadata's own error classes.
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from typing import Any, Dict

from ml_metadata import errors as mlmd_errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from kfp_lineage import errors
from kfp_lineage.mlmd import store_url

SCHEMES = ("grpc", "grpcs")
DEFAULT_PORT = 8080  # metadata-grpc-service's port in a Kubeflow Pipelines deployment
DEFAULT_TIMEOUT = 10.0
# gRPC refuses answers over 4 MiB by default; one batched read of a large walk (the events of thousands of
# executions) is bigger than that.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
PORT_FORWARD_HINT = "kubectl port-forward svc/metadata-grpc-service 8080:8080 -n kubeflow"
_TLS_OPTIONS = ("ca", "cert", "key")
_URL_FORMS = "grpc://HOST:PORT or grpcs://HOST:PORT?ca=CA.pem"
# Codes that mean the call did not get through, as opposed to an answer (NotFound, AlreadyExists, ...) that the
# callers of ml-metadata handle themselves.
_TRANSPORT_CODES = {
    mlmd_errors.UNAVAILABLE: "cannot reach",
    mlmd_errors.DEADLINE_EXCEEDED: "got no answer in time from",
    mlmd_errors.UNAUTHENTICATED: "was refused by",
    mlmd_errors.PERMISSION_DENIED: "was refused by",
    mlmd_errors.RESOURCE_EXHAUSTED: "got too large an answer from",
    mlmd_errors.CANCELLED: "was cancelled talking to",
}


@dataclasses.dataclass(frozen=True)
class GrpcStoreURL(store_url.StoreURL):
    """A parsed grpc:// or grpcs:// URL: host, port, TLS files and the per-call timeout."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    timeout: float = DEFAULT_TIMEOUT

    @property
    def redacted(self) -> str:
        """The URL as given, normalized (it holds no secret: TLS options name files, not their contents)."""
        options: Dict[str, Any] = {name: getattr(self, name) for name in _TLS_OPTIONS if getattr(self, name)}
        if self.timeout != DEFAULT_TIMEOUT:
            options["timeout"] = f"{self.timeout:g}"
        query = f"?{urllib.parse.urlencode(options, safe='/')}" if options else ""
        return f"{self.scheme}://{_bracketed(self.host)}:{self.port}{query}"

    def client_config(self) -> metadata_store_pb2.MetadataStoreClientConfig:
        """ml-metadata's MetadataStoreClientConfig for this URL, with the TLS files read in.

        Raises:
            StoreError: a TLS file cannot be read.
        """
        config = metadata_store_pb2.MetadataStoreClientConfig(
            host=_bracketed(self.host), port=self.port, client_timeout_sec=self.timeout)
        config.channel_arguments.max_receive_message_length = MAX_MESSAGE_BYTES
        if self.scheme == "grpcs":
            config.ssl_config.SetInParent()  # TLS with the system's roots unless ca= names a CA
            if self.ca:
                config.ssl_config.custom_ca = _read_pem(self.ca, "ca")
            if self.cert:
                config.ssl_config.server_cert = _read_pem(self.cert, "cert")
                config.ssl_config.client_key = _read_pem(self.key, "key")
        return config


def parse_grpc_url(url: str) -> GrpcStoreURL:
    """Parses `grpc://HOST[:PORT][?timeout=S]` or `grpcs://HOST[:PORT][?ca=F&cert=F&key=F&timeout=S]`.

    Args:
        url: the URL as the user typed it; the port defaults to 8080 (metadata-grpc-service's).

    Returns:
        The parsed URL; TLS file paths are made absolute.

    Raises:
        StoreError: a part is missing or not allowed (user, password, path, an unknown option, TLS files on
            grpc://, a certificate without its key); the message names it and shows the form to use.
    """
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in url)
    try:
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port or DEFAULT_PORT
    except ValueError as e:
        raise errors.StoreError(f"store URL {shown} cannot be parsed ({e}): use {_URL_FORMS}") from None
    scheme = parsed.scheme.lower()
    if parsed.username is not None or parsed.password is not None:
        raise errors.StoreError(
            f"store URL {scheme}://...@{parsed.hostname or ''} has a user or password, which ml-metadata's gRPC client "
            "cannot send: drop it, and use grpcs:// with cert= and key= for a client certificate")
    if not parsed.hostname:
        raise errors.StoreError(f"store URL {shown} has no host: use {_URL_FORMS}")
    if parsed.path not in ("", "/") or parsed.fragment:
        raise errors.StoreError(
            f"store URL {shown} has a path, but a gRPC metadata service has no databases to choose: use {_URL_FORMS}")
    options = _query_options(parsed.query, shown)
    unknown = sorted(set(options) - set(_TLS_OPTIONS) - {"timeout"})
    if unknown:
        raise errors.StoreError(
            f"store URL {shown} has an unknown option {unknown[0]!r}: the options are ca, cert, key (grpcs:// only) "
            "and timeout")
    tls = {name: options.get(name, "") for name in _TLS_OPTIONS}
    if scheme == "grpc" and any(tls.values()):
        raise errors.StoreError(
            f"store URL {shown} names TLS files but says grpc:// (plaintext): use grpcs://HOST:PORT?"
            f"{'&'.join(f'{k}=...' for k, v in tls.items() if v)}")
    if bool(tls["cert"]) != bool(tls["key"]):
        given, missing = ("cert", "key") if tls["cert"] else ("key", "cert")
        raise errors.StoreError(
            f"store URL {shown} has {given}= without {missing}=: a client certificate needs both, "
            "e.g. grpcs://HOST:PORT?ca=ca.pem&cert=client.pem&key=client.key")
    timeout = _timeout(options.get("timeout"), shown)
    return GrpcStoreURL(
        scheme=scheme, host=parsed.hostname, port=port, timeout=timeout,
        **{name: os.path.abspath(path) if path else "" for name, path in tls.items()},
    )


def open_grpc_store(url: GrpcStoreURL) -> metadata_store.MetadataStore:
    """Connects to the metadata service at `url` and checks it answers (one call, within the timeout).

    Returns:
        An ml-metadata MetadataStore on the gRPC client; its calls that do not get through raise StoreError.

    Raises:
        StoreError: a TLS file cannot be read, or the service cannot be reached or does not answer in time.
    """
    store = GrpcMetadataStore(url)
    store.get_context_types()  # channels connect lazily: make "unreachable" an error here, not in the first read
    return store


class GrpcMetadataStore(metadata_store.MetadataStore):
    """ml-metadata's MetadataStore on its gRPC client, whose failed calls raise StoreError naming the URL."""

    def __init__(self, url: GrpcStoreURL):
        super().__init__(url.client_config())
        self.url = url

    def _call(self, method_name: str, request: Any, response: Any, extra_options: Any = None) -> Any:
        # The one method every public call goes through (and the one that retries ABORTED).
        try:
            return super()._call(method_name, request, response, extra_options)
        except mlmd_errors.StatusError as e:
            what = _TRANSPORT_CODES.get(e.error_code)
            if what is None:
                raise
            raise errors.StoreError(describe_failure(self.url, what, method_name, str(e))) from None


def describe_failure(url: GrpcStoreURL, what: str, method: str, detail: str) -> str:
    """One line: which call to which URL failed, gRPC's reason, and what to try."""
    reason = " ".join(detail.split())[:300]
    if what.startswith("got no answer"):
        hint = (f"check that the service runs and that nothing holds the connection (a stale port-forward), "
                f"or allow more than {url.timeout:g} s with ?timeout=SECONDS")
    elif what.startswith("got too large"):
        hint = "read a smaller part of the store (a lower --depth or --limit)"
    elif url.scheme == "grpcs":
        hint = "check the host, the port and the TLS files (ca=, cert=, key=); " \
               "a plaintext service needs grpc:// instead"
    else:
        hint = f"check the host and port; on a cluster, run `{PORT_FORWARD_HINT}` first"
    return f"{what} the metadata store {url.redacted} ({method}: {reason}): {hint}"


def _query_options(query: str, shown: str) -> Dict[str, str]:
    options: Dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if name in options:
            raise errors.StoreError(f"store URL {shown} gives {name}= twice: give it once")
        if not value:
            raise errors.StoreError(f"store URL {shown} has an empty {name}=: give a value or drop it")
        options[name] = value
    return options


def _timeout(text: Any, shown: str) -> float:
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise errors.StoreError(
            f"store URL {shown} has timeout={text}: give the seconds each call may take, from 0 to 3600, "
            "e.g. ?timeout=30")
    return value


def _read_pem(path: str, option: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not a PEM text file"
        raise errors.StoreError(f"cannot read the {option}= file {path} of the gRPC store URL: {reason}") from None


def _bracketed(host: str) -> str:
    """An IPv6 address in brackets, as gRPC targets and URLs write it."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
