#!/usr/bin/env python3
"""Score Lanczos x2, enhanced outputs and the target on a prepared gold-on-carbon test set,
with invented gaps split by kind of contact (issue 14).

    python tools/measure_gold_sets.py DATA --output v1=SR_V1 --output v2=SR_V2 [--out table.md]

DATA is a `semzoo prepare` folder (DATA/registered/{lr-native,hr,truth.json}); each --output
LABEL=DIR holds `semzoo enhance DATA/registered/lr-native -o DIR` TIFFs. Every image is scored
as `semzoo evaluate --truth` scores it (zoo.evaluation.report.evaluate: intensity matched to the
target outside its no-data area, the paper's gap rule on the truth's gaps and touching pairs),
all images of a pair in one analysis. Prints a markdown table (undetected gaps, gap-size error,
mean PSNR, invented gaps) and the invented gaps by kind, size and overlap
(zoo.evaluation.invented).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from zoo.errors import UserError  # noqa: E402
from zoo.evaluation.gaps import GapStats, analyse_gaps  # noqa: E402
from zoo.evaluation.invented import invented_by_kind, markdown_invented  # noqa: E402
from zoo.evaluation.quality import baseline_upsample, match_intensity, peak_signal_noise_ratio  # noqa: E402
from zoo.evaluation.report import no_data_mask  # noqa: E402
from zoo.sim.truth import read_truth  # noqa: E402


def parse_outputs(items: list[str]) -> dict[str, Path]:
    out = {}
    for item in items:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            raise UserError(f"bad --output {item!r}: expected LABEL=FOLDER")
        if label in ("input", "target") or label in out:
            raise UserError(f"--output label {label!r} is taken")
        if not Path(folder).is_dir():
            raise UserError(f"--output {folder} is not a folder")
        out[label] = Path(folder)
    return out


def measure(data: Path, outputs: dict[str, Path]):
    from zoo.data.sem_tiff import read_sem

    reg = data / "registered"
    truth_path = reg / "truth.json"
    if not truth_path.is_file():
        raise UserError(f"{truth_path} does not exist (expected a `semzoo prepare` folder of simulated pairs)")
    truth = read_truth(truth_path)["pairs"]
    analyses, psnr = [], {}
    for name in sorted(truth):
        tgt = read_sem(reg / "hr" / f"{name}.tif")
        inp = read_sem(reg / "lr-native" / f"{name}.tif").image.astype(np.float64)
        target = tgt.image.astype(np.float64)
        rows = {"input": baseline_upsample(inp, "lanczos", scale=2)}
        for label, folder in outputs.items():
            path = folder / f"{name}.tif"
            if not path.is_file():
                raise UserError(f"{path} does not exist")
            rows[label] = read_sem(path).image.astype(np.float64)
        missing = no_data_mask(target)
        valid = None if not missing.any() else ~missing
        matched = {row: match_intensity(img, target, mask=valid) for row, img in rows.items()}
        for row, img in matched.items():
            psnr.setdefault(row, []).append(peak_signal_noise_ratio(target, img, match_intensity=False, mask=valid))
        matched["target"] = target
        pair = truth[name]
        analyses.append(analyse_gaps(matched, pair["gaps"], pair["particles"], touching=pair["touching"],
                                     pixel_size_nm=tgt.pixel_size_nm, reference="target", match_intensity=False))
    return analyses, {row: float(np.mean(v)) for row, v in psnr.items()}


def markdown(analyses, psnr, labels) -> str:
    rows = list(labels)
    stats = {row: GapStats.pooled(a.stats[row] for a in analyses) for row in rows}
    ref = stats["target"]
    lines = [f"{len(analyses)} pairs; {ref.n_gaps} gaps ({ref.n_gaps - ref.n_undetected} shown by the target), "
             f"{ref.n_touching} touching pairs", "",
             "| | undetected gaps | gap-size error | PSNR | invented gaps |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        s = stats[row]
        p = psnr.get(row, math.nan)
        lines.append(f"| {labels[row]} | {100 * s.undetected_gap_fraction:.1f}% ({s.n_undetected}/{s.n_gaps}) | "
                     f"{s.gap_size_error_nm:.2f} nm | " + (f"{p:.2f} dB" if math.isfinite(p) else "—")
                     + f" | {100 * s.invented_gap_fraction:.1f}% ({s.n_invented}/{s.n_touching}) |")
    lines += ["", "Invented gaps by kind of contact, smaller diameter and overlap:", "",
              markdown_invented(invented_by_kind(analyses, rows), rows, labels)]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--output", action="append", default=[])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    try:
        outputs = parse_outputs(args.output)
        analyses, psnr = measure(args.data, outputs)
        labels = {"input": "Lanczos x2", **{k: k for k in outputs}, "target": "20000x target"}
        text = markdown(analyses, psnr, labels) + "\n"
    except (UserError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
