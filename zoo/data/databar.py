"""A data bar drawn over the bottom rows of an SEM image, where no metadata states its height.

FEI, TESCAN and JEOL append their data bar below the scan and say how many rows the scan has,
so :func:`zoo.data.sem_tiff.read_sem` crops by that number. Zeiss SmartSEM (its data zone) and
Hitachi (when ``DataSize`` is the whole stored image) draw the bar into the bottom rows of the
frame and state no height, so for those vendors alone the bar is found in the pixels, by a
signature no micrograph row has:

- its top edge is one full-width row of a single value (>= :data:`EDGE_SHARE` of its pixels:
  the bar's background above its text, or a separator line), and
- every row from there to the bottom of the image has one value in at least
  :data:`BAR_SHARE` of its pixels (the bar's background around its text; text covers less),
- within the bottom :data:`MAX_SHARE_OF_IMAGE` of the image, with the row above the edge not
  flat (the scan), and at least :data:`MIN_ROWS` rows; up to :data:`BOTTOM_SLACK` rows of
  another kind at the very bottom are counted in.

A noisy scan row has a few percent of its pixels at its most common value (the real Zeiss
sample: <= 5 % above its data zone, >= 75 % inside it). What this can mistake for a bar is a
band of clipped, uniform rows at the bottom of a scan, which hold no detail to lose.
"""

from __future__ import annotations

import numpy as np

EDGE_SHARE = 0.98
BAR_SHARE = 0.5
MAX_SHARE_OF_IMAGE = 0.25
MIN_ROWS = 4
BOTTOM_SLACK = 2


def modal_share(row: np.ndarray) -> float:
    """The fraction of a row's pixels that hold its most common value."""
    values = np.sort(np.asarray(row).ravel())
    if values.size == 0:
        return 0.0
    bounds = np.concatenate(([0], np.flatnonzero(values[1:] != values[:-1]) + 1, [values.size]))
    return float(np.diff(bounds).max() / values.size)


def drawn_databar_rows(image: np.ndarray) -> int:
    """How many bottom rows of ``image`` (2-D) are a data bar drawn over it; 0 if none is found.

    Rows are examined from the bottom up and only while they look like the bar, so the cost is
    the bar's rows, not the image's.
    """
    height = image.shape[0]
    limit = int(height * MAX_SHARE_OF_IMAGE)
    top = height
    # SmartSEM's very last row can be a scan line again (seen on the real Zeiss files): up to
    # BOTTOM_SLACK such rows below the bar belong to it.
    while top > height - BOTTOM_SLACK and modal_share(image[top - 1]) < BAR_SHARE:
        top -= 1
    while top > 0 and height - top <= limit and modal_share(image[top - 1]) >= BAR_SHARE:
        top -= 1
    rows = height - top
    if rows < MIN_ROWS or rows > limit or top == 0:
        return 0  # no bar, or flat rows reaching past where a bar can be (a flat image)
    if modal_share(image[top]) < EDGE_SHARE:
        return 0  # no full-width edge: flat image rows, not a bar
    return rows
