"""Fixtures: a zoo with a plain model, a conv model and two pixel sizes, and a server on it."""

from __future__ import annotations

import pytest

from tests.server.tiny_models import publish


@pytest.fixture(scope="session")
def client_zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("client-zoo")
    publish(root, "tiny", gain=1.0, label="stable")  # v1
    publish(root, "tiny", gain=2.0)  # v2
    publish(root, "conv", conv=True, tile=32, overlap=2)  # receptive-field radius 2 LR px
    publish(root, "gel", pixel_size_nm=56.8)
    return root


@pytest.fixture(scope="session")
def served(client_zoo):
    from zoo.server.server import EmbeddedServer

    with EmbeddedServer(client_zoo, port=0, poll_seconds=0) as srv:
        yield srv
