"""One benchmark run: direct vs served throughput, concurrency, memory, the Lanczos floor.

Direct and served calls alternate (direct, served, direct, ...) and each side's median is
used, so a background load that changes during the run (other processes on a shared
machine) affects both sides alike and the *ratios* stay meaningful even when absolute numbers
are depressed. The load average at the start and end is recorded with the results.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class BenchSizes:
    """What one run measures (LR pixel edges; outputs are twice as large)."""

    whole: int = 390  # 780 x 780 output, as the paper's timing
    rounds: int = 5  # alternating direct/served whole-image calls, per side
    tiled: int = 2048  # 4096 x 4096 output
    large_tile: int = 1024  # a second tiled run with tiles this large (0: skip)
    clients: tuple[int, ...] = (1, 2, 4)
    requests_per_client: int = 4
    memory: int = 4096  # 4096 x 4096 input -> 8192 x 8192
    memory_tile: int = 1024  # client tile size for the memory run (0: the card's)
    batch_size: int = 4  # tiles per request at most (EnhanceClient's default)
    frame: tuple[int, int] = (780, 924)  # an SEM frame (rows, columns): the default path vs direct
    frame_rounds: int = 5
    conv: int = 392  # the plain 64->64 3x3 convolution the model's GFLOP/s is compared with

    @classmethod
    def quick(cls) -> "BenchSizes":
        """Seconds on a tiny model: checks the machinery, not the machine."""
        return cls(whole=96, rounds=2, tiled=256, large_tile=0, clients=(1, 2), requests_per_client=2,
                   memory=256, memory_tile=0, frame=(64, 80), frame_rounds=2, conv=64)


@dataclass
class BenchResult:
    model: str
    version: int
    sizes: BenchSizes
    environment: dict = field(default_factory=dict)
    whole: dict = field(default_factory=dict)
    frame: dict = field(default_factory=dict)
    tiled: list[dict] = field(default_factory=list)
    lanczos: dict = field(default_factory=dict)
    concurrency: list[dict] = field(default_factory=list)
    memory: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def environment() -> dict:
    """Machine, software and load at the time of measuring."""
    import tensorflow as tf

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags.split(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "load_start": os.getloadavg()[0],
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def run_benchmark(
    zoo_root: str | Path,
    name: str,
    version: int,
    *,
    sizes: BenchSizes | None = None,
    progress: ProgressCallback | None = None,
) -> BenchResult:
    """Benchmark zoo version ``name:version`` (see :mod:`zoo.benchmark`); returns the numbers."""
    from zoo.benchmark.direct import DirectModel, direct_tiled, lanczos_x2, plain_conv_gflop_per_s, timed
    from zoo.benchmark.served import ServerProcess, concurrent_clients, enhance_memory
    from zoo.client.client import EnhanceClient
    from zoo.registry.store import Zoo

    sizes = sizes or BenchSizes()
    zoo = Zoo(zoo_root)
    card = dict(zoo.card(name, version))
    result = BenchResult(name, version, sizes, environment())
    # the default plan (memory budget), the card's tiles (the old default), and large fixed tiles
    tile_sizes = [None, int(card["tile"]["size"])] + (
        [sizes.large_tile] if sizes.large_tile and sizes.large_tile > card["tile"]["size"] else [])
    steps = 4 + len(tile_sizes)
    step = progress or (lambda done, total: None)
    step(0, steps)
    rng = np.random.default_rng(0)

    model = DirectModel(zoo.version_dir(name, version))
    whole = rng.standard_normal((1, sizes.whole, sizes.whole, 1)).astype(np.float32)
    model(whole)  # first call traces and optimises the graph: not what a served request pays
    gflop = model.gflop_per_image(sizes.whole, sizes.whole)
    step(1, steps)

    with ServerProcess(zoo.root, name, version) as server:
        with EnhanceClient(server.target, name, version=version, batch_size=sizes.batch_size) as client:
            info = client.model_info()
            client.predict(whole, info)
            direct_s, served_s = [], []
            for _ in range(sizes.rounds):
                direct_s.append(timed(lambda: model(whole)))
                served_s.append(timed(lambda: client.predict(whole, info)))
            direct, served = float(np.median(direct_s)), float(np.median(served_s))
            result.whole = {
                "lr": sizes.whole, "output": 2 * sizes.whole, "gflop_per_image": gflop,
                "direct_images_per_s": 1 / direct, "served_images_per_s": 1 / served,
                "direct_gflop_per_s": gflop / direct, "served_gflop_per_s": gflop / served,
                "ratio": direct / served, "rounds": sizes.rounds,
            }
            conv = plain_conv_gflop_per_s(size=sizes.conv, rounds=sizes.rounds)
            result.whole.update(conv_gflop_per_s=conv, conv_size=sizes.conv, conv_share=gflop / direct / conv)
            lanczos_image = rng.standard_normal((sizes.whole, sizes.whole)).astype(np.float32)
            reps = max(5, sizes.rounds)
            result.lanczos = {
                "output": 2 * sizes.whole,
                "images_per_s": reps / sum(timed(lambda: lanczos_x2(lanczos_image)) for _ in range(reps)),
            }
            result.frame = default_path_vs_direct(model, client, rng, sizes)
            step(2, steps)

            image = rng.standard_normal((sizes.tiled, sizes.tiled)).astype(np.float32)
            output_mpx = (2 * sizes.tiled) ** 2 / 1e6
            for i, tile_size in enumerate(tile_sizes):
                client.tile_size = tile_size
                plan = client.tile_plan(info, *image.shape)
                first = image[:plan.tile, :plan.tile]
                client.enhance(first, 14.2)  # a new tile shape: oneDNN sets up its kernels once per side
                direct_tiled(model, first, card, client.tile_plan(info, *first.shape))
                d = timed(lambda: direct_tiled(model, image, card, plan))
                runs = []
                s = timed(lambda: runs.append(client.enhance(image, 14.2)))
                result.tiled.append({
                    "lr": sizes.tiled, "output": 2 * sizes.tiled, "tile": plan.tile, "plan": tile_size is None,
                    "tiles": runs[0].tiles, "batch": plan.batch, "direct_s": d, "served_s": s,
                    "direct_mpx_per_s": output_mpx / d, "served_mpx_per_s": output_mpx / s, "ratio": d / s,
                    "lanczos_mpx_per_s": output_mpx / timed(lambda: lanczos_x2(image)),
                })
                step(3 + i, steps)

            client.tile_size = sizes.memory_tile or None  # the memory run's client plans the same way
            memory_plan = client.tile_plan(info, sizes.memory, sizes.memory)

        for n in sizes.clients:
            result.concurrency.append(
                concurrent_clients(server.target, name, version, whole, clients=n, requests=sizes.requests_per_client)
            )
        step(steps - 1, steps)
    del model  # the direct model's memory is not the server's or the client's
    # A fresh server: TensorFlow's allocator keeps what the runs above used, which would hide
    # what one image costs.
    with ServerProcess(zoo.root, name, version) as server:
        memory_tile, memory_batch = memory_plan.tile, memory_plan.batch
        result.memory = enhance_memory(
            server, size=sizes.memory, tile_size=sizes.memory_tile or None, batch_size=memory_batch
        )
        result.memory.update(tile=memory_tile, batch=memory_batch)
    result.environment["load_end"] = os.getloadavg()[0]
    step(steps, steps)
    return result


def default_path_vs_direct(model, client, rng, sizes: BenchSizes) -> dict:
    """An SEM frame through ``client.enhance`` with its defaults (the memory budget's plan,
    normalisation, dtype conversion, gRPC) against one direct SavedModel call on the whole
    normalised frame; alternating, medians. The ratio is the default path's share of the model's speed."""
    from zoo.benchmark.direct import timed

    h, w = sizes.frame
    frame = rng.integers(1000, 4000, (h, w)).astype(np.uint16)
    normalised = ((frame - frame.mean()) / frame.std()).astype(np.float32)[None, ..., None]
    runs = [client.enhance(frame, 14.2)]  # warm: oneDNN sets up its kernels once per shape
    model(normalised)
    direct_s, served_s = [], []
    for _ in range(sizes.frame_rounds):
        direct_s.append(timed(lambda: model(normalised)))
        served_s.append(timed(lambda: runs.append(client.enhance(frame, 14.2))))
    direct, served = float(np.median(direct_s)), float(np.median(served_s))
    return {"lr": [h, w], "tiles": runs[-1].tiles, "tile": runs[-1].tile_size, "rounds": sizes.frame_rounds,
            "direct_images_per_s": 1 / direct, "served_images_per_s": 1 / served, "ratio": direct / served}
