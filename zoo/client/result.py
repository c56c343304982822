"""What :meth:`zoo.client.client.EnhanceClient.enhance` returns: the image and its run's facts.

Also the last step of every image: the float result converted to the output dtype (integer
types rounded and clipped, the clipped pixels counted) and, when asked for, checked against
the input (the data-consistency map, optionally back-projected).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EnhanceResult", "OUTPUT_DTYPES"]


@dataclass(frozen=True)
class EnhanceResult:
    """What :meth:`EnhanceClient.enhance` made of one image, and the facts of that run.

    Each call returns its own result, so a client shared between threads never stamps one
    image's provenance on another. ``image``: the enhanced image (``scale`` times the rows and
    columns); ``pixel_size_nm``: its pixel size (None when the input's is unknown); ``model``
    and ``version``: the served version that made every tile of it, ``scale`` its
    magnification; ``server``: the targets;
    ``tiles`` and ``tile_size`` (LR px edge) of the tiling; ``seconds`` of wall time;
    ``clipping``: what converting to the output dtype clipped (see :func:`to_dtype`);
    ``consistency_map``: the :class:`zoo.client.consistency.ConsistencyMap` when asked for
    (``consistency=True`` or ``consistent=True``), else None.
    """

    image: np.ndarray
    pixel_size_nm: float | None  # the output's
    input_pixel_size_nm: float | None
    model: str
    version: int
    scale: int
    server: str
    tiles: int
    tile_size: int
    seconds: float
    clipping: dict
    consistency_map: object | None = None

    @property
    def consistency(self) -> dict | None:
        """The consistency map's summary (None when no map was asked for)."""
        return None if self.consistency_map is None else self.consistency_map.summary()

    def facts(self) -> dict:
        """The run's facts as a JSON-ready dict (what the provenance records)."""
        facts = {
            "model": self.model, "version": self.version, "server": self.server, "tiles": self.tiles,
            "tile_size": self.tile_size, "seconds": self.seconds, "input_pixel_size_nm": self.input_pixel_size_nm,
            "output_pixel_size_nm": self.pixel_size_nm, "clipping": self.clipping,
        }
        if self.consistency_map is not None:
            facts["consistency"] = self.consistency
        return facts


def checked_against_input(image: np.ndarray, out: np.ndarray, clipping: dict, scale: int, consistent: bool,
                           dtype: np.dtype):
    """(output, its consistency map, its clipping); with ``consistent`` the output back-projected
    first (and converted to ``dtype`` again: the clipping is the written output's)."""
    from zoo.client.consistency import consistency_map, project_consistent

    cmap = consistency_map(image, out, scale=scale)
    if not consistent:
        return out, cmap, clipping
    projected = project_consistent(image, out, scale=scale)
    out, clipping = to_dtype(projected, dtype)
    final = consistency_map(image, out, scale=scale)
    final.before_projection = cmap
    return out, final, clipping


OUTPUT_DTYPES = ("input", "float32")


def to_dtype(image: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, dict]:
    """``image`` (float, the input's scale) as ``dtype``, and what that clipped.

    Integer types: rounded, and clipped to the type's range -- the network overshoots at
    edges, so a scan using the full range loses those pixels to 0 or the maximum. The
    clipping dict: ``dtype``, ``range`` ([min, max]; None for float), the pixels pushed up to
    the minimum (``below``) and down to the maximum (``above``), and their ``share``.
    """
    dtype = np.dtype(dtype)
    below = above = 0
    limits = None
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        limits = [int(info.min), int(info.max)]
        np.rint(image, out=image)
        below = int(np.count_nonzero(image < info.min))
        above = int(np.count_nonzero(image > info.max))
        np.clip(image, info.min, info.max, out=image)
        image = image.astype(dtype)
    else:
        image = image.astype(dtype, copy=False)
    clipping = {"dtype": dtype.name, "range": limits, "below": below, "above": above,
                "share": (below + above) / image.size if image.size else 0.0}
    return image, clipping
