"""Fixtures: a tiny zoo (model ``tiny``: v1 gain 1 labelled stable, v2 gain 2) and a server on it."""

from __future__ import annotations

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
