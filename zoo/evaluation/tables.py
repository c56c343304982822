"""Tables of evaluation results: the rows and columns, pooling over pairs, formatting.

The columns are the paper's comparison (de Haan et al. 2019, Sci. Rep. 9, 12050: PSNR/SSIM, %
undetected gaps and gap-size error of Fig. 3) plus invented gaps and single-image FRC resolution.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from zoo.evaluation.gaps import GapStats

if TYPE_CHECKING:
    from zoo.evaluation.report import EvaluationResult

ROW_ORDER = ("nearest", "bicubic", "input", "output", "target")
ROW_LABELS = {
    "nearest": "nearest x2",
    "bicubic": "bicubic x2",
    "input": "input (Lanczos x2)",
    "output": "output",
    "target": "target",
    # the rows of a fine-tune's before/after table (zoo.training.finetune_metrics)
    "lanczos": "Lanczos x2",
    "parent": "parent",
    "finetuned": "fine-tuned",
}
COLUMNS = {
    "psnr_db": "PSNR (dB)",
    "ssim": "SSIM",
    "undetected_gaps_percent": "undetected gaps (%)",
    "gap_size_error_nm": "gap-size error (nm)",
    "invented_gaps_percent": "invented gaps (%)",
    "frc_resolution_nm": "FRC resolution (nm)",
}


def json_number(value: float | None) -> float | None:
    """A table's number for JSON: NaN (and None) as null, rounded to 4 decimals."""
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def json_table(table: Mapping[str, Mapping[str, float]]) -> dict:
    """The table with NaN as null and numbers rounded to 4 decimals, for JSON."""
    return {row: {col: json_number(v) for col, v in cols.items()} for row, cols in table.items()}


def gap_row(stats: GapStats) -> dict[str, float]:
    """The gap columns of one row."""
    return {
        "undetected_gaps_percent": 100 * stats.undetected_gap_fraction,
        "gap_size_error_nm": stats.gap_size_error_nm,
        "invented_gaps_percent": 100 * stats.invented_gap_fraction,
    }


def aggregate_table(results: Sequence[EvaluationResult]) -> dict[str, dict[str, float]]:
    """One table over several pairs.

    Gap columns pool the gaps of all pairs (undetected and invented fractions are counts over
    counts, the size error is averaged over all compared gaps); PSNR, SSIM and FRC resolution are
    means over the pairs. A row appears if every pair has it.
    """
    if not results:
        raise ValueError("no results to aggregate")
    rows = [r for r in ROW_ORDER if all(r in res.table for res in results)]
    table = {}
    for row in rows:
        pooled = pooled_gap_stats(results, row)
        means = {
            col: finite_mean([res.table[row][col] for res in results])
            for col in ("psnr_db", "ssim", "frc_resolution_nm")
        }
        merged = {**means, **gap_row(pooled)}
        table[row] = {col: merged[col] for col in COLUMNS}
    return table


def pooled_gap_stats(results: Sequence[EvaluationResult], row: str) -> GapStats:
    """The gap statistics of ``row`` over all pairs' gaps together."""
    return GapStats.pooled(res.gaps.stats[row] for res in results if row in res.gaps.stats)


def finite_mean(values: Sequence[float]) -> float:
    """The mean of the finite values (NaN if none): a pair without a number does not count."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def format_value(column: str, value: float, *, at_limit: bool = False) -> str:
    """A table cell: NaN -> an em dash; FRC at its limit -> '<= limit'."""
    if value is None or not math.isfinite(value):
        return "—"
    text = {
        "psnr_db": f"{value:.2f}",
        "ssim": f"{value:.4f}",
        "undetected_gaps_percent": f"{value:.1f}",
        "gap_size_error_nm": f"{value:.2f}",
        "invented_gaps_percent": f"{value:.1f}",
        "frc_resolution_nm": f"{value:.1f}",
    }[column]
    return f"≤ {text}" if at_limit else text


def frc_at_limit(results: Sequence[EvaluationResult], row: str) -> bool:
    """True when every pair's FRC for ``row`` stayed above threshold up to the method's limit."""
    flags = [res.frc[row].at_limit for res in results if row in res.frc]
    return bool(flags) and all(flags)


def markdown_table(table: Mapping[str, Mapping[str, float]], results: Sequence[EvaluationResult]) -> str:
    header = "| | " + " | ".join(COLUMNS.values()) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    lines = [header, rule]
    for row, cols in table.items():
        cells = [
            format_value(col, cols[col], at_limit=(col == "frc_resolution_nm" and frc_at_limit(results, row)))
            for col in COLUMNS
        ]
        lines.append(f"| {ROW_LABELS.get(row, row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_json(results: Sequence[EvaluationResult]) -> dict:
    """The numbers of a report: the aggregate table and every pair's own (NaN -> null)."""
    return {
        "pairs": len(results),
        "aggregate": json_table(aggregate_table(results)),
        "gaps": {row: pooled_gap_stats(results, row).to_dict() for row in aggregate_table(results)},
        "undetected_by_width": undetected_by_width(results),
        "undetected_by_input_sampling": undetected_by_input_sampling(results),
        "invented_by_contact": invented_by_contact(results),
        "per_pair": [res.to_dict() for res in results],
    }


def _undetected_in_classes(results: Sequence[EvaluationResult], classes: Sequence[Sequence[np.ndarray]]) -> dict:
    """Pooled undetected gaps per row and class: ``classes[c][i]`` selects the gaps of class
    ``c`` in ``results[i]``; an image's denominator is the gaps the target shows (its row's
    :meth:`GapAnalysis.considered`), as in :class:`GapStats`."""
    rows = [r for r in ROW_ORDER if all(r in res.gaps.widths_nm for res in results)]
    out = {}
    for row in rows:
        cells = []
        for masks in classes:
            n = missed = 0
            for res, mask in zip(results, masks):
                shown = np.isfinite(res.gaps.widths_nm[row])
                sel = mask & res.gaps.considered(row)
                n += int(sel.sum())
                missed += int((sel & ~shown).sum())
            cells.append({"n_gaps": n, "n_undetected": missed,
                          "percent": round(100 * missed / n, 2) if n else None})
        out[row] = cells
    return out


def undetected_by_width(results: Sequence[EvaluationResult]) -> dict | None:
    """Undetected gaps by their true width, pooled over the pairs; None without truth widths.

    Bins are set by the two pixel sizes at stake: narrower than the target's pixel, between the
    target's and the input's (2x) pixel, and wider than an input pixel: what a x2 network can
    be expected to recover lies in the middle bin. As in :class:`GapStats`, an image's
    denominator is the gaps the target shows; the target's own row counts all gaps in the bin.

    Returns ``{"edges_nm": [...], "rows": {row: [{"n_gaps", "n_undetected", "percent"}, ...]}}``.
    """
    if not results or any(r.gap_source != "truth" for r in results):
        return None
    widths = [np.array([g.get("width_nm", np.nan) for g in r.gaps.gaps], dtype=float) for r in results]
    if not all(w.size for w in widths) or not all(np.isfinite(w).all() for w in widths):
        return None
    px = results[0].pixel_size_nm
    edges = [0.0, px, 2 * px, math.inf]
    classes = [[(w >= lo) & (w < hi) for w in widths] for lo, hi in zip(edges[:-1], edges[1:])]
    return {"edges_nm": [round(e, 3) if math.isfinite(e) else None for e in edges],
            "rows": _undetected_in_classes(results, classes)}


def invented_by_contact(results: Sequence[EvaluationResult]) -> dict | None:
    """Invented gaps split by kind of contact, smaller diameter and overlap
    (:func:`zoo.evaluation.invented.invented_by_kind`), pooled over the pairs; None unless every
    pair has truth and some have touching pairs.

    Returns ``{group: {bin: {row: {"n_touching", "n_invented", "percent"}}}}`` for the groups
    ``kind``, ``size`` and ``overlap``; a row's denominator is the touching pairs the target
    shows touching (the target's own row: all of them), as in :class:`GapStats`.
    """
    from zoo.evaluation.invented import invented_by_kind

    if not results or any(r.gap_source != "truth" for r in results) or not any(r.gaps.touching for r in results):
        return None
    rows = [r for r in ROW_ORDER if all(r in res.gaps.touching_widths_nm for res in results)]
    table = invented_by_kind([r.gaps for r in results], rows)
    return {group: {label: {row: {"n_touching": m, "n_invented": n, "percent": round(100 * n / m, 2) if m else None}
                            for row, (n, m) in cells.items()}
                    for label, cells in bins.items()}
            for group, bins in table.items()}


def markdown_invented_by_contact(table: Mapping) -> str:
    """:func:`invented_by_contact` as one markdown table: a column per bin, a line per row."""
    from zoo.evaluation.invented import markdown_invented

    present = {row for bins in table.values() for cells in bins.values() for row in cells}
    counts = {group: {label: {row: (c["n_invented"], c["n_touching"]) for row, c in cells.items()}
                      for label, cells in bins.items()}
              for group, bins in table.items()}
    rows = [r for r in ROW_ORDER if r in present]
    return markdown_invented(counts, rows, {r: ROW_LABELS.get(r, r) for r in rows})


INPUT_SAMPLING_CLASSES = ("an input sample in the gap", "no input sample in the gap")


def undetected_by_input_sampling(results: Sequence[EvaluationResult]) -> dict | None:
    """Undetected gaps split by whether the input's sampling grid has a point in the gap.

    A gap with an input sample point in it (:func:`zoo.evaluation.gaps.input_sample_in_gap`)
    was measured by the input: a network should show it at least as often as Lanczos does. A
    gap without one falls between the input's samples and can only be inferred from the
    particles' shapes. None unless every pair has truth with LR coordinates.

    Returns ``{"classes": [...], "rows": {row: [{"n_gaps", "n_undetected", "percent"}, ...]}}``.
    """
    if not results or any(r.gap_input_sampled is None or not r.gap_input_sampled.size for r in results):
        return None
    sampled = [r.gap_input_sampled for r in results]
    return {"classes": list(INPUT_SAMPLING_CLASSES),
            "rows": _undetected_in_classes(results, [sampled, [~m for m in sampled]])}


def _markdown_class_table(heads: Sequence[str], rows: Mapping) -> str:
    lines = ["| image | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for row, cells in rows.items():
        text = [("—" if c["percent"] is None else f"{c['percent']:.1f}% ({c['n_undetected']}/{c['n_gaps']})")
                for c in cells]
        lines.append(f"| {ROW_LABELS.get(row, row)} | " + " | ".join(text) + " |")
    return "\n".join(lines)


def markdown_undetected_by_input_sampling(table: Mapping) -> str:
    """:func:`undetected_by_input_sampling` as a markdown table (percent, with the counts)."""
    return _markdown_class_table(table["classes"], table["rows"])


def markdown_undetected_by_width(table: Mapping) -> str:
    """:func:`undetected_by_width` as a markdown table (percent, with the counts)."""
    e = table["edges_nm"]
    return _markdown_class_table([f"< {e[1]:g} nm", f"{e[1]:g}–{e[2]:g} nm", f"≥ {e[2]:g} nm"], table["rows"])
