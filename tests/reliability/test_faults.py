"""Faults: a server SIGKILLed mid-batch, broken versions in the zoo, a publish SIGKILLed.

The server and the publisher run as real subprocesses (`python -m zoo.cli.main serve`, a
script calling ``Zoo.publish_version``) on loopback, killed with SIGKILL: no handler, no
cleanup, as after an OOM kill or a power cut. Waits poll with deadlines.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.server.tiny_models import free_port, nearest2x, wait_for

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")


class Serve:
    """`semzoo serve --zoo ROOT --port PORT` in a subprocess, its log in a file."""

    def __init__(self, root: Path, port: int, log: Path):
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "zoo.cli.main", "serve", "--zoo", str(root), "--port", str(port),
                 "--poll-seconds", "0", "--grace-seconds", "0"],
                stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=REPO,
            )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def _ready(target: str, name: str = "tiny") -> bool:
    from zoo.client.client import EnhanceClient, ServerError

    with EnhanceClient(target, name, retries=0, timeout=2) as probe:
        try:
            return bool(probe.model_info())
        except ServerError:
            return False


def _expected(image: np.ndarray, gain: float) -> np.ndarray:
    image = image.astype(np.float64)
    return np.clip(np.rint(gain * (nearest2x(image) - image.mean()) + image.mean()), 0, 65535)


@pytest.mark.slow
def test_server_killed_mid_batch_and_restarted_client_retries_to_a_correct_result(zoo_copy, tmp_path):
    """Also: the latest version, truncated on disk, is logged and not served; version 1 serves."""
    from zoo.client.client import EnhanceClient

    data = next((zoo_copy / "tiny" / "2" / "variables").glob("variables.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # v2's weights cut short

    port, log = free_port(), tmp_path / "serve.log"
    target = f"127.0.0.1:{port}"
    servers = [Serve(zoo_copy, port, log)]
    try:
        wait_for(lambda: servers[0].proc.poll() is not None or _ready(target), timeout=120)
        assert servers[0].proc.poll() is None, servers[0].text()
        text = servers[0].text()
        assert "version 2 of tiny failed verification" in text and "variables.data" in text
        assert "serving tiny version 1" in text and "serving tiny version 2" not in text

        image = np.random.default_rng(3).integers(0, 4000, (96, 96)).astype(np.uint16)
        client = EnhanceClient(target, "tiny", batch_size=1, concurrency=1, retries=10, backoff_s=0.1,
                               memory_budget_mb=1)  # the card's tiles: several requests per image
        killed_at = []

        def kill_and_restart(done: int, total: int) -> None:
            if done == 3 and not killed_at:  # requests are in flight now (2 per thread in the pipe)
                servers[0].kill()
                killed_at.append(done)
                servers.append(Serve(zoo_copy, port, log))  # comes up while the client backs off

        result = client.enhance(image, 14.2, progress=kill_and_restart)
        out = result.image
        client.close()
        assert killed_at and servers[0].proc.returncode == -signal.SIGKILL
        assert result.version == 1 and result.tiles > 3
        np.testing.assert_array_equal(out, _expected(image, 1.0))
    finally:
        for server in servers:
            server.kill()


def test_zoo_list_names_truncated_and_half_copied_versions(cli, zoo_copy):
    import json

    data = next((zoo_copy / "tiny" / "2" / "variables").glob("variables.data-*"))
    data.write_bytes(data.read_bytes()[:-1])
    shutil.copytree(zoo_copy / "tiny" / "1", zoo_copy / "tiny" / "3", ignore=shutil.ignore_patterns("card.json"))
    result = cli("zoo", "list", "--zoo", zoo_copy, "--json")
    assert result.exit_code == 2 and "problems" in result.output
    (row,) = json.loads(result.output[: result.output.rindex("]") + 1])
    assert any("variables/variables.data" in p and "modified" in p for p in row["problems"]["2"])
    assert any("card.json is missing" in p for p in row["problems"]["3"])
    assert "1" not in row["problems"]


_PUBLISH = textwrap.dedent(
    """
    import shutil, sys, time
    from pathlib import Path
    from zoo.registry.store import Zoo

    root, source = Path(sys.argv[1]), Path(sys.argv[2])

    def build(out):
        shutil.copytree(source, out, dirs_exist_ok=True)
        data = next((out / "variables").glob("variables.data-*"))
        data.write_bytes(data.read_bytes()[:10])  # mid-write of the weights
        print("building", flush=True)
        time.sleep(600)  # the SIGKILL lands here

    Zoo(root).publish_version("tiny", build, label="stable")
    """
)


def test_publish_killed_by_sigkill_leaves_a_consistent_zoo(cli, zoo_copy):
    from zoo.registry.store import Zoo
    from zoo.server.server import EmbeddedServer

    proc = subprocess.Popen(
        [sys.executable, "-c", _PUBLISH, str(zoo_copy), str(zoo_copy / "tiny" / "1")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=REPO, text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "building", proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    leftovers = [p.name for p in (zoo_copy / "tiny").iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1  # the half version, hidden from the zoo and from TF Serving

    result = cli("zoo", "list", "--zoo", zoo_copy, "--json")
    assert result.exit_code == 0, result.output  # clean: no problems anywhere
    import json

    (row,) = json.loads(result.output)
    assert row["versions"] == [1, 2] and row["labels"] == {"stable": 1} and row["problems"] == {}

    with EmbeddedServer(zoo_copy, port=0, poll_seconds=0) as server:
        assert server.manager.available() == {"tiny": [1, 2]}
        assert all(status.error_code == 0 for _, status in server.manager.status("tiny"))

    # the next publish is not blocked by the dead one's lock, gets the next number, cleans up
    assert Zoo(zoo_copy).publish_version("tiny", zoo_copy / "tiny" / "1") == 3
    assert not [p for p in (zoo_copy / "tiny").iterdir() if p.name.startswith(".tmp-")]
