"""grpc:// and grpcs:// store URLs: parsing, TLS, deadlines, and one-line errors, against ml-metadata's gRPC
service served from a real SQLite store on 127.0.0.1 (tests/standins/mlmd_grpc.py)."""

import time

import pytest
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage import errors
from kfp_lineage.mlmd import grpc_store
from kfp_lineage.mlmd import store
from tests.standins.mlmd_grpc import MlmdGrpcStandIn, TlsFiles, silent_server, unused_port, write_tls_files

pytest_plugins = ["tests.standins.fixtures"]
pytestmark = pytest.mark.usefixtures("grpc_to_loopback")


# --- parsing -------------------------------------------------------------------------------------------------------


def test_a_grpc_url_names_host_port_and_the_default_timeout():
    url = store.parse_store_url("grpc://metadata.kubeflow:9090")
    assert isinstance(url, grpc_store.GrpcStoreURL)
    assert (url.scheme, url.host, url.port, url.timeout) == ("grpc", "metadata.kubeflow", 9090, 10.0)
    assert url.redacted == str(url) == "grpc://metadata.kubeflow:9090"
    config = url.client_config()
    assert (config.host, config.port, config.client_timeout_sec) == ("metadata.kubeflow", 9090, 10.0)
    assert not config.HasField("ssl_config")
    assert config.channel_arguments.max_receive_message_length == grpc_store.MAX_MESSAGE_BYTES


def test_the_port_defaults_to_metadata_grpc_services_and_the_timeout_can_be_raised():
    url = store.parse_store_url("grpc://localhost?timeout=2.5")
    assert (url.port, url.timeout, url.redacted) == (8080, 2.5, "grpc://localhost:8080?timeout=2.5")
    assert url.client_config().client_timeout_sec == 2.5


def test_grpcs_reads_the_tls_files_into_ml_metadatas_ssl_config(tmp_path):
    files = write_tls_files(str(tmp_path))
    text = f"grpcs://127.0.0.1:8443?ca={files['ca']}&cert={files['client_cert']}&key={files['client_key']}"
    url = store.parse_store_url(text)
    assert (url.ca, url.cert, url.key) == (files["ca"], files["client_cert"], files["client_key"])
    assert store.parse_store_url(url.redacted) == url  # the printed URL parses back to the same store
    ssl = url.client_config().ssl_config
    with open(files["ca"]) as ca, open(files["client_cert"]) as cert, open(files["client_key"]) as key:
        assert (ssl.custom_ca, ssl.server_cert, ssl.client_key) == (ca.read(), cert.read(), key.read())


def test_grpcs_without_files_uses_the_system_roots():
    config = store.parse_store_url("grpcs://metadata.example.com:443").client_config()
    assert config.HasField("ssl_config") and not config.ssl_config.custom_ca


def test_an_ipv6_host_keeps_its_brackets_for_grpc():
    url = store.parse_store_url("grpc://[::1]:8080")
    assert url.redacted == "grpc://[::1]:8080" and url.client_config().host == "[::1]"


@pytest.mark.parametrize("text, message", [
    ("grpc://", "has no host"),
    ("grpc://host:99999", "cannot be parsed"),
    ("grpc://user:hunter2@host:8080", "has a user or password"),
    ("grpc://host:8080/mlmd", "has a path"),
    ("grpc://host:8080?tls=1", "unknown option 'tls'"),
    ("grpc://host:8080?ca=ca.pem", "says grpc:// \\(plaintext\\): use grpcs://HOST:PORT\\?ca=..."),
    ("grpcs://host:8080?cert=c.pem", "has cert= without key="),
    ("grpcs://host:8080?key=k.pem", "has key= without cert="),
    ("grpc://host:8080?timeout=0", "timeout=0: give the seconds"),
    ("grpc://host:8080?timeout=soon", "timeout=soon"),
    ("grpc://host:8080?timeout=1&timeout=2", "gives timeout= twice"),
    ("grpc://host:8080?timeout=", "has an empty timeout="),
])
def test_bad_grpc_urls_are_one_line_store_errors(text, message):
    with pytest.raises(errors.StoreError, match=message) as raised:
        store.parse_store_url(text)
    assert "\n" not in str(raised.value) and "hunter2" not in str(raised.value)
    assert raised.value.exit_code == 2


def test_a_missing_tls_file_is_named(tmp_path):
    url = store.parse_store_url(f"grpcs://127.0.0.1:1?ca={tmp_path}/nope.pem")
    with pytest.raises(errors.StoreError, match=f"cannot read the ca= file {tmp_path}/nope.pem .*No such file"):
        store.open_store(url)


# --- talking to the service ----------------------------------------------------------------------------------------


def test_the_store_reads_and_writes_through_ml_metadatas_grpc_client(mlmd_grpc):
    metadata_store = store.open_store(store.parse_store_url(mlmd_grpc.url))
    type_id = metadata_store.put_artifact_type(mlmd_pb.ArtifactType(name="system.Model"))
    [artifact_id] = metadata_store.put_artifacts([mlmd_pb.Artifact(type_id=type_id, uri="gs://b/model")])
    assert mlmd_grpc.counts() == {"GetContextTypes": 1, "PutArtifactType": 1, "PutArtifacts": 1}
    # What the service wrote is in its SQLite file, as the embedded client reads it.
    embedded = store.open_store(store.parse_store_url(mlmd_grpc.sqlite_path))
    assert [a.uri for a in embedded.get_artifacts_by_id([artifact_id])] == ["gs://b/model"]
    # An answer that is an error (not a transport failure) stays ml-metadata's own error class.
    from ml_metadata import errors as mlmd_errors
    with pytest.raises(mlmd_errors.NotFoundError):
        metadata_store.put_artifacts([mlmd_pb.Artifact(type_id=9999, uri="x")])


def test_nothing_listening_is_a_one_line_error_at_once():
    url = store.parse_store_url(f"grpc://127.0.0.1:{unused_port()}")
    started = time.monotonic()
    with pytest.raises(errors.StoreError) as raised:
        store.open_store(url)
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert message.startswith(f"cannot reach the metadata store {url.redacted} (GetContextTypes: ")
    assert message.endswith("on a cluster, run `kubectl port-forward svc/metadata-grpc-service 8080:8080 "
                            "-n kubeflow` first")
    assert "\n" not in message


def test_a_service_that_never_answers_times_out_instead_of_hanging():
    with silent_server() as address:
        url = store.parse_store_url(f"grpc://{address}?timeout=0.5")
        started = time.monotonic()
        with pytest.raises(errors.StoreError) as raised:
            store.open_store(url)
        assert time.monotonic() - started < 5
    assert str(raised.value).startswith(f"got no answer in time from the metadata store grpc://{address}?timeout=0.5 "
                                        "(GetContextTypes: Deadline Exceeded): ")
    assert "allow more than 0.5 s with ?timeout=SECONDS" in str(raised.value)


def test_a_service_that_goes_away_mid_session_is_a_store_error(tmp_path):
    with MlmdGrpcStandIn(str(tmp_path / "mlmd.sqlite")) as service:
        metadata_store = store.open_store(store.parse_store_url(service.url + "?timeout=2"))
    with pytest.raises(errors.StoreError, match=r"^cannot reach the metadata store .* \(GetArtifactsByID: "):
        metadata_store.get_artifacts_by_id([1])


def test_tls_with_the_servers_ca(tmp_path):
    files = write_tls_files(str(tmp_path))
    tls = TlsFiles(server_key=files["server_key"], server_cert=files["server_cert"])
    with MlmdGrpcStandIn(str(tmp_path / "mlmd.sqlite"), tls=tls) as service:
        assert service.url.startswith("grpcs://")
        metadata_store = store.open_store(store.parse_store_url(f"{service.url}?ca={files['ca']}"))
        assert metadata_store.get_artifacts() == []
        # Another CA does not vouch for the server; plaintext does not speak TLS at all. (No test here connects
        # with the system roots: gRPC reads them once per process, and the Resource Manager stand-in needs its own.)
        (tmp_path / "other").mkdir()
        other = write_tls_files(str(tmp_path / "other"))["ca"]
        for refused in (f"{service.url}?ca={other}&timeout=3", service.url.replace("grpcs://", "grpc://")):
            with pytest.raises(errors.StoreError, match=r"^cannot reach the metadata store") as raised:
                store.open_store(store.parse_store_url(refused))
            assert "\n" not in str(raised.value)


def test_mutual_tls_needs_the_client_certificate(tmp_path):
    files = write_tls_files(str(tmp_path))
    tls = TlsFiles(server_key=files["server_key"], server_cert=files["server_cert"], client_ca=files["ca"])
    with MlmdGrpcStandIn(str(tmp_path / "mlmd.sqlite"), tls=tls) as service:
        with_client = f"{service.url}?ca={files['ca']}&cert={files['client_cert']}&key={files['client_key']}"
        assert store.open_store(store.parse_store_url(with_client)).get_contexts() == []
        with pytest.raises(errors.StoreError, match="check the host, the port and the TLS files"):
            store.open_store(store.parse_store_url(f"{service.url}?ca={files['ca']}&timeout=3"))
