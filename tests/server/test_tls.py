"""TLS: the server speaks TLS with --tls-cert/--tls-key; the client trusts a given CA."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.client.client import EnhanceClient, ServerError


def test_tls_round_trip_and_plaintext_is_refused(tiny_zoo, certificate):
    from zoo.server.server import EmbeddedServer

    cert, key = certificate
    image = np.arange(64, dtype=np.float32).reshape(8, 8)
    with EmbeddedServer(tiny_zoo, port=0, poll_seconds=0, tls_cert=cert, tls_key=key) as srv:
        target = f"localhost:{srv.port}"
        with EnhanceClient(target, "tiny", version=1, tls_root_cert=cert) as client:
            out = client.enhance(image, 14.2).image
        np.testing.assert_allclose(out, np.kron(image, np.ones((2, 2))), atol=1e-3)
        with pytest.raises(ServerError, match="UNAVAILABLE"):
            EnhanceClient(target, "tiny", retries=0, timeout=10).model_info()
