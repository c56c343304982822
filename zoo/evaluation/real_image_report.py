"""The HR-only evaluation's report folder: results.json (per image and aggregates), report.md and
one crop figure per image.

The folder is built in a hidden sibling and renamed into place when complete, so a failure
leaves no partial report; an existing non-empty folder is replaced only with ``overwrite``.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from zoo.errors import UserError
from zoo.evaluation.report import report_folder
from zoo.evaluation.real_images import (
    BORDER_PX, COARSE_SHIFTS, FINE_SPAN, FINE_STEP, REFERENCE, ImageResult,
)

PANEL_PX = 192  # on screen: a 96-px crop at x2
LABELS = {"nearest": "nearest x2", "bicubic": "bicubic x2", "lanczos": "Lanczos x2"}


def aggregate(results: Sequence[ImageResult]) -> dict[str, dict]:
    """Per candidate: mean PSNR/SSIM, mean and worst PSNR - Lanczos, images below Lanczos."""
    table = {}
    for key in results[0].scores:
        psnr = np.array([r.scores[key].psnr_db for r in results])
        diff = psnr - np.array([r.scores[REFERENCE].psnr_db for r in results])
        lines = np.array([r.scores[key].psnr_lines_db for r in results])
        lines_diff = lines - np.array([r.scores[REFERENCE].psnr_lines_db for r in results])
        with np.errstate(invalid="ignore"):  # inf - inf for a perfect candidate
            table[key] = {
                "psnr_db": float(psnr.mean()),
                "ssim": float(np.mean([r.scores[key].ssim for r in results])),
                "psnr_vs_lanczos_db": float(diff.mean()) if key != REFERENCE else 0.0,
                "worst_psnr_vs_lanczos_db": float(diff.min()) if key != REFERENCE else 0.0,
                "images_below_lanczos": int(np.sum(diff < 0)),
                "psnr_lines_db": float(lines.mean()),
                "psnr_lines_vs_lanczos_db": float(lines_diff.mean()) if key != REFERENCE else 0.0,
                "worst_psnr_lines_vs_lanczos_db": float(lines_diff.min()) if key != REFERENCE else 0.0,
            }
    return table


def _number(value: float) -> float | None:
    """JSON has no inf or NaN: null (an infinite PSNR is a candidate equal to the HR)."""
    return float(value) if value is not None and math.isfinite(value) else None


def results_json(results: Sequence[ImageResult], inputs: dict, models: Sequence[str],
                 warnings_: Sequence[str] = ()) -> dict:
    """What results.json holds (and `--json` prints)."""
    import zoo

    def clean(node):
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [clean(v) for v in node]
        return _number(node) if isinstance(node, float) else node

    return clean({
        "mode": "hr-only",
        "semzoo": zoo.__version__,
        "inputs": inputs,
        "models": list(models),
        "lr": "every second pixel of the HR from (0, 0) (zoo.sim.acquisition.stepping_scan_record, scale 2)",
        "scoring": {"pixels": "HR pixels the LR did not sample", "border_px": BORDER_PX,
                    "shift_grid_px": [float(COARSE_SHIFTS[1] - COARSE_SHIFTS[0]), float(COARSE_SHIFTS[-1])],
                    "shift_refine_px": [FINE_STEP, FINE_SPAN],
                    "intensity": "least-squares gain/offset on the scored pixels",
                    "ssim": "shifted, gain/offset-matched image inside the border",
                    "psnr_lines": "PSNR on the HR rows the LR never scanned, own shift and gain/offset fit",
                    "reference": REFERENCE},
        "images": len(results),
        "candidates": list(results[0].scores),
        "aggregate": aggregate(results),
        "per_image": [
            {"name": r.name, "path": str(r.path), "shape": list(r.shape), "pixel_size_nm": r.pixel_size_nm,
             "pixel_size_source": r.pixel_size_source, "data_range": r.data_range,
             "noise_sigma": r.noise_sigma, "noise_ceiling_psnr_db": r.noise_ceiling_db,
             "crop": {"x0": r.crop_box[0], "y0": r.crop_box[1], "size": r.crop_box[2], "why": r.crop_reason},
             "candidates": {k: {"psnr_db": s.psnr_db, "ssim": s.ssim, "psnr_lines_db": s.psnr_lines_db,
                                "shift_px": list(s.shift_px),
                                "gain": s.gain, "offset": s.offset} for k, s in r.scores.items()}}
            for r in results
        ],
        "warnings": list(warnings_),
    })


def check_report_dir(report: Path, overwrite: bool) -> None:
    """Refuse a report path that is a file, or a non-empty folder without ``overwrite``."""
    report = Path(report)
    if report.exists() and not report.is_dir():
        raise UserError(f"--report {report} exists and is not a folder")
    if report.is_dir() and any(report.iterdir()) and not overwrite:
        raise UserError(f"--report {report} exists and is not empty; pass --overwrite to replace it")


def figure_name(index: int, name: str) -> str:
    return f"crops-{index + 1:02d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)[:60]}.png"


def write_report(results: Sequence, data: dict, report: Path, *, overwrite: bool = False) -> Path:
    """Write results.json, report.md and the crop figures into ``report`` atomically."""
    report = Path(report)
    check_report_dir(report, overwrite)
    with report_folder(report) as tmp:
        for k, (result, row) in enumerate(zip(results, data["per_image"])):
            row["figure"] = figure_name(k, result.name)
            crop_figure(result, tmp / row["figure"])
        (tmp / "results.json").write_text(json.dumps(data, indent=2) + "\n")
        (tmp / "report.md").write_text(markdown(data))
    return report


def label(key: str) -> str:
    return LABELS.get(key, key)


def crop_figure(result, path: Path) -> None:
    """HR | Lanczos | each model (aligned and gain/offset-matched, one grey scale) over their
    absolute errors against the HR (one scale); saved as an 8-bit grey PNG to stay small."""
    from zoo.evaluation.plotting import LABEL, TEXT, Figure

    keys = [k for k in result.crop if k != "hr"]
    crops = result.crop
    gap, left, top = 14, 16, 96
    x0, y0, size = result.crop_box
    px = result.pixel_size_nm
    where = f"{size}x{size} HR px at x={x0}, y={y0}: {result.crop_reason}"
    text_w = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, TEXT, 1)[0][0] for t in (result.name, where))
    width = max(left + (1 + len(keys)) * (PANEL_PX + gap), left + text_w + 16)
    fig = Figure(width, top + 2 * PANEL_PX + 24)
    fig.text(left, 22, result.name, size=TEXT)
    fig.text(left, 44, where, size=TEXT)
    lo, hi = (float(v) for v in np.percentile(crops["hr"], [1, 99]))
    errors = {k: np.abs(crops[k] - crops["hr"]) for k in keys}
    err_hi = float(np.percentile(errors["lanczos"], 99)) or 1.0
    for c, key in enumerate(["hr", *keys]):
        x = left + c * (PANEL_PX + gap)
        title = "HR (truth)" if key == "hr" else label(key)
        fig.text(x + PANEL_PX / 2, top - 26, title[:22], size=LABEL, ha="center")
        if key != "hr":
            fig.text(x + PANEL_PX / 2, top - 8, f"{result.scores[key].psnr_db:.2f} dB", size=TEXT, ha="center")
        # Pixel size 0 draws no scale bar (unknown pixel size); else one from the HR's grid.
        fig.image((x, top, PANEL_PX, PANEL_PX), crops[key], vmin=lo, vmax=hi, pixel_size_nm=px or 0.0)
        err_top = top + PANEL_PX + 12
        if key == "hr":
            fig.text(x, err_top + 30, "below: |candidate - HR|", size=TEXT)
            fig.text(x, err_top + 52, f"black 0, white >= {err_hi:.3g}", size=TEXT)
            continue
        fig.image((x, err_top, PANEL_PX, PANEL_PX), errors[key], vmin=0.0, vmax=err_hi, pixel_size_nm=0.0)
    grey = cv2.cvtColor(fig.canvas, cv2.COLOR_RGB2GRAY)
    if not cv2.imwrite(str(path), grey, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {path}")


def _f(value, fmt: str, none: str = "inf") -> str:
    return none if value is None else format(value, fmt)


def markdown(data: dict) -> str:
    """report.md: what LR means, how scoring works, the aggregate and per-image tables."""
    agg, rows = data["aggregate"], data["per_image"]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    models = ", ".join(data["models"]) or "none (baselines only)"
    lines = [
        "# HR-only evaluation on real images",
        "",
        f"{data['images']} real image(s); models: {models}; semzoo {data['semzoo']}; {now}.",
        "",
        "**LR** = every second pixel of each real (HR) image, starting at its first pixel: exactly what a "
        "stepping scan at twice the pitch with the same dwell records "
        "(`zoo.sim.acquisition.stepping_scan_record`). Every candidate upsamples that LR x2; models run as "
        "`semzoo enhance` runs them (the zoo's SavedModel, whole-image normalisation, the card's tiling).",
        "",
        f"**Scoring**: on the HR pixels the LR did not sample (3 of 4), {data['scoring']['border_px']} px of "
        "border excluded. Each candidate is first shifted by the sub-pixel (dx, dy) of highest PSNR (0.25 px "
        "grid in [-1, 1], then 0.05 px within +-0.2; half-pixel-centred upsampling alone is off by -0.5 px), "
        "then mapped onto the HR with a least-squares gain/offset on the scored pixels. PSNR uses the HR's "
        "range on those pixels; SSIM (Wang et al. 2004, Gaussian sigma 1.5) is taken on the shifted, matched "
        "image inside the border. The **noise ceiling** 10 log10(range^2 / sigma^2), sigma the HR's noise "
        "(`estimate_noise_sigma`), is what a perfect noise-free prediction would score against the noisy HR: "
        "a target of 'Lanczos + X dB' is reachable on an image only if X is below its ceiling - Lanczos.",
        "",
        "**Unscanned lines**: the same PSNR on the HR rows the LR never scanned only (own shift and "
        "gain/offset fit). A detector low-passes the signal along the fast-scan axis, so an unsampled pixel "
        "on a scanned line shares noise with the LR samples beside it; on lines the LR never visited a gain "
        "cannot come from carrying the LR's noise.",
        "",
        "## Aggregate",
        "",
        "| candidate | mean PSNR (dB) | mean SSIM | vs Lanczos, mean (dB) | vs Lanczos, worst (dB) | images below Lanczos "
        "| unscanned lines: PSNR (dB) | vs Lanczos, mean / worst (dB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, a in agg.items():
        lines.append(
            f"| {label(key)} | {_f(a['psnr_db'], '.2f')} | {_f(a['ssim'], '.4f', 'n/a')} | "
            f"{_f(a['psnr_vs_lanczos_db'], '+.2f', 'n/a')} | {_f(a['worst_psnr_vs_lanczos_db'], '+.2f', 'n/a')} | "
            f"{a['images_below_lanczos']} / {data['images']} | {_f(a['psnr_lines_db'], '.2f', 'n/a')} | "
            f"{_f(a['psnr_lines_vs_lanczos_db'], '+.2f', 'n/a')} / {_f(a['worst_psnr_lines_vs_lanczos_db'], '+.2f', 'n/a')} |"
        )
    keys = list(agg)
    lines += [
        "",
        "## Per image",
        "",
        "PSNR (dB) / SSIM, and the fitted shift (dx, dy) in HR px.",
        "",
        "| image | pixel size (nm) | noise sigma | ceiling (dB) | " + " | ".join(label(k) for k in keys) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(keys),
    ]
    for r in rows:
        cells = []
        for k in keys:
            s = r["candidates"][k]
            cells.append(f"{_f(s['psnr_db'], '.2f')} / {_f(s['ssim'], '.3f', 'n/a')} ({s['shift_px'][0]:+.2f}, {s['shift_px'][1]:+.2f})")
        px = "unknown" if r["pixel_size_nm"] is None else f"{r['pixel_size_nm']:g}"
        lines.append(f"| {r['name']} | {px} | {r['noise_sigma']:.3g} | {_f(r['noise_ceiling_psnr_db'], '.2f')} | "
                     + " | ".join(cells) + " |")
    lines += ["", "## Crops", "",
              "Top: HR, Lanczos and each model (shifted and gain/offset-matched, one grey scale); bottom: "
              "absolute error against the HR (one scale per figure).", ""]
    for r in rows:
        lines += [f"### {r['name']}", "", f"{r['crop']['size']} px crop at x={r['crop']['x0']}, "
                  f"y={r['crop']['y0']} ({r['crop']['why']}).", "", f"![{r['name']}]({r['figure']})", ""]
    if data["warnings"]:
        lines += ["## Warnings", "", *[f"- {w}" for w in data["warnings"]], ""]
    inputs = data["inputs"]
    lines += ["## Inputs", "", f"- HR: {', '.join(inputs['hr_only'])}",
              f"- models: {', '.join(inputs['models']) or 'none'}" + (f" (zoo {inputs['zoo']})" if inputs["zoo"] else ""),
              f"- pixel size override: {inputs['pixel_size_nm'] if inputs['pixel_size_nm'] is not None else 'none'}",
              ""]
    return "\n".join(lines)
