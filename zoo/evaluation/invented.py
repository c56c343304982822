"""Invented gaps by kind of contact: which touching pairs an image shows apart.

:func:`zoo.evaluation.gaps.analyse_gaps` counts, per image, the touching pairs it shows apart
(a gap detected by the paper's 60% rule on the centre-to-centre profile) among those the target
shows touching. Here those counts are split by the contact's kind, as issue 14 asks:

* ``kind``: ``sphere`` / ``neck`` / ``facet`` (the isolated pairs of :mod:`zoo.sim.touching`) or
  ``aggregate`` (spheres touching inside an aggregate; every contact of a truth.json without
  kinds, i.e. today's sets, counts as one);
* ``size``: the smaller particle's diameter, in :data:`SIZE_BINS_NM`;
* ``overlap``: overlap depth as a share of the smaller radius (the record's ``overlap_fraction``,
  else ``(ra + rb - d) / min(ra, rb)`` from the particles), in :data:`OVERLAP_BINS`.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from zoo.evaluation.gaps import GapAnalysis

SIZE_BINS_NM = (0.0, 15.0, 40.0, math.inf)
OVERLAP_BINS = (-math.inf, 0.05, 0.10, math.inf)
KIND_ORDER = ("aggregate", "sphere", "neck", "facet")


def _bin_label(edges: Sequence[float], value: float, unit: str, scale: float = 1.0) -> str:
    """The label of the bin of ``edges`` that holds ``value``: "lo-hi", "< hi" or ">= lo"."""
    k = int(np.searchsorted(edges, value, side="right")) - 1
    k = min(max(k, 0), len(edges) - 2)
    lo, hi = edges[k], edges[k + 1]
    if not math.isfinite(lo):
        return f"< {hi * scale:g}{unit}"
    if not math.isfinite(hi):
        return f">= {lo * scale:g}{unit}"
    return f"{lo * scale:g}-{hi * scale:g}{unit}"


def _labels(edges: Sequence[float], unit: str, scale: float = 1.0) -> list[str]:
    """Every bin's label, in order."""
    return [_bin_label(edges, lo if math.isfinite(lo) else hi - 1.0, unit, scale)
            for lo, hi in zip(edges[:-1], edges[1:])]


def contact_groups(record: Mapping, particles: Mapping, pixel_size_nm: float) -> dict[str, str]:
    """``{"kind": ..., "size": ..., "overlap": ...}`` for one touching-pair record;
    ``particles`` is ``{id: (x_px, y_px, radius_nm)}`` (:func:`~zoo.evaluation.gaps.particle_table`)."""
    xa, ya, ra = particles[record["a"]]
    xb, yb, rb = particles[record["b"]]
    small = min(ra, rb)
    overlap = record.get("overlap_fraction")
    if overlap is None:
        d = math.hypot(xb - xa, yb - ya) * pixel_size_nm
        overlap = (ra + rb - d) / small if small > 0 else 0.0
    return {
        "kind": str(record.get("kind", "aggregate")),
        "size": _bin_label(SIZE_BINS_NM, 2 * small, " nm"),
        "overlap": _bin_label(OVERLAP_BINS, float(overlap), "%", 100.0),
    }


def invented_by_kind(analyses: Sequence[GapAnalysis], rows: Sequence[str] | None = None) -> dict:
    """Pool several pairs' analyses: ``{group: {bin: {row: (n_invented, n_considered)}}}`` for
    the groups ``kind``, ``size`` and ``overlap``. A row's considered pairs are those the
    reference shows touching (all of them for the reference itself), as in
    :class:`~zoo.evaluation.gaps.GapStats`."""
    if not analyses:
        return {}
    rows = list(rows or analyses[0].touching_widths_nm)
    out: dict[str, dict[str, dict[str, list[int]]]] = {
        "kind": {k: {} for k in KIND_ORDER},
        "size": {k: {} for k in _labels(SIZE_BINS_NM, " nm")},
        "overlap": {k: {} for k in _labels(OVERLAP_BINS, "%", 100.0)},
    }
    for analysis in analyses:
        groups = [contact_groups(r, analysis.particles, analysis.pixel_size_nm) for r in analysis.touching]
        for row in rows:
            apart = np.isfinite(analysis.touching_widths_nm[row])
            considered = analysis.considered_touching(row)
            for k, g in enumerate(groups):
                if not considered[k]:
                    continue
                for group, label in g.items():
                    cell = out[group].setdefault(label, {}).setdefault(row, [0, 0])
                    cell[0] += int(apart[k])
                    cell[1] += 1
    return {group: {label: {row: tuple(v) for row, v in cells.items()} for label, cells in bins.items() if cells}
            for group, bins in out.items()}


def markdown_invented(table: Mapping, rows: Sequence[str], labels: Mapping[str, str] | None = None) -> str:
    """:func:`invented_by_kind` as one markdown table: a column per bin, a line per row,
    each cell ``share (invented/considered)``."""
    labels = dict(labels or {})
    cols = [(group, label) for group, bins in table.items() for label in bins]
    head = "| | " + " | ".join(f"{group}: {label}" for group, label in cols) + " |"
    lines = [head, "|---|" + "---:|" * len(cols)]
    for row in rows:
        cells = []
        for group, label in cols:
            n, m = table[group][label].get(row, (0, 0))
            cells.append(f"{100 * n / m:.1f}% ({n}/{m})" if m else "—")
        lines.append(f"| {labels.get(row, row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
