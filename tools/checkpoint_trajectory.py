#!/usr/bin/env python3
"""Evaluate a training run's checkpoints (EMA generator) on prepared test pairs with truth.

    python tools/checkpoint_trajectory.py RUN TEST [--checkpoints 250,750,...]

RUN is a `semzoo train` run directory; TEST a `semzoo prepare` output of simulated pairs
(TEST/registered/{lr-native,hr}/*.tif and truth.json). Each checkpoint's generator enhances
every whole LR image (no tiling; normalised and mirror-padded as served) and `zoo.evaluation.report.evaluate` scores it against the HR
and the planted gaps; the table pools the pairs as `semzoo evaluate` does. Used to follow how a
run's gap detection and PSNR develop (docs/experiments.md: the ablations of gold-on-carbon v2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from zoo.errors import UserError  # noqa: E402


def _checkpoints(run: Path, wanted: str | None) -> list[tuple[int, str]]:
    found = {int(p.stem.split("-")[1]): str(p.with_suffix("")) for p in (run / "checkpoints").glob("ckpt-*.index")}
    if not found:
        raise UserError(f"{run} has no checkpoints (expected {run}/checkpoints/ckpt-N.index)")
    if wanted is None:
        return sorted(found.items())
    try:
        steps = [int(s) for s in wanted.split(",")]
    except ValueError:
        raise UserError(f"bad --checkpoints {wanted!r}: use step numbers, e.g. 250,750") from None
    missing = [s for s in steps if s not in found]
    if missing:
        raise UserError(f"no checkpoint at step {missing[0]} in {run}; it has {', '.join(map(str, sorted(found)))}")
    return [(s, found[s]) for s in steps]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("test", type=Path)
    ap.add_argument("--checkpoints")
    args = ap.parse_args(argv)
    try:
        config_path, base = args.run / "config.json", args.test / "registered"
        if not config_path.is_file():
            raise UserError(f"{args.run} is not a training run (no config.json)")
        if not (base / "truth.json").is_file():
            raise UserError(f"{args.test} has no registered/truth.json: use prepared simulated pairs")
        checkpoints = _checkpoints(args.run, args.checkpoints)
        run_config = json.loads(config_path.read_text())
        from zoo.sim.truth import read_truth, with_file_probe

        truth_file = with_file_probe(read_truth(base / "truth.json"))  # each pair with the file's probe FWHM
        truth, pixel_size_nm = truth_file["pairs"], float(truth_file["hr_pixel_size_nm"])
        names = sorted(truth)

        from zoo.data.sem_tiff import read_sem
        from zoo.evaluation.report import evaluate
        from zoo.evaluation.tables import aggregate_table, undetected_by_input_sampling, undetected_by_width
        from zoo.registry.export import enhance_whole_image
        from zoo.training.train import restore_generator

        pairs = [(n, read_sem(base / "lr-native" / f"{n}.tif").image.astype(np.float32),
                  read_sem(base / "hr" / f"{n}.tif").image) for n in names]
        print("| step | PSNR (dB) | SSIM | undetected gaps | gap-size error (nm) | invented gaps | "
              "undetected < 7.1 / 7.1–14.2 / ≥ 14.2 nm | undetected with / without an input sample in the gap |")
        print("|---:|---:|---:|---:|---:|---:|---|---|")
        for step, path in checkpoints:
            generator = restore_generator(run_config, path)
            results = []
            for name, lr, hr in pairs:
                sr = enhance_whole_image(generator, lr)
                results.append(evaluate(lr, sr, hr, pixel_size_nm=pixel_size_nm,
                                        truth=truth[name], name=name))
            row = aggregate_table(results)["output"]
            by_width = undetected_by_width(results)
            cells = " / ".join(f"{c['percent']:.1f}" for c in by_width["rows"]["output"]) if by_width else "—"
            by_sampling = undetected_by_input_sampling(results)
            sampling = (" / ".join(f"{c['percent']:.1f}" for c in by_sampling["rows"]["output"])
                        if by_sampling else "—")
            print(f"| {step} | {row['psnr_db']:.2f} | {row['ssim']:.3f} | {row['undetected_gaps_percent']:.1f}% | "
                  f"{row['gap_size_error_nm']:.2f} | {row['invented_gaps_percent']:.1f}% | {cells} | "
                  f"{sampling} |", flush=True)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
