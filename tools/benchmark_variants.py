#!/usr/bin/env python3
"""Which inference variants are faster on this machine: XLA, bfloat16, batching of tiles.

``python tools/benchmark_variants.py ZOO NAME VERSION [--size 390] [--rounds 5]`` times, in
one process and alternating call by call (so a background load hits every variant alike):

- ``float32``: the served SavedModel signature, as `semzoo serve` runs it (the baseline);
- ``xla``: the same signature called from a ``tf.function(jit_compile=True)``;
- ``bfloat16``: the card's preset rebuilt under Keras' ``mixed_bfloat16`` policy with the
  version's weights (needs AVX512-BF16 or AMX to pay off on a CPU), with the PSNR of its
  output against the float32 output and the PSNR change against a reference, if given;
- ``tiles x4 batched`` vs ``tiles x4 one by one``: four card-size tiles in one call or four.

Prints one markdown table of median seconds per call and speed relative to float32.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _median_times(functions: dict, rounds: int) -> dict[str, float]:
    for function in functions.values():
        function()  # trace / compile / set up kernels once
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB of ``test`` against ``reference`` over the reference's dynamic range."""
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    peak = float(reference.max() - reference.min())
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def bfloat16_generator(version_dir, preset: str):
    """The card's preset built under ``mixed_bfloat16`` with the version's weights."""
    import keras

    from zoo.nets.generator import build_generator
    from zoo.nets.presets import get_preset
    from zoo.registry.export import load_generator_weights

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        generator = build_generator(get_preset(preset))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    load_generator_weights(version_dir, generator)
    return generator


def compare_variants(zoo_root, name: str, version: int, *, size: int = 390, rounds: int = 5) -> tuple[list, dict]:
    """Median seconds per call of each variant; returns (rows, extras) for the table."""
    import tensorflow as tf

    from zoo.benchmark.direct import DirectModel
    from zoo.registry.store import Zoo

    zoo = Zoo(zoo_root)
    card = zoo.card(name, version)
    model = DirectModel(zoo.version_dir(name, version))
    rng = np.random.default_rng(0)
    image = tf.constant(rng.standard_normal((1, size, size, 1)).astype(np.float32))
    tile = int(card["tile"]["size"])
    tiles = tf.constant(rng.standard_normal((4, tile, tile, 1)).astype(np.float32))
    signature = model.function

    @tf.function(jit_compile=True)
    def xla(batch):
        return signature(image=batch)

    functions = {
        "float32": lambda: signature(image=image)[model.output_name].numpy(),
        "xla": lambda: xla(image)[model.output_name].numpy(),
        "tiles x4 batched": lambda: signature(image=tiles)[model.output_name].numpy(),
        "tiles x4 one by one": lambda: [signature(image=tiles[i:i + 1])[model.output_name].numpy() for i in range(4)],
    }
    extras = {}
    preset = card.get("training", {}).get("preset")
    if preset:
        from zoo.registry.export import pad_to_multiple

        generator = bfloat16_generator(zoo.version_dir(name, version), preset)
        divisor = int(card["tile"]["divisor"])

        @tf.function
        def bf16(batch):
            out = generator(pad_to_multiple(batch, divisor), training=False)
            return tf.cast(out[:, : 2 * size, : 2 * size, :], tf.float32)

        functions["bfloat16"] = lambda: bf16(image).numpy()
        reference = functions["float32"]()
        extras["bfloat16_psnr_vs_float32_db"] = psnr(reference, functions["bfloat16"]())
        extras["xla_max_abs_diff"] = float(np.abs(reference - functions["xla"]()).max())
    times = _median_times(functions, rounds)
    base = times["float32"]
    rows = [[k, f"{v:.3f}", f"{base / v:.2f}x" if not k.startswith("tiles") else ""] for k, v in times.items()]
    per_tile = times["tiles x4 one by one"] / times["tiles x4 batched"]
    extras["batched_tiles_speedup"] = per_tile
    return rows, extras


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zoo")
    parser.add_argument("name")
    parser.add_argument("version", type=int)
    parser.add_argument("--size", type=int, default=390)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rows, extras = compare_variants(args.zoo, args.name, args.version, size=args.size, rounds=args.rounds)
    print(f"| variant ({args.size}x{args.size} LR, median of {args.rounds}) | s per call | speed vs float32 |")
    print("| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    for key, value in extras.items():
        print(f"- {key}: {value:.4g}")


if __name__ == "__main__":
    main()
