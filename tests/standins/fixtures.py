"""pytest fixtures that start the stand-ins and point the client libraries at them.

A test module loads them with `pytest_plugins = ["tests.standins.fixtures"]`.
"""

from __future__ import annotations

import os
from typing import Dict, Iterator

import pytest

from tests.standins.gcs import GcsStandIn
from tests.standins.kfp_api import KfpApiStandIn
from tests.standins.mlmd_grpc import LOOPBACK, MlmdGrpcStandIn
from tests.standins.project import LOCATION, PROJECT, PROJECT_NUMBER
from tests.standins.resource_manager import ResourceManagerStandIn
from tests.standins.vertex import VertexStandIn
from tests.standins.vertex_metadata import VertexMetadataStandIn



@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[GcsStandIn]:
    """Cloud Storage, with STORAGE_EMULATOR_HOST pointing at it for this test."""
    with GcsStandIn(project_number=PROJECT_NUMBER) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        yield server


@pytest.fixture
def vertex() -> Iterator[VertexStandIn]:
    """Vertex AI for PROJECT (number PROJECT_NUMBER) in LOCATION; pass `vertex.url` as the API endpoint."""
    with VertexStandIn(project=PROJECT, location=LOCATION, project_number=PROJECT_NUMBER) as server:
        yield server


@pytest.fixture
def kfp_api() -> Iterator[KfpApiStandIn]:
    """A Kubeflow Pipelines API server; pass `kfp_api.url` as the host."""
    with KfpApiStandIn() as server:
        yield server


@pytest.fixture(scope="session")
def resource_manager_session() -> Iterator[ResourceManagerStandIn]:
    """Resource Manager for the whole session, its proxy and CA in this process's environment.

    Session-wide because gRPC reads its CA file once per process: the first test that needs it sets it up, and
    a quick call proves it works, so a misconfigured process fails here in seconds instead of retrying for a
    minute inside aiplatform.
    """
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import resourcemanager_v3

    with ResourceManagerStandIn({PROJECT: PROJECT_NUMBER}) as server:
        saved: Dict[str, object] = {name: os.environ.get(name) for name in server.env}
        os.environ.update(server.env)
        try:
            client = resourcemanager_v3.ProjectsClient(credentials=AnonymousCredentials())
            try:
                client.get_project(name=f"projects/{PROJECT}", retry=None, timeout=5)
            except Exception as e:  # noqa: BLE001
                pytest.fail(f"the Resource Manager stand-in is unreachable from this process ({e}); gRPC fixed its "
                            "CA roots before the stand-in was set up: run these tests in a fresh process")
            server.calls.clear()
            yield server
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value  # type: ignore[assignment]


@pytest.fixture
def resource_manager(resource_manager_session: ResourceManagerStandIn) -> Iterator[ResourceManagerStandIn]:
    """The session's Resource Manager stand-in, its recorded calls cleared for this test."""
    resource_manager_session.calls.clear()
    resource_manager_session.connects.clear()
    yield resource_manager_session
    resource_manager_session.calls.clear()


@pytest.fixture
def grpc_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """gRPC channels to 127.0.0.1 bypass the proxy that the Resource Manager stand-in names in grpc_proxy for the
    rest of the session."""
    monkeypatch.setenv("no_grpc_proxy", LOOPBACK)


@pytest.fixture
def mlmd_grpc(tmp_path, grpc_to_loopback) -> Iterator[MlmdGrpcStandIn]:
    """ml-metadata's gRPC service over a fresh SQLite store (`mlmd_grpc.sqlite_path`); `--store mlmd_grpc.url`."""
    with MlmdGrpcStandIn(str(tmp_path / "mlmd-grpc.sqlite")) as server:
        yield server


@pytest.fixture
def vertex_metadata() -> Iterator[VertexMetadataStandIn]:
    """Vertex AI Pipelines and Vertex ML Metadata for PROJECT in LOCATION; pass `vertex_metadata.url` as the API
    endpoint. Add runs with `add_run` / `tests.standins.vertex_metadata.add_training_run`."""
    with VertexMetadataStandIn(project=PROJECT, location=LOCATION, project_number=PROJECT_NUMBER) as server:
        yield server
