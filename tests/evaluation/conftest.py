"""A synthetic gold-on-carbon scene with planted gaps and touching pairs, for the evaluation tests."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

PIXEL_NM = 2.0
RADIUS_PX = 7.0
BACKGROUND = 0.25
# Planted edge-to-edge gaps in pixels; every other row is a touching pair.
GAP_WIDTHS_PX = (2.0, 3.0, 4.0, 6.0)


def render(particles, shape, *, sigma_px, carve=()):
    """Discs of intensity 1 on a 0.25 background, blurred by a Gaussian probe of sigma_px.

    ``carve`` lists (x0, y0, x1, y1, half_width_px) dark lines cut into the sharp scene (an
    "output" that invents a gap).
    """
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    scene = np.full(shape, BACKGROUND)
    for p in particles:
        r = p["radius_nm"] / PIXEL_NM
        scene[np.hypot(x - p["x_hr"], y - p["y_hr"]) <= r] = 1.0
    for x0, y0, x1, y1, half in carve:
        d = np.hypot(x1 - x0, y1 - y0)
        t = np.clip(((x - x0) * (x1 - x0) + (y - y0) * (y1 - y0)) / d**2, 0, 1)
        dist = np.hypot(x - (x0 + t * (x1 - x0)), y - (y0 + t * (y1 - y0)))
        scene[dist <= half] = BACKGROUND
    return ndimage.gaussian_filter(scene, sigma_px) if sigma_px > 0 else scene


@pytest.fixture
def scene():
    """Particles in rows: pairs with gaps of 2, 3, 4, 6 px and pairs that overlap by 1 px.

    Returns (truth, shape) with truth in the truth.json per-pair schema (x_hr, y_hr in pixels).
    """
    particles, gaps, touching = [], [], []
    shape = (8 * 24 + 16, 2 * 4 * 24 + 16)
    pid = 0
    for row in range(8):
        y = 20.0 + 24 * row
        for col in range(4):
            x = 20.0 + 48 * col
            # Alternate row orientation so some profiles run obliquely.
            dy = 0.0 if row % 2 == 0 else 3.0
            if row % 4 < 2:
                gap = GAP_WIDTHS_PX[col]
            else:
                gap = -1.0
            sep = 2 * RADIUS_PX + gap
            dx = float(np.sqrt(sep**2 - dy**2))
            a = {"id": pid, "x_hr": x, "y_hr": y, "radius_nm": RADIUS_PX * PIXEL_NM}
            b = {"id": pid + 1, "x_hr": x + dx, "y_hr": y + dy, "radius_nm": RADIUS_PX * PIXEL_NM}
            particles += [a, b]
            if gap > 0:
                gaps.append({"a": pid, "b": pid + 1, "width_nm": gap * PIXEL_NM})
            else:
                touching.append({"a": pid, "b": pid + 1})
            pid += 2
    return {"particles": particles, "gaps": gaps, "touching": touching}, shape
