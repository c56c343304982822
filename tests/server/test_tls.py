"""TLS: the server speaks TLS with --tls-cert/--tls-key; the client trusts a given CA."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from zoo.client.client import EnhanceClient, ServerError


@pytest.fixture(scope="module")
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


def test_tls_round_trip_and_plaintext_is_refused(tiny_zoo, certificate):
    from zoo.server.server import EmbeddedServer

    cert, key = certificate
    image = np.arange(64, dtype=np.float32).reshape(8, 8)
    with EmbeddedServer(tiny_zoo, port=0, poll_seconds=0, tls_cert=cert, tls_key=key) as srv:
        target = f"localhost:{srv.port}"
        with EnhanceClient(target, "tiny", version=1, tls_root_cert=cert) as client:
            out, _ = client.enhance(image, 14.2)
        np.testing.assert_allclose(out, np.kron(image, np.ones((2, 2))), atol=1e-3)
        with pytest.raises(ServerError, match="UNAVAILABLE"):
            EnhanceClient(target, "tiny", retries=0, timeout=10).model_info()
