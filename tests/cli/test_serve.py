"""`semzoo serve`: starts, serves, reports what it serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import grpc
import pytest

from tests.server.tiny_models import publish, wait_for


def test_serve_help_and_bad_options(cli, tmp_path):
    result = cli("serve", "--help")
    assert result.exit_code == 0 and "--model-config" in result.output and "--tls-cert" in result.output
    result = cli("serve", "--zoo", tmp_path / "missing", "--port", "0")
    assert result.exit_code == 2 and "does not exist" in result.output
    result = cli("serve", "--zoo", tmp_path, "--model-config", tmp_path / "models.config")
    assert result.exit_code == 2 and "not both" in result.output
    result = cli("serve", "--zoo", tmp_path, "--tls-cert", tmp_path / "c.pem", "--port", "0")
    assert result.exit_code == 2 and "--tls-key" in result.output
    (tmp_path / "bad.config").write_text("model_config_list { config { nme: 'x' } }")
    result = cli("serve", "--model-config", tmp_path / "bad.config", "--port", "0")
    assert result.exit_code == 2 and "not a valid TF Serving ModelServerConfig" in result.output



@pytest.mark.parametrize("args, rest_port", [((), None), (("--rest-port", "8501"), 8501), (("--rest-port", "0"), None)])
def test_serve_rest_port_reaches_the_server(cli, tmp_path, monkeypatch, args, rest_port):
    import zoo.server.server
    from zoo.errors import UserError

    seen = {}

    class Recorder:
        def __init__(self, *positional, **kwargs):
            seen.update(kwargs)
            raise UserError("recorded")

    monkeypatch.setattr(zoo.server.server, "EmbeddedServer", Recorder)
    result = cli("serve", "--zoo", tmp_path, *args)
    assert result.exit_code == 2 and "recorded" in result.output
    assert seen["rest_port"] == rest_port and seen["host"] == "127.0.0.1"

@pytest.mark.slow
def test_serve_runs_until_sigterm_and_finishes_cleanly(tmp_path):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    publish(tmp_path / "zoo", "tiny", label="stable")
    command = [sys.executable, "-m", "zoo.cli.main", "serve", "--zoo", str(tmp_path / "zoo"), "--port", "0"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    try:
        ready = wait_for(lambda: next((m for line in list(lines) if (m := re.search(r"ready on (\S+);", line))), None), 90)
        log = "".join(lines)
        assert "serving tiny: version(s) 1 (labels stable=1), 14.2 nm -> 7.1 nm" in log
        with grpc.insecure_channel(ready[1]) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="tiny"), timeout=10)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(10)
    assert "shutting down" in "".join(lines) and "stopped" in "".join(lines)
