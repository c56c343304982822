"""The report's figures, redrawn after de Haan et al. 2019 (Sci. Rep. 9, 12050), Figs. 2-4.

* :func:`gap_profiles` (Fig. 2): input, output and target crops around example gaps, with the
  intensity profiles along the measured line and the 80% crossings that give the width.
* :func:`gap_histograms` (Fig. 3): gap-size errors against the target, and the shares of
  undetected and invented gaps per image.
* :func:`spectra` (Fig. 4): radially averaged power spectra, and single-image FRC curves.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from zoo.evaluation.gaps import DETECTION_LEVEL, PROFILE_EXTEND_PX, WIDTH_LEVEL, GapProfile
from zoo.evaluation.plotting import BLACK, GREY, PALETTE, TEXT, TITLE, Figure
from zoo.evaluation.spectra import FRC_THRESHOLD

COLORS = {
    "nearest": PALETTE["green"],
    "bicubic": PALETTE["purple"],
    "input": PALETTE["sky"],
    "output": PALETTE["orange"],
    "target": BLACK,
}
LABELS = {
    "nearest": "nearest x2",
    "bicubic": "bicubic x2",
    "input": "input (Lanczos x2)",
    "output": "output",
    "target": "target",
}
CROP_PX = 200  # on screen


# --------------------------------------------------------------------------------------------
# Fig. 2
# --------------------------------------------------------------------------------------------


def _examples(results) -> list[tuple[object, int, str]]:
    """Up to three (result, gap index, why) examples, chosen by a fixed rule (see report.md)."""
    pool = []
    for res in results:
        g = res.gaps
        for k in range(len(g.gaps)):
            pool.append((res, k, g.widths_nm["target"][k], g.widths_nm["input"][k], g.widths_nm["output"][k]))
    seen_target = [e for e in pool if math.isfinite(e[2])]
    chosen: list[tuple[object, int, str]] = []

    def add(entry, why):
        if entry is not None and not any(c[0] is entry[0] and c[1] == entry[1] for c in chosen):
            chosen.append((entry[0], entry[1], why))

    rescued = [e for e in seen_target if not math.isfinite(e[3]) and math.isfinite(e[4])]
    add(min(rescued, key=lambda e: e[2]) if rescued else None, "missed by the input, shown by the output")
    missed = [e for e in seen_target if not math.isfinite(e[4])]
    add(min(missed, key=lambda e: e[2]) if missed else None, "missed by the output")
    if seen_target:
        ordered = sorted(seen_target, key=lambda e: e[2])
        add(ordered[len(ordered) // 2], "median gap width")
    if not chosen and pool:
        add(pool[0], "first gap")
    return chosen[:3]


def _crop_box(shape, centre, size) -> tuple[int, int, int]:
    h, w = shape
    size = min(size, h, w)
    x0 = int(round(centre[0] - size / 2))
    y0 = int(round(centre[1] - size / 2))
    return min(max(x0, 0), w - size), min(max(y0, 0), h - size), size


def gap_profiles(results: Sequence, path: Path) -> None:
    """Fig. 2: image crops around example gaps and the profiles across them."""
    examples = _examples(results)
    rows = ["input", "output", "target"]
    margin_l, gap_x, plot_w = 24, 14, 400
    row_h = CROP_PX + 120
    width = margin_l + 3 * (CROP_PX + gap_x) + (90 + plot_w + 250 if examples else 80)
    height = 70 + max(len(examples), 1) * row_h + (40 if not examples else 0)
    fig = Figure(width, height)
    fig.text(width / 2, 34, "Gap profiles (de Haan et al. 2019, Fig. 2)", size=TITLE + 0.1, ha="center", thickness=2)
    if not examples:
        # Still show the images: a centre crop of the first pair, as the paper's Fig. 2 does.
        res = results[0]
        h, w = res.images["target"].shape
        x0, y0, size = _crop_box((h, w), (w / 2, h / 2), 96)
        crop_t = res.images["target"][y0 : y0 + size, x0 : x0 + size]
        lo, hi = np.percentile(crop_t, [1, 99])
        fig.text(margin_l, 80, f"{res.name}: centre crop. No gaps to show: none were found or planted.", size=TEXT + 0.05)
        for c, row in enumerate(rows):
            fig.image(
                (margin_l + c * (CROP_PX + gap_x), 110, CROP_PX, CROP_PX),
                res.images[row][y0 : y0 + size, x0 : x0 + size],
                vmin=lo,
                vmax=hi,
                pixel_size_nm=res.pixel_size_nm,
                title=LABELS[row],
            )
        fig.save(path)
        return
    for r, (res, k, why) in enumerate(examples):
        top = 70 + r * row_h + 40
        g = res.gaps
        pa, pb = g.lines[k]
        centre = ((pa[0] + pb[0]) / 2, (pa[1] + pb[1]) / 2)
        d = math.hypot(pb[0] - pa[0], pb[1] - pa[1])
        x0, y0, size = _crop_box(res.images["target"].shape, centre, int(max(24, min(72, 2.5 * d))))
        crops = {row: res.images[row][y0 : y0 + size, x0 : x0 + size] for row in rows}
        lo, hi = np.percentile(crops["target"], [1, 99])
        gap = g.gaps[k]
        planted = f", true width {gap['width_nm']:.1f} nm" if "width_nm" in gap and res.gap_source == "truth" else ""
        fig.text(
            margin_l,
            top - 34,
            f"{chr(ord('a') + r)})  {res.name}: particles {gap['a']} and {gap['b']}{planted}  ({why})",
            size=TEXT + 0.05,
        )
        for c, row in enumerate(rows):
            left = margin_l + c * (CROP_PX + gap_x)
            panel = fig.image(
                (left, top, CROP_PX, CROP_PX),
                crops[row],
                vmin=lo,
                vmax=hi,
                pixel_size_nm=res.pixel_size_nm,
                title=LABELS[row],
            )
            panel.line(
                (pa[0] - x0, pa[1] - y0), (pb[0] - x0, pb[1] - y0), color=PALETTE["vermillion"], thickness=1
            )
        profiles: dict[str, GapProfile] = {row: g.profiles[row][k] for row in rows}
        spacing = g.sample_spacing_nm
        start = -PROFILE_EXTEND_PX * res.pixel_size_nm  # profiles begin one pixel before centre A
        n = profiles["target"].profile.size
        all_vals = np.concatenate([p.profile for p in profiles.values()])
        span = float(all_vals.max() - all_vals.min()) or 1.0
        ax = fig.axes(
            (margin_l + 3 * (CROP_PX + gap_x) + 80, top, plot_w, CROP_PX),
            xlim=(start, start + (n - 1) * spacing),
            ylim=(float(all_vals.min() - 0.05 * span), float(all_vals.max() + 0.12 * span)),
            xlabel="distance from particle centre (nm)",
            ylabel="intensity (target scale)",
        )
        ref = profiles["target"]
        ax.hline(ref.background + WIDTH_LEVEL * ref.peak, color=GREY, label="80% / 60% of target peak")
        ax.hline(ref.background + DETECTION_LEVEL * ref.peak, color=GREY)
        for row in rows:
            p = profiles[row]
            x = start + np.arange(p.profile.size) * spacing
            label = f"{LABELS[row].split(' ')[0]}: " + (f"{p.width_nm:.1f} nm" if p.detected else "no gap")
            ax.line(x, p.profile, color=COLORS[row], label=label)
            if p.detected and p.crossings is not None:
                level = p.background + WIDTH_LEVEL * p.peak
                ax.markers(start + np.array(p.crossings) * spacing, [level, level], color=COLORS[row], size=4)
        ax.legend(loc="outside right")
    fig.save(path)


# --------------------------------------------------------------------------------------------
# Fig. 3
# --------------------------------------------------------------------------------------------


def gap_histograms(results: Sequence, path: Path) -> None:
    """Fig. 3: histograms of gap-size errors (input vs output) and detection shares per row."""
    from zoo.evaluation.tables import pooled_gap_stats

    fig = Figure(1300, 680)
    fig.text(650, 34, "Gap sizes against the target (de Haan et al. 2019, Fig. 3)", size=TITLE + 0.1, ha="center", thickness=2)
    pixel = results[0].pixel_size_nm
    errors = {row: np.concatenate([res.gaps.errors_nm(row) for res in results]) for row in ("input", "output")}
    allerr = np.concatenate(list(errors.values()))
    reach = max(float(np.abs(allerr).max()) if allerr.size else 0.0, 2 * pixel)
    bin_w = pixel / 2
    nb = int(math.ceil(reach / bin_w)) + 1
    edges = (np.arange(-nb, nb + 1)) * bin_w
    counts = {row: np.histogram(e, bins=edges)[0] for row, e in errors.items()}
    top = max(1, max(int(c.max()) if c.size else 0 for c in counts.values()))
    ax = fig.axes(
        (110, 90, 520, 380),
        xlim=(float(edges[0]), float(edges[-1])),
        ylim=(0.0, top * 1.15),
        xlabel="gap width - target gap width (nm)",
        ylabel="number of gaps",
        title="gap-size error (gaps shown by both)",
    )
    # Side by side in each bin (input left, output right): overlaid bars would blend colours.
    for side, row in enumerate(("input", "output")):
        stats = pooled_gap_stats(results, row)
        err = stats.gap_size_error_nm
        label = f"{LABELS[row]}: n={stats.n_compared}, mean |err| " + (f"{err:.1f} nm" if math.isfinite(err) else "-")
        left = edges[:-1] + side * bin_w / 2
        ax.bars(left, left + bin_w / 2, counts[row], color=COLORS[row], alpha=0.85, label=label)
    ax.vline(0.0, color=BLACK, dashed=True)
    ax.legend(loc="below")

    rows = [r for r in ("nearest", "bicubic", "input", "output", "target") if r in results[0].table]
    undetected = [100 * pooled_gap_stats(results, r).undetected_gap_fraction for r in rows]
    invented = [100 * pooled_gap_stats(results, r).invented_gap_fraction for r in rows]
    finite = [v for v in undetected + invented if math.isfinite(v)]
    ymax = max(10.0, max(finite) * 1.2 if finite else 10.0)
    bx = fig.axes(
        (790, 90, 470, 380),
        xlim=(-0.6, len(rows) - 0.4),
        ylim=(0.0, ymax),
        ylabel="%",
        title="undetected gaps and invented gaps",
        xticks=[(k, LABELS[r].split(" (")[0]) for k, r in enumerate(rows)],
    )
    xs = np.arange(len(rows))
    und = np.nan_to_num(np.array(undetected, dtype=float))
    inv = np.nan_to_num(np.array(invented, dtype=float))
    bx.bars(xs - 0.38, xs - 0.02, und, color=PALETTE["blue"], alpha=0.85, label="undetected gaps (% of gaps)")
    bx.bars(xs + 0.02, xs + 0.38, inv, color=PALETTE["vermillion"], alpha=0.85, label="invented gaps (% of touching)")
    for k in range(len(rows)):
        for dx, v in ((-0.2, undetected[k]), (0.2, invented[k])):
            text = ("n/a" if not math.isfinite(v) else f"{v:.1f}" if v < 10 else f"{v:.0f}")
            bx.annotate(xs[k] + dx, (v if math.isfinite(v) else 0) + ymax * 0.02, text, ha="center", size=TEXT - 0.05)
    bx.legend(loc="below")
    ref = pooled_gap_stats(results, "target")
    fig.text(
        650,
        665,
        f"{ref.n_gaps} gaps and {ref.n_touching} touching pairs ({results[0].gap_source}), "
        f"{len(results)} image pair(s); bins {bin_w:g} nm (half a pixel).",
        size=TEXT,
        ha="center",
        color=GREY,
    )
    fig.save(path)


# --------------------------------------------------------------------------------------------
# Fig. 4
# --------------------------------------------------------------------------------------------


def _mean_curve(curves: Sequence[tuple[np.ndarray, np.ndarray]]):
    f0 = curves[0][0]
    same = [c for c in curves if c[0].shape == f0.shape and np.allclose(c[0], f0)]
    return f0, np.mean([c[1] for c in same], axis=0)


def spectra(results: Sequence, path: Path) -> None:
    """Fig. 4: radially averaged power spectra and single-image FRC curves."""
    fig = Figure(1300, 720)
    fig.text(650, 34, "Spatial frequencies (de Haan et al. 2019, Fig. 4)", size=TITLE + 0.1, ha="center", thickness=2)
    rows = [r for r in ("bicubic", "input", "output", "target") if r in results[0].spectra]
    pixel = results[0].pixel_size_nm
    lr_nyquist = 1 / (2 * 2 * pixel)
    curves = {r: _mean_curve([(res.spectra[r].frequency_per_nm, res.spectra[r].power) for res in results]) for r in rows}
    f_max = float(max(c[0][-1] for c in curves.values()))
    positive = np.concatenate([c[1][c[1] > 0] for c in curves.values()])
    lo = 10 ** math.floor(math.log10(max(float(positive.min()), float(positive.max()) * 1e-9)))
    hi = 10 ** math.ceil(math.log10(float(positive.max())))
    ax = fig.axes(
        (110, 90, 520, 380),
        xlim=(0.0, f_max),
        ylim=(lo, hi),
        logy=True,
        xlabel="spatial frequency (1/nm)",
        ylabel="power (target intensity^2 per pixel)",
        title="radially averaged power spectrum",
    )
    for r in rows:
        f, p = curves[r]
        ax.line(f, p, color=COLORS[r], dashed=(r == "bicubic"), label=LABELS[r])
    ax.vline(lr_nyquist, color=GREY, label=f"LR Nyquist (1/{1 / lr_nyquist:.1f} nm)")
    ax.legend(loc="below")

    native = results[0].input_is_native
    # With a native LR the interpolated rows share the LR's own FRC: draw it once.
    frc_rows = [r for r in rows if not (native and r == "bicubic")]
    fcurves = {
        r: _mean_curve([(res.frc[r].curve.frequency_per_nm, res.frc[r].curve.frc) for res in results])
        for r in frc_rows
    }
    limit_f = max(1 / results[0].frc[r].limit_nm for r in frc_rows)
    bx = fig.axes(
        (790, 90, 470, 380),
        xlim=(0.0, limit_f),
        ylim=(-0.2, 1.05),
        xlabel="spatial frequency (1/nm)",
        ylabel="FRC (checkerboard split)",
        title="single-image Fourier ring correlation",
    )
    bx.hline(FRC_THRESHOLD, color=PALETTE["vermillion"], label="threshold 1/7")
    for r in frc_rows:
        f, c = fcurves[r]
        res_nm = float(np.nanmean([res.frc[r].resolution_nm for res in results]))
        at_limit = all(res.frc[r].at_limit for res in results)
        tag = ("<= " if at_limit else "") + (f"{res_nm:.1f} nm" if math.isfinite(res_nm) else "n/a")
        label = "input (native LR)" if native and r == "input" else LABELS[r]
        bx.line(f, c, color=COLORS[r], dashed=(r == "bicubic"), label=f"{label}: {tag}")
    bx.vline(lr_nyquist, color=GREY)
    bx.legend(loc="below")
    fig.text(
        650,
        705,
        f"Averaged over {len(results)} pair(s); pixel {pixel:g} nm; grey dashed line: LR Nyquist frequency. "
        f"Checkerboard sub-images have sqrt(2) x the pixel size: FRC limit {1 / limit_f:.1f} nm.",
        size=TEXT,
        ha="center",
        color=GREY,
    )
    fig.save(path)
