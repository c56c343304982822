"""Before/after numbers of a fine-tune: Lanczos vs parent vs fine-tuned on held-out images.

The same scoring as ``semzoo evaluate`` (:mod:`zoo.evaluation`): PSNR and SSIM against the
registered HR after a least-squares intensity fit, over the pixels with HR data, and the gap
analysis of de Haan et al. 2019 (Methods, "Gap analysis") where truth.json knows the particles.
"""

from __future__ import annotations

import math
from typing import Mapping

from zoo.training.calibration import CalibrationPair, pooled

ROWS = ("lanczos", "parent", "finetuned")
ROW_LABELS = {"lanczos": "Lanczos x2", "parent": "parent", "finetuned": "fine-tuned"}


def json_number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def json_table(table: Mapping[str, Mapping[str, float]]) -> dict:
    return {row: {k: json_number(v) for k, v in cols.items()} for row, cols in table.items()}


def enhance_whole_image(generator, lr):
    """The generator on a whole normalised LR image (mirror-padded to its divisor, as served)."""
    import numpy as np

    from zoo.data.patches import normalise
    from zoo.nets.generator import DIVISOR
    from zoo.registry.export import pad_to_multiple

    h, w = lr.shape
    x = normalise(lr)[0][None, :, :, None]
    y = generator(pad_to_multiple(x, DIVISOR), training=False)
    return np.asarray(y)[0, : 2 * h, : 2 * w, 0]


def compare(pair: CalibrationPair, parent, finetuned) -> tuple[dict, dict]:
    """Lanczos vs parent vs fine-tuned on one held-out image (as ``semzoo evaluate`` scores).

    PSNR/SSIM against the registered HR after a least-squares intensity fit, over the pixels
    with HR data; gap statistics (paper, Methods "Gap analysis") when the truth has particles.
    """
    from zoo.data.register import lanczos_upsample2x
    from zoo.evaluation.gaps import analyse_gaps
    from zoo.evaluation.quality import match_intensity, peak_signal_noise_ratio, structural_similarity
    from zoo.evaluation.report import no_data_mask

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


def pool_stats(stats: list):
    """Gap statistics of several images together: counts summed, size error weighted."""
    from zoo.evaluation.gaps import GapStats

    compared = sum(st.n_compared for st in stats)
    err = (sum(st.gap_size_error_nm * st.n_compared for st in stats if st.n_compared) / compared
           if compared else math.nan)
    return GapStats(n_gaps=sum(st.n_gaps for st in stats), n_undetected=sum(st.n_undetected for st in stats),
                    n_compared=compared, gap_size_error_nm=err,
                    n_touching=sum(st.n_touching for st in stats), n_invented=sum(st.n_invented for st in stats))


def pool(tables: list[dict], gaps: list[dict]) -> tuple[dict, dict]:
    """Mean PSNR/SSIM over held-out images; gap counts pooled (as ``semzoo evaluate`` does)."""
    from zoo.evaluation.tables import gap_row

    table, pooled_gaps = {}, {}
    for row in ROWS:
        table[row] = {k: pooled([t[row][k] for t in tables]) for k in ("psnr_db", "ssim")}
        stats = [g[row] for g in gaps if g]
        if stats:
            pooled_gaps[row] = pool_stats(stats)
            table[row].update(gap_row(pooled_gaps[row]))
    return table, pooled_gaps
