"""An ml-metadata gRPC service (a KFP cluster's `metadata-grpc-service`) on 127.0.0.1, answered by a real store.

Every RPC of ml-metadata's `MetadataStoreService` is served by one generic handler per method of the service
descriptor: the request bytes go, unparsed, to the same serialized C++ call ml-metadata's embedded client makes
(`metadata_store.py` calls the pywrap extension with serialized requests), and the response bytes come back
unparsed; an error status from the C++ store becomes the same gRPC status code. So the stand-in behaves like the
real server over the real store, and records which RPCs a client made (`calls`), for tests that count round trips.

`silent_server()` is the other half: a TCP port that accepts connections and never answers, the way a hung
service or a dropped port-forward looks to a client.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import os
import socket
import threading
from concurrent import futures
from typing import Callable, Counter, Dict, Iterator, List, Optional

import grpc
from ml_metadata.metadata_store.pywrap.metadata_store_extension import metadata_store as _extension
from ml_metadata.proto import metadata_store_pb2, metadata_store_service_pb2

SERVICE = metadata_store_service_pb2.DESCRIPTOR.services_by_name["MetadataStoreService"]
# For no_grpc_proxy: clients reach the stand-ins directly even when grpc_proxy is set (tests/standins/fixtures.py).
LOOPBACK = "127.0.0.1,localhost"
_STATUS_BY_CODE = {code.value[0]: code for code in grpc.StatusCode}
# The limits a cluster's metadata-grpc-service runs with would not matter here; big enough for any test store.
_MESSAGE_LIMIT = 256 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS stand-in: the server's key and certificate, and the client CA for mutual TLS."""

    server_key: str
    server_cert: str
    client_ca: str = ""  # set: clients must present a certificate signed by this CA


class MlmdGrpcStandIn:
    """ml-metadata's MetadataStoreService over a SQLite store, on an ephemeral port of 127.0.0.1.

    Use as a context manager (or `start()` / `close()`). `url` is what `--store` takes.
    """

    def __init__(self, sqlite_path: str, tls: Optional[TlsFiles] = None, port: int = 0) -> None:
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = sqlite_path
        config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.sqlite_path = sqlite_path
        self._store = _extension.CreateMetadataStore(
            config.SerializeToString(), metadata_store_pb2.MigrationOptions().SerializeToString())
        self._lock = threading.Lock()  # one C++ store handle: one call at a time, as one DB connection would
        self.calls: List[str] = []  # RPC method names, in the order they were answered
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="mlmd-grpc-standin"),
            options=[("grpc.max_receive_message_length", _MESSAGE_LIMIT),
                     ("grpc.max_send_message_length", _MESSAGE_LIMIT)],
        )
        handlers = {method.name: grpc.unary_unary_rpc_method_handler(functools.partial(self._answer, method.name))
                    for method in SERVICE.methods}
        self._server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)])
        if tls is None:
            self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
            scheme = "grpc"
        else:
            credentials = grpc.ssl_server_credentials(
                [(_read_bytes(tls.server_key), _read_bytes(tls.server_cert))],
                root_certificates=_read_bytes(tls.client_ca) if tls.client_ca else None,
                require_client_auth=bool(tls.client_ca),
            )
            self.port = self._server.add_secure_port(f"127.0.0.1:{port}", credentials)
            scheme = "grpcs"
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"{scheme}://{self.host}"

    def start(self) -> "MlmdGrpcStandIn":
        self._server.start()
        return self

    def close(self) -> None:
        self._server.stop(grace=None).wait(5)

    def __enter__(self) -> "MlmdGrpcStandIn":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def counts(self) -> Counter[str]:
        """RPC method name -> how many times it was called."""
        with self._lock:
            return collections.Counter(self.calls)

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    @contextlib.contextmanager
    def counting(self) -> Iterator[Callable[[], Counter[str]]]:
        """`with standin.counting() as counted:` ... `counted()` is the RPCs made inside the block."""
        with self._lock:
            start = len(self.calls)
        yield lambda: collections.Counter(self.calls[start:])

    def _answer(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        call = getattr(_extension, method, None)
        with self._lock:
            self.calls.append(method)
            if call is None:  # a method of a newer service than this ml-metadata's C++ store implements
                context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented by this store")
            response, message, code = call(self._store, request)
        if code != 0:
            context.abort(_STATUS_BY_CODE.get(code, grpc.StatusCode.UNKNOWN), message.decode("utf-8", "replace"))
        return response


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """Yields `127.0.0.1:PORT` of a listener that accepts connections and never sends a byte."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: List[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, name="silent-server", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for connection in accepted:
            connection.close()
        listener.close()


def unused_port() -> int:
    """A port of 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_tls_files(directory: str) -> Dict[str, str]:
    """Writes a CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA, as PEM.

    Returns:
        {"ca", "server_cert", "server_key", "client_cert", "client_key"} -> file path.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(name, key, issuer_name, issuer_key, *, ca=False, server=False):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(issuer_name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        if not ca:
            usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kfp-lineage test CA")])
    ca = certificate("kfp-lineage test CA", ca_key, ca_name, ca_key, ca=True)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    pems = {
        "ca": ca.public_bytes(serialization.Encoding.PEM),
        "server_cert": certificate("127.0.0.1", server_key, ca_name, ca_key, server=True)
        .public_bytes(serialization.Encoding.PEM),
        "client_cert": certificate("client", client_key, ca_name, ca_key).public_bytes(serialization.Encoding.PEM),
    }
    for name, key in (("server_key", server_key), ("client_key", client_key)):
        pems[name] = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
    paths = {}
    for name, data in pems.items():
        paths[name] = os.path.join(directory, f"{name}.pem")
        with open(paths[name], "wb") as f:
            f.write(data)
    return paths


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
