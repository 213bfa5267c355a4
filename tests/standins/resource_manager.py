"""A Cloud Resource Manager stand-in: `Projects.GetProject` (v3, gRPC over TLS), reached through an HTTP proxy.

google-cloud-aiplatform asks Resource Manager for the project number while it checks the pipeline root's
bucket (`PipelineJob.submit`), with a client it builds itself: gRPC to cloudresourcemanager.googleapis.com:443,
no endpoint option. A user behind a corporate TLS-inspecting proxy reaches it the same way this stand-in is
reached: gRPC's `grpc_proxy` variable names an HTTP CONNECT proxy, and `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH` names
the CA that signed the proxy's certificate. `env` holds both; the proxy sends every CONNECT to a local gRPC
server whose certificate, for cloudresourcemanager.googleapis.com, this stand-in's own CA signed.

gRPC reads GRPC_DEFAULT_SSL_ROOTS_FILE_PATH once per process, so the client must run in a process that gets
`env` before its first TLS channel: a subprocess (the CLI), or this test process when set up first.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import select
import socket
import socketserver
import tempfile
import threading
from concurrent import futures
from typing import Dict, List, Tuple

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.cloud import resourcemanager_v3

HOST = "cloudresourcemanager.googleapis.com"
_METHOD = "/google.cloud.resourcemanager.v3.Projects/GetProject"


@dataclasses.dataclass
class Call:
    """One GetProject call: the `name` asked for and the gRPC status code name it was answered with."""

    name: str
    code: str


class ResourceManagerStandIn:
    """Answers GetProject for `projects` ({project ID: project number}); the number itself works as a name too."""

    def __init__(self, projects: Dict[str, str]) -> None:
        self.projects = dict(projects)
        self.calls: List[Call] = []
        self.connects: List[str] = []  # CONNECT targets the proxy received
        self._failures: List[Tuple[grpc.StatusCode, str]] = []
        self._lock = threading.Lock()
        self._dir = tempfile.TemporaryDirectory(prefix="rm-standin-")
        ca_pem, cert_pem, key_pem = _certificates()
        self.ca_file = os.path.join(self._dir.name, "ca.pem")
        with open(self.ca_file, "wb") as f:
            f.write(ca_pem)
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler(
            "google.cloud.resourcemanager.v3.Projects",
            {
                "GetProject": grpc.unary_unary_rpc_method_handler(
                    self._get_project,
                    request_deserializer=resourcemanager_v3.GetProjectRequest.deserialize,
                    response_serializer=resourcemanager_v3.Project.serialize,
                )
            },
        )
        self._grpc.add_generic_rpc_handlers((handler,))
        self._grpc_port = self._grpc.add_secure_port(
            "127.0.0.1:0", grpc.ssl_server_credentials([(key_pem, cert_pem)])
        )
        self._proxy = _ConnectProxy(("127.0.0.1", 0), self)
        self.proxy_url = f"http://127.0.0.1:{self._proxy.server_address[1]}"
        self._proxy_thread = threading.Thread(
            target=self._proxy.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def env(self) -> Dict[str, str]:
        """The environment a gRPC client needs to reach this stand-in in place of the real host."""
        return {"grpc_proxy": self.proxy_url, "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": self.ca_file}

    def fail(self, code: grpc.StatusCode, message: str, times: int = 1) -> None:
        """The next `times` calls answer with this gRPC status."""
        with self._lock:
            self._failures.extend([(code, message)] * times)

    def start(self) -> "ResourceManagerStandIn":
        self._grpc.start()
        self._proxy_thread.start()
        return self

    def close(self) -> None:
        self._proxy.shutdown()
        self._proxy.server_close()
        self._grpc.stop(grace=None)
        self._dir.cleanup()

    def __enter__(self) -> "ResourceManagerStandIn":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _get_project(self, request: resourcemanager_v3.GetProjectRequest, context: grpc.ServicerContext):
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure:
            self.calls.append(Call(request.name, failure[0].name))
            context.abort(failure[0], failure[1])
        wanted = request.name.partition("/")[2]
        for project_id, number in self.projects.items():
            if wanted in (project_id, number):
                self.calls.append(Call(request.name, "OK"))
                return resourcemanager_v3.Project(
                    name=f"projects/{number}", project_id=project_id, display_name=project_id,
                    state=resourcemanager_v3.Project.State.ACTIVE,
                )
        self.calls.append(Call(request.name, "PERMISSION_DENIED"))
        context.abort(grpc.StatusCode.PERMISSION_DENIED,
                      f"Permission denied on resource '{request.name}' (or it may not exist).")


class _ConnectProxy(socketserver.ThreadingTCPServer):
    """An HTTP CONNECT proxy that tunnels every connection to the stand-in's gRPC port, whatever the target."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: Tuple[str, int], standin: ResourceManagerStandIn) -> None:
        self.standin = standin
        super().__init__(address, _TunnelHandler)


class _TunnelHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        client: socket.socket = self.request
        client.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, _, rest = request_line.partition(" ")
        target = rest.partition(" ")[0]
        standin: ResourceManagerStandIn = self.server.standin  # type: ignore[attr-defined]
        standin.connects.append(target)
        if method != "CONNECT" or target.rpartition(":")[0] != HOST:
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        upstream = socket.create_connection(("127.0.0.1", standin._grpc_port), timeout=10)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        leftover = head.split(b"\r\n\r\n", 1)[1]
        if leftover:
            upstream.sendall(leftover)
        client.settimeout(None)
        upstream.settimeout(None)
        sockets = [client, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 30)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)
        except OSError:
            return
        finally:
            upstream.close()


def _certificates() -> Tuple[bytes, bytes, bytes]:
    """A throwaway CA, and a certificate and key for HOST signed by it (PEM)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kfp-lineage test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem
