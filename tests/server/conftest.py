"""Fixtures: a tiny zoo (model ``tiny``: v1 gain 1 labelled stable, v2 gain 2), a server on it and a
self-signed TLS certificate."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.server.tiny_models import publish


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    publish(root, "tiny", gain=1.0, label="stable")
    publish(root, "tiny", gain=2.0)
    return root


@pytest.fixture(scope="module")
def server(tiny_zoo):
    from zoo.server.server import EmbeddedServer

    with EmbeddedServer(tiny_zoo, port=0, poll_seconds=0) as srv:
        yield srv


@pytest.fixture
def stubs(server):
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(server.target)
    yield (
        prediction_service_pb2_grpc.PredictionServiceStub(channel),
        model_service_pb2_grpc.ModelServiceStub(channel),
    )
    channel.close()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True, capture_output=True,
    )
    return folder / "cert.pem", folder / "key.pem"
