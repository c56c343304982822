"""Before/after numbers of a fine-tune: Lanczos vs parent vs fine-tuned on held-out images.

The same scoring as ``semzoo evaluate`` (:mod:`zoo.evaluation`): PSNR and SSIM against the
registered HR after a least-squares intensity fit, over the pixels with HR data, and the gap
analysis of de Haan et al. 2019 (Methods, "Gap analysis") where truth.json knows the particles.
"""

from __future__ import annotations

from zoo.training.calibration import CalibrationPair

ROWS = ("lanczos", "parent", "finetuned")  # labels: zoo.evaluation.tables.ROW_LABELS


def compare(pair: CalibrationPair, parent, finetuned) -> tuple[dict, dict]:
    """Lanczos vs parent vs fine-tuned on one held-out image (as ``semzoo evaluate`` scores).

    PSNR/SSIM against the registered HR after a least-squares intensity fit, over the pixels
    with HR data; gap statistics (paper, Methods "Gap analysis") when the truth has particles.
    """
    from zoo.data.register import lanczos_upsample2x
    from zoo.evaluation.gaps import analyse_gaps
    from zoo.evaluation.quality import match_intensity, peak_signal_noise_ratio, structural_similarity
    from zoo.evaluation.report import no_data_mask
    from zoo.registry.export import enhance_whole_image

    valid = ~no_data_mask(pair.hr)
    images = {"lanczos": lanczos_upsample2x(pair.lr), "parent": enhance_whole_image(parent, pair.lr),
              "finetuned": enhance_whole_image(finetuned, pair.lr)}
    matched = {row: match_intensity(img, pair.hr, mask=valid) for row, img in images.items()}
    table = {row: {"psnr_db": peak_signal_noise_ratio(pair.hr, img, match_intensity=False, mask=valid),
                   "ssim": structural_similarity(pair.hr, img, match_intensity=False, mask=valid)}
             for row, img in matched.items()}
    gaps = {}
    truth = pair.truth or {}
    if truth.get("particles") and (truth.get("gaps") or truth.get("touching")):
        analysis = analyse_gaps({**matched, "target": pair.hr}, truth.get("gaps", []), truth["particles"],
                                touching=truth.get("touching", []), pixel_size_nm=pair.pixel_size_nm,
                                reference="target", match_intensity=False)
        gaps = {row: analysis.stats[row] for row in ROWS}
    return table, gaps


def pool(tables: list[dict], gaps: list[dict]) -> tuple[dict, dict]:
    """Mean PSNR/SSIM over held-out images; gap counts pooled (as ``semzoo evaluate`` does)."""
    from zoo.evaluation.gaps import GapStats
    from zoo.evaluation.tables import finite_mean, gap_row

    table, pooled_gaps = {}, {}
    for row in ROWS:
        table[row] = {k: finite_mean([t[row][k] for t in tables]) for k in ("psnr_db", "ssim")}
        stats = [g[row] for g in gaps if g]
        if stats:
            pooled_gaps[row] = GapStats.pooled(stats)
            table[row].update(gap_row(pooled_gaps[row]))
    return table, pooled_gaps
