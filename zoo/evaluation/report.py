"""The evaluation of de Haan et al. 2019 as one call, and its report (report.md + PNG figures).

:func:`evaluate` compares a network output with its input and target on the target's grid:
PSNR and SSIM after intensity matching, the paper's gap analysis (Methods, "Gap analysis";
Fig. 3), radially averaged power spectra (Fig. 4) and single-image FRC resolution, with baseline
rows for plain interpolation. :func:`write_report` writes the table, the figures (Figs. 2-4 of the
paper, redrawn for this data) and the numbers as JSON.

Grid convention: ``output`` and ``target`` share one grid (the *evaluation grid*, e.g. the
registered HR from ``semzoo prepare``). ``input`` is either the native LR (half the target's size
in each direction: it is upsampled with Lanczos for the "input" row, exactly as the network's
first layer does, and nearest/bicubic baselines are added) or already on the evaluation grid (it
then *is* the Lanczos baseline).
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from zoo.atomic import atomic_dir, default_mode
from zoo.errors import UserError
from zoo.evaluation.gaps import GapAnalysis, analyse_gaps, gaps_with_input_sample
from zoo.evaluation.particles import find_gaps
from zoo.evaluation.quality import (
    baseline_upsample,
    match_intensity,
    peak_signal_noise_ratio,
    structural_similarity,
)
from zoo.evaluation.spectra import FRCResult, PowerSpectrum, frc_resolution, radial_power_spectrum
from zoo.evaluation.tables import (
    COLUMNS,
    ROW_LABELS,
    ROW_ORDER,
    aggregate_table,
    format_value,
    gap_row,
    invented_by_contact,
    json_table,
    markdown_invented_by_contact,
    markdown_table,
    markdown_undetected_by_input_sampling,
    markdown_undetected_by_width,
    pooled_gap_stats,
    results_json,
    undetected_by_input_sampling,
    undetected_by_width,
)

SCALE = 2
FIGURES = {
    "closeups": "fig1_closeups.png",
    "gap_profiles": "fig2_gap_profiles.png",
    "gap_histograms": "fig3_gap_sizes.png",
    "spectra": "fig4_spectra.png",
}


@dataclass
class EvaluationResult:
    """Everything :func:`evaluate` measured for one input/output/target triple.

    ``table[row][column]`` holds the numbers (NaN: not applicable), rows in :data:`ROW_ORDER`
    among those present and columns as in :data:`COLUMNS`. ``images`` are the rows' images on the
    evaluation grid, mapped onto the target's intensities (for figures). ``gap_input_sampled[k]``
    says whether an input sample point lies in gap ``gaps.gaps[k]``
    (:func:`zoo.evaluation.gaps.input_sample_in_gap`); None without truth LR coordinates.
    """

    name: str
    pixel_size_nm: float
    input_is_native: bool
    table: dict[str, dict[str, float]]
    gaps: GapAnalysis
    gap_source: str
    spectra: dict[str, PowerSpectrum]
    frc: dict[str, FRCResult]
    images: dict[str, np.ndarray] = field(repr=False)
    no_data_pixels: int = 0
    sources: dict[str, str] = field(default_factory=dict)
    gap_input_sampled: np.ndarray | None = field(default=None, repr=False)

    @property
    def rows(self) -> list[str]:
        return list(self.table)

    def to_dict(self) -> dict:
        """JSON-serialisable numbers (NaN -> null)."""
        return {
            "name": self.name,
            "pixel_size_nm": self.pixel_size_nm,
            "input_is_native_lr": self.input_is_native,
            "gap_source": self.gap_source,
            "sources": self.sources,
            "table": json_table(self.table),
            "frc_at_limit": {row: self.frc[row].at_limit for row in self.frc},
            "frc_limit_nm": {row: self.frc[row].limit_nm for row in self.frc},
            "gaps": {row: stats.to_dict() for row, stats in self.gaps.stats.items()},
            "gaps_skipped": self.gaps.skipped,
            "no_data_pixels": self.no_data_pixels,
        }


def _as_image(array, what: str) -> np.ndarray:
    img = np.asarray(array)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim != 2:
        raise UserError(f"the {what} image must be 2-D (grey-scale); got shape {img.shape}")
    img = img.astype(np.float32)
    if not np.all(np.isfinite(img)):
        raise UserError(f"the {what} image contains NaN or infinite values")
    return img


def no_data_mask(target: np.ndarray, *, max_fraction: float = 0.2) -> np.ndarray:
    """Pixels of ``target`` without data: exact zeros connected to the image border.

    ``semzoo prepare`` marks the parts of the registered grid that the HR does not cover with 0.
    A larger zero region than ``max_fraction`` of the image is taken to be real (clipped) image
    content instead, and nothing is masked.
    """
    from scipy import ndimage

    zero = np.asarray(target) == 0
    if not zero.any():
        return zero
    labels, _ = ndimage.label(zero)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    missing = np.isin(labels, edge[edge > 0])
    if missing.mean() > max_fraction:
        return np.zeros_like(zero)
    return missing


def evaluate(
    input: np.ndarray,
    output: np.ndarray,
    target: np.ndarray,
    *,
    pixel_size_nm: float,
    truth: Mapping | None = None,
    baselines: Sequence[str] | None = None,
    name: str = "pair",
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationResult:
    """Evaluate a super-resolved ``output`` against ``target`` as in de Haan et al. 2019.

    Parameters
    ----------
    input : (h, w) or (H, W) array
        The network's input: native LR (h, w) = (H/2, W/2), or already on the target's grid.
    output, target : (H, W) array
        The network's output and the high-resolution acquisition, on one grid.
    pixel_size_nm : float
        Pixel size of the evaluation grid (the target's).
    truth : mapping, optional
        One pair of truth.json (``particles`` with ``x_hr, y_hr, radius_nm``; ``gaps``;
        ``touching``) on the evaluation grid. Without it particles and gaps are found in the
        target (:func:`zoo.evaluation.gaps.find_gaps`).
    baselines : sequence of {"nearest", "bicubic"}, optional
        Interpolation rows; default both when ``input`` is the native LR, none otherwise (they
        need the LR).
    name : str, optional
        Name of the pair, for reports.

    Returns
    -------
    EvaluationResult
        Rows nearest/bicubic (if any), input (= Lanczos x2), output and target; columns PSNR and
        SSIM against the target after least-squares intensity matching, % undetected gaps,
        gap-size error (mean |width - target width| in nm over gaps both show), % invented gaps
        (touching pairs shown apart) and single-image FRC resolution in nm.
    """
    tgt = _as_image(target, "target")
    out = _as_image(output, "output")
    inp = _as_image(input, "input")
    if not pixel_size_nm or not pixel_size_nm > 0:
        raise UserError("the pixel size of the evaluation grid is unknown: pass --pixel-size")
    if out.shape != tgt.shape:
        raise UserError(
            f"output {out.shape[1]}x{out.shape[0]} and target {tgt.shape[1]}x{tgt.shape[0]} "
            "must be on the same grid (same size)"
        )
    if min(tgt.shape) < 16:
        raise UserError(f"the target is {tgt.shape[1]}x{tgt.shape[0]} pixels: too small to evaluate")
    native = inp.shape != tgt.shape
    if native and (SCALE * inp.shape[0], SCALE * inp.shape[1]) != tgt.shape:
        raise UserError(
            f"input is {inp.shape[1]}x{inp.shape[0]}, target {tgt.shape[1]}x{tgt.shape[0]}: the "
            f"input must be on the target's grid or exactly 1/{SCALE} of its size (native LR)"
        )
    if baselines is None:
        baselines = ("nearest", "bicubic") if native else ()
    for method in baselines:
        if method not in ("nearest", "bicubic"):
            raise UserError(f"unknown baseline {method!r}; choose nearest or bicubic")
    if baselines and not native:
        raise UserError("nearest/bicubic baselines need the native LR as input (half the target's size)")

    rows: dict[str, np.ndarray] = {}
    for method in ROW_ORDER:
        if method in baselines:
            rows[method] = baseline_upsample(inp, method, scale=SCALE)
    rows["input"] = baseline_upsample(inp, "lanczos", scale=SCALE) if native else inp
    rows["output"] = out
    rows["target"] = tgt
    missing = no_data_mask(tgt)
    valid = None if not missing.any() else ~missing
    # One intensity scale for everything below: the target's (least-squares affine fit).
    matched = {
        row: (img if row == "target" else match_intensity(img, tgt, mask=valid).astype(np.float32))
        for row, img in rows.items()
    }

    steps = 2 * len(rows) + 1
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, steps)

    table: dict[str, dict[str, float]] = {row: {} for row in rows}
    for row, img in matched.items():
        if row == "target":
            table[row].update(psnr_db=math.nan, ssim=math.nan)
        else:
            table[row]["psnr_db"] = peak_signal_noise_ratio(tgt, img, match_intensity=False, mask=valid)
            table[row]["ssim"] = structural_similarity(tgt, img, match_intensity=False, mask=valid)
        tick()

    if truth is not None:
        source = "truth"
        pair = truth
    else:
        source = "found in the target"
        pair = find_gaps(tgt, pixel_size_nm=pixel_size_nm)
    try:
        gaps = analyse_gaps(
            matched,
            pair.get("gaps", []),
            pair.get("particles", []),
            touching=pair.get("touching", []),
            pixel_size_nm=pixel_size_nm,
            reference="target",
            match_intensity=False,
        )
    except ValueError as exc:
        raise UserError(f"truth for {name}: {exc}") from None
    tick()
    for row in rows:
        table[row].update(gap_row(gaps.stats[row]))
    sampled = None
    if truth is not None:  # clear of the particles by one probe FWHM when truth gives it
        sampled = gaps_with_input_sample(gaps.gaps, pair.get("particles", []), lr_pixel_size_nm=SCALE * pixel_size_nm,
                                         clearance_nm=float(pair.get("probe_fwhm_nm") or 0.0))

    spectra, frc = {}, {}
    # Interpolation copies each LR pixel into its neighbours, so the checkerboard halves of an
    # upsampled image share their noise and the FRC would report the interpolation, not the
    # data: the rows made from the native LR get the FRC of the LR itself.
    lr_frc = frc_resolution(inp, pixel_size_nm=SCALE * pixel_size_nm) if native else None
    for row, img in matched.items():
        spectra[row] = radial_power_spectrum(img, pixel_size_nm=pixel_size_nm)
        if lr_frc is not None and row in ("nearest", "bicubic", "input"):
            frc[row] = lr_frc
        else:
            frc[row] = frc_resolution(img, pixel_size_nm=pixel_size_nm)
        table[row]["frc_resolution_nm"] = frc[row].resolution_nm
        tick()
    table = {row: {col: table[row][col] for col in COLUMNS} for row in table}
    return EvaluationResult(
        name=name,
        pixel_size_nm=float(pixel_size_nm),
        input_is_native=native,
        table=table,
        gaps=gaps,
        gap_source=source,
        spectra=spectra,
        frc=frc,
        images=matched,
        no_data_pixels=int(missing.sum()),
        gap_input_sampled=sampled,
    )


# --------------------------------------------------------------------------------------------
# The report directory
# --------------------------------------------------------------------------------------------


def write_report(
    results: EvaluationResult | Sequence[EvaluationResult],
    report_dir: str | Path,
    *,
    overwrite: bool = False,
    title: str = "Super-resolution evaluation",
) -> Path:
    """Write report.md, results.json and the figures (paper Figs. 2-4) into ``report_dir``.

    The directory is built next to its destination and moved into place when complete, so a
    failure leaves no partial report; an existing non-empty ``report_dir`` is replaced only with
    ``overwrite=True``.
    """
    from zoo.evaluation import figures

    results = [results] if isinstance(results, EvaluationResult) else list(results)
    if not results:
        raise ValueError("no results to report")
    report_dir = Path(report_dir)
    if report_dir.exists() and not report_dir.is_dir():
        raise UserError(f"{report_dir} exists and is not a directory")
    if report_dir.is_dir() and any(report_dir.iterdir()) and not overwrite:
        raise UserError(f"{report_dir} exists and is not empty; pass --overwrite to replace it")
    with report_folder(report_dir) as tmp:
        closeups_figure(results[0], tmp / FIGURES["closeups"])
        figures.gap_profiles(results, tmp / FIGURES["gap_profiles"])
        figures.gap_histograms(results, tmp / FIGURES["gap_histograms"])
        figures.spectra(results, tmp / FIGURES["spectra"])
        (tmp / "results.json").write_text(json.dumps(results_json(results), indent=2) + "\n")
        (tmp / "report.md").write_text(_markdown(results, title))
    return report_dir


def closeups_figure(result: EvaluationResult, path: Path, *, count: int = 3) -> None:
    """Fig. 1: :func:`zoo.client.closeups.closeup_figure` of one result, with the target as
    truth and the profiles along the target's gap lines where output and Lanczos differ most."""
    import cv2

    from zoo.client.closeups import closeup_figure, line_difference

    lanczos, output = result.images["input"], result.images["output"]
    truth_lines = list(result.gaps.lines)
    truth_lines.sort(key=lambda line: -line_difference(lanczos, output, line))
    canvas, _ = closeup_figure(lanczos, output, left="input (Lanczos x2)", right="output",
                               truth=result.images["target"], lines=truth_lines[:count] or None,
                               pixel_size_nm=result.pixel_size_nm,
                               title=f"{result.name}: Lanczos x2 vs output vs target")
    if not cv2.imwrite(str(path), canvas, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {path}")


@contextlib.contextmanager
def report_folder(report_dir: Path):
    """A hidden sibling folder to write a report into; it replaces ``report_dir`` when the block
    ends without an error, and is removed otherwise, so no partial report is ever left."""
    report_dir.parent.mkdir(parents=True, exist_ok=True)
    # mkdtemp makes it private; a report is for sharing
    with atomic_dir(report_dir, mode=default_mode(directory=True)) as tmp:
        yield tmp


def _markdown(results: Sequence[EvaluationResult], title: str) -> str:
    first = results[0]
    table = aggregate_table(results)
    limit = first.frc["target"].limit_nm
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    gaps_total = {row: pooled_gap_stats(results, row) for row in table}
    ref_stats = gaps_total["target"]
    lines = [
        f"# {title}",
        "",
        f"{len(results)} image pair(s), evaluated on the target's grid at "
        f"{first.pixel_size_nm:g} nm/pixel; {now}.",
        f"Input: {'native LR, upsampled x2 with Lanczos (the network’s own first layer)' if first.input_is_native else 'already on the target grid (the Lanczos baseline)'}.",
        f"Gaps: {ref_stats.n_gaps} gaps and {ref_stats.n_touching} touching pairs, "
        f"{'from truth.json' if first.gap_source == 'truth' else 'found in the target (no truth.json): bright round particles and their near neighbours, which suits particles on a darker support (gold on carbon) and means little for other specimens'}.",
        "",
        "## Results" + (" (all pairs)" if len(results) > 1 else ""),
        "",
        markdown_table(table, results),
        "",
        "- **PSNR / SSIM**: against the target, after mapping each image onto the target's "
        "intensities with a least-squares affine fit (gain and offset); SSIM with Gaussian "
        "weights, sigma 1.5 (Wang et al. 2004). Target pixels without data (zeros at the border "
        "of a registered target) are left out"
        + (f" ({sum(r.no_data_pixels for r in results)} pixels here)." if any(r.no_data_pixels for r in results) else "."),
        "- **Undetected gaps**: share of the gaps shown by the target that an image does not "
        "show, as the paper counted them (the target row: share of all "
        + ("planted gaps the target itself does not show, i.e. gaps too narrow for the target's own resolution). " if first.gap_source == "truth" else "gaps found in the target, zero by construction). ")
        + "Gap analysis as in de Haan et al. 2019 (Methods): along a 3-pixel-wide profile from "
        "particle centre to particle centre (one pixel beyond each), a gap is detected if the "
        "lowest point between the particles is below 60% of the particles' peak (the lower of "
        "the two peaks), and its width is the distance between the points where the intensity "
        "falls below 80% of that peak, interpolated between samples.",
        "- **Gap-size error**: mean |gap width - target's gap width| over the gaps both show.",
        "- **Invented gaps**: share of touching particle pairs (no gap in the specimen; those the "
        "target shows touching) that an image shows apart: structure that is not there"
        + (" (the target row: touching pairs the target itself shows apart)." if first.gap_source == "truth" else "; without truth, 'touching' means near neighbours the target shows without a gap."),
        f"- **FRC resolution**: single-image Fourier ring correlation (checkerboard split, 1/7 "
        f"threshold; Koho et al., Nat. Commun. 10, 3103, 2019). The checkerboard sub-images "
        f"have sqrt(2) x the pixel size, so the finest measurable value is {limit:.1f} nm; '≤' "
        "marks images that are at that limit. The method assumes independent noise in "
        "neighbouring pixels. Interpolation breaks that, so "
        + (
            "the rows made from the native LR (nearest, bicubic, input) show the FRC of the LR "
            f"itself, at its own pixel size (limit {first.frc['input'].limit_nm:.1f} nm). "
            if first.input_is_native
            else "the input, given already on the target grid, shows the FRC of an interpolated "
            "image: read it as its band limit. "
        )
        + "A network output's noise is not independent between pixels either: its FRC measures "
        "the band limit of what the network drew, not a noise-limited resolution.",
        "",
    ]
    split_tables = [
        ("Undetected gaps by true width", undetected_by_width(results), markdown_undetected_by_width,
         "Gaps binned by their width in the specimen (truth.json): narrower than a target "
         "pixel, between a target and an input pixel (what a x2 network can be expected to "
         "recover), wider than an input pixel. Denominators as in the table above."),
        ("Undetected gaps by input sampling", undetected_by_input_sampling(results),
         markdown_undetected_by_input_sampling,
         "A gap has an input sample in it when a point of the input's pixel grid lies between "
         "the two particles, clear of both by the probe's FWHM (when truth.json gives it), "
         "within half an input pixel of the line joining their centres (truth.json's LR "
         "coordinates): the input measured that gap, so a network should show it at least as "
         "often as Lanczos. The other gaps fall between the input's samples; an output shows "
         "them only by inferring them from the particles' shapes. Denominators as in the table "
         "above."),
        ("Invented gaps by kind of contact", invented_by_contact(results), markdown_invented_by_contact,
         "Touching pairs (truth.json) that an image shows apart, split by the contact's kind "
         "(aggregate: spheres touching inside an aggregate; sphere, neck, facet: the isolated "
         "contact pairs of the hard-contacts and paper-calibrated sets), the smaller particle's "
         "diameter and the overlap depth as a share of the smaller radius. Denominators: the "
         "touching pairs the target shows touching (the target row: all of them)."),
    ]
    for title, table, as_markdown, text in split_tables:
        if table is not None:
            lines += [f"## {title}", "", as_markdown(table), "", text, ""]
    lines += [
        "## Figures",
        "",
        f"![Close-ups]({FIGURES['closeups']})",
        "",
        f"Fig. 1 ({results[0].name}): the output's full field small; crops at full resolution "
        "(x2) of Lanczos, output and target where the output differs most from Lanczos (mean "
        "|output - Lanczos| over the crop, largest first, not overlapping); profiles across the "
        "target's gaps where output and Lanczos differ most along the line (dashed: Lanczos, "
        "solid: output, dotted: target).",
        "",
        f"![Gap profiles]({FIGURES['gap_profiles']})",
        "",
        "Fig. 2 (as in the paper): crops of input, output and target around example gaps, and "
        "intensity profiles along the marked lines (dots: the 80% crossings that give the width). "
        "Examples: the narrowest gap that the output shows and the input misses, a gap the "
        "output misses (if any), and the gap of median width.",
        "",
        f"![Gap sizes]({FIGURES['gap_histograms']})",
        "",
        "Fig. 3: gap-size errors against the target for the gaps both show, and the share of "
        "undetected gaps and invented gaps per image.",
        "",
        f"![Spectra]({FIGURES['spectra']})",
        "",
        "Fig. 4: radially averaged power spectra (Hann window; all images on the target's "
        "intensity scale) and single-image FRC curves, averaged over the pairs.",
        "",
    ]
    if len(results) > 1:
        lines += ["## Per pair", ""]
        header = "| pair | row | " + " | ".join(COLUMNS.values()) + " |"
        lines += [header, "|---|---|" + "---:|" * len(COLUMNS)]
        for res in results:
            for row, cols in res.table.items():
                cells = [
                    format_value(
                        col, cols[col], at_limit=(col == "frc_resolution_nm" and res.frc[row].at_limit)
                    )
                    for col in COLUMNS
                ]
                lines.append(f"| {res.name} | {ROW_LABELS[row]} | " + " | ".join(cells) + " |")
        lines.append("")
    if any(res.sources for res in results):
        lines += ["## Files", ""]
        for res in results:
            for role, path in res.sources.items():
                lines.append(f"- {res.name} {role}: `{path}`")
        lines.append("")
    return "\n".join(lines)
