"""`semzoo serve` in a subprocess on a loopback port, and the client-side measurements against it.

The server runs as its own process (as in production), serving exactly the benchmarked
version through a TF Serving models.config, so its memory can be read from ``/proc`` and its
CPU time is not shared with the benchmark's Python threads. Peak memory is Linux's ``VmHWM``
(the resident-set high-water mark), reset before a measurement by writing 5 to
``/proc/PID/clear_refs`` (proc(5)); the client's peak is measured the same way in a
subprocess of its own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np

from zoo.errors import UserError

READY_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB (Linux /proc/PID/status)."""
    found = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found


def reset_peak(pid: int) -> bool:
    """Reset a process's VmHWM to its current RSS; False where the kernel does not allow it."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    memory = proc_memory_kib(pid)
    return memory["VmHWM"] <= memory["VmRSS"] * 1.05


class ServerProcess:
    """``semzoo serve --model-config`` (one model, one version) on a free loopback port."""

    def __init__(self, zoo_root: Path, name: str, version: int, *, env: dict | None = None):
        self.zoo_root, self.name, self.version = Path(zoo_root), name, version
        self.env = env
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="semzoo-bench-")
        self.log_path = Path(self._tmp.name) / "serve.log"

    def start(self) -> "ServerProcess":
        config = Path(self._tmp.name) / "models.config"
        base = (self.zoo_root / self.name).resolve()
        config.write_text(
            "model_config_list {\n  config {\n"
            f'    name: "{self.name}"\n    base_path: "{base}"\n    model_platform: "tensorflow"\n'
            f"    model_version_policy {{ specific {{ versions: {self.version} }} }}\n  }}\n}}\n",
            encoding="utf-8",
        )
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(self.env or {}))
        command = [
            sys.executable, "-m", "zoo.cli.main", "serve", "--model-config", str(config),
            "--host", "127.0.0.1", "--port", str(self.port), "--poll-seconds", "0", "--grace-seconds", "1",
        ]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        from zoo.client.client import EnhanceClient, ServerError

        deadline = time.monotonic() + READY_TIMEOUT_S
        with EnhanceClient(self.target, self.name, version=self.version, retries=0, timeout=5) as probe:
            while True:
                if self.proc.poll() is not None:
                    raise UserError(f"semzoo serve exited with {self.proc.returncode}: {self.log_tail()}")
                try:
                    probe.model_info()
                    return
                except ServerError:
                    if time.monotonic() > deadline:
                        raise UserError(f"semzoo serve not ready after {READY_TIMEOUT_S:g} s: {self.log_tail()}")
                    time.sleep(0.2)  # polling for readiness, not timing anything

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self._log.close()
        self._tmp.cleanup()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def concurrent_clients(
    target: str, name: str, version: int, batch: np.ndarray, *, clients: int, requests: int
) -> dict:
    """``clients`` threads, each with its own EnhanceClient (own channel), ``requests`` whole
    images each; returns images/s over the wall time and per-request latency percentiles."""
    from zoo.client.client import EnhanceClient

    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    connections = [EnhanceClient(target, name, version=version) for _ in range(clients)]
    infos = [c.model_info() for c in connections]  # discovery before the clock starts

    def work(client, info) -> None:
        barrier.wait()
        for _ in range(requests):
            start = time.perf_counter()
            try:
                client.predict(batch, info)
            except BaseException as exc:  # noqa: BLE001 - counted and reported, not swallowed
                with lock:
                    errors.append(exc)
                return
            with lock:
                latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=work, args=ci) for ci in zip(connections, infos)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    for c in connections:
        c.close()
    if errors:
        raise UserError(f"{len(errors)} of {clients * requests} requests failed: {errors[0]}")
    return {
        "clients": clients,
        "requests": len(latencies),
        "images_per_s": len(latencies) * batch.shape[0] / wall,
        "p50_s": float(np.percentile(latencies, 50)),
        "p99_s": float(np.percentile(latencies, 99)),
    }


_CLIENT_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    from zoo.benchmark.served import proc_memory_kib
    from zoo.client.client import EnhanceClient

    target, name, version, size, tile_size, batch_size = sys.argv[1:7]
    size = int(size)
    rng = np.random.default_rng(0)
    image = np.empty((size, size), np.uint16)  # a 16-bit SEM frame, filled in strips (no big temporaries)
    for y in range(0, size, 256):
        image[y:y + 256] = rng.integers(0, 4096, (min(256, size - y), size), dtype=np.uint16)
    with EnhanceClient(target, name, version=int(version), tile_size=int(tile_size) or None,
                       batch_size=int(batch_size)) as client:
        client.model_info()
        before = proc_memory_kib(os.getpid())
        run = client.enhance(image, 14.2)
    after = proc_memory_kib(os.getpid())
    print(json.dumps({"before_kib": before["VmRSS"], "peak_kib": after["VmHWM"], "shape": list(run.image.shape),
                      "dtype": str(run.image.dtype), "tiles": run.tiles}))
    """
)


def enhance_memory(server: ServerProcess, *, size: int, tile_size: int | None, batch_size: int) -> dict:
    """Peak RSS of a client subprocess and of the server while a ``size``² uint16 image is
    enhanced into ``2 size``²; numbers in MiB and as multiples of the float32 output image."""
    pid = server.proc.pid
    server_before = proc_memory_kib(pid)["VmRSS"]
    if not reset_peak(pid):
        raise UserError("cannot reset the server's peak RSS (/proc/PID/clear_refs): not Linux?")
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, "-c", _CLIENT_SCRIPT, server.target, server.name, str(server.version), str(size),
         str(tile_size or 0), str(batch_size)],
        capture_output=True, text=True, env=env,
    )
    if proc.returncode != 0:
        raise UserError(f"the client subprocess failed: {proc.stderr.strip().splitlines()[-1:]}")
    client = json.loads(proc.stdout.strip().splitlines()[-1])
    server_peak = proc_memory_kib(pid)["VmHWM"]
    output_mib = (2 * size) ** 2 * 4 / 2**20
    mib = 1 / 1024
    return {
        "input": f"{size}x{size} uint16",
        "output": f"{2 * size}x{2 * size} {client['dtype']}",
        "tiles": client["tiles"],
        "output_float32_mib": output_mib,
        "client_peak_mib": client["peak_kib"] * mib,
        "client_growth_mib": (client["peak_kib"] - client["before_kib"]) * mib,
        "server_peak_mib": server_peak * mib,
        "server_growth_mib": (server_peak - server_before) * mib,
    }
