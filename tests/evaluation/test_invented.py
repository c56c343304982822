"""Invented gaps by kind (zoo.evaluation.invented) on constructed images with known counts."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.evaluation.gaps import analyse_gaps
from zoo.evaluation.invented import contact_groups, invented_by_kind, markdown_invented

PIXEL_NM = 2.0


def _scene():
    """Eight touching pairs on a 2 nm grid, one per 80-px cell: kinds, diameters and overlaps
    known; the output cuts a dark line through the contact of pairs 1, 2 and 5."""
    specs = [  # (kind, radius a nm, radius b nm, overlap fraction)
        ("sphere", 6.0, 20.0, 0.02), ("sphere", 25.0, 25.0, 0.15), ("neck", 6.0, 20.0, 0.07),
        ("neck", 30.0, 20.0, 0.12), ("facet", 25.0, 30.0, 0.03), ("facet", 10.0, 40.0, 0.18),
        (None, 25.0, 30.0, 0.08), (None, 40.0, 40.0, 0.01),
    ]
    cell = 80
    h, w = cell * 2, cell * 4
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    target = np.full((h, w), 0.2)
    output = target.copy()
    particles, touching = [], []
    for k, (kind, ra, rb, o) in enumerate(specs):
        cx, cy = (k % 4) * cell + cell / 2, (k // 4) * cell + cell / 2
        d = (ra + rb - o * min(ra, rb)) / PIXEL_NM
        xa, xb = cx - d / 2, cx + d / 2
        inside = (np.hypot(xx - xa, yy - cy) <= ra / PIXEL_NM) | (np.hypot(xx - xb, yy - cy) <= rb / PIXEL_NM)
        target[inside] = 1.0
        output[inside] = 1.0
        if k in (1, 2, 5):  # a dark cut through the contact
            contact = xa + (ra / PIXEL_NM) - o * min(ra, rb) / PIXEL_NM / 2
            output[inside & (np.abs(xx - contact) < 1.0)] = 0.2
        particles += [{"id": 2 * k, "x_hr": xa, "y_hr": cy, "radius_nm": ra},
                      {"id": 2 * k + 1, "x_hr": xb, "y_hr": cy, "radius_nm": rb}]
        rec = {"a": 2 * k, "b": 2 * k + 1}
        if kind is not None:
            rec.update(kind=kind, overlap_fraction=o)
        touching.append(rec)
    return {"target": target, "output": output}, particles, touching


def test_invented_gaps_are_counted_by_kind_size_and_overlap():
    images, particles, touching = _scene()
    analysis = analyse_gaps(images, [], particles, touching=touching, pixel_size_nm=PIXEL_NM, match_intensity=False)
    assert analysis.stats["output"].n_invented == 3 and analysis.stats["target"].n_invented == 0
    table = invented_by_kind([analysis, analysis])  # pooled over two "pairs"
    kind = table["kind"]
    assert kind["sphere"]["output"] == (2, 4) and kind["neck"]["output"] == (2, 4)
    assert kind["facet"]["output"] == (2, 4) and kind["aggregate"]["output"] == (0, 4)
    assert all(cells["target"][0] == 0 for cells in kind.values())
    size = table["size"]  # smaller diameters 12, 50, 12, 40, 50, 20, 50, 80 nm
    assert size["0-15 nm"]["output"] == (2, 4)  # pair 2 cut, pair 0 not
    assert size["15-40 nm"]["output"] == (2, 2)  # pair 5
    assert size[">= 40 nm"]["output"] == (2, 10)  # pair 1
    overlap = table["overlap"]  # 2, 15, 7, 12, 3, 18, 8 and 1%: the aggregates' from the geometry
    assert overlap["< 5%"]["output"] == (0, 6)
    assert overlap["5-10%"]["output"] == (2, 4)
    assert overlap[">= 10%"]["output"] == (4, 6)
    text = markdown_invented(table, ["output", "target"], {"output": "model"})
    assert "| model |" in text and "50.0% (2/4)" in text


def test_pairs_the_target_shows_apart_leave_the_other_rows_denominators():
    images, particles, touching = _scene()
    images = {"target": images["output"], "output": images["target"]}  # now the target cuts 3
    analysis = analyse_gaps(images, [], particles, touching=touching, pixel_size_nm=PIXEL_NM, match_intensity=False)
    table = invented_by_kind([analysis])
    assert table["kind"]["neck"]["target"] == (1, 2)
    assert table["kind"]["neck"]["output"] == (0, 1)
    assert sum(c["output"][1] for c in table["kind"].values()) == 5


def test_overlap_of_a_record_without_one_comes_from_the_particles():
    particles = {0: (0.0, 0.0, 10.0), 1: (9.0, 0.0, 10.0)}  # 18 nm apart at 2 nm/px: 20% of 10 nm
    g = contact_groups({"a": 0, "b": 1}, particles, 2.0)
    assert g == {"kind": "aggregate", "size": "15-40 nm", "overlap": ">= 10%"}
    assert contact_groups({"a": 0, "b": 1, "kind": "neck", "overlap_fraction": 0.0}, particles, 2.0)["overlap"] == "< 5%"


def test_no_analyses_give_an_empty_table():
    assert invented_by_kind([]) == {}
