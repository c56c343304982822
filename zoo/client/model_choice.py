"""Which zoo model an image gets when the user names none (``semzoo enhance`` without --model).

A *specimen model* (gold-on-carbon, hydrogel, a fine-tuned one) is trained on one sample type at
one pixel size; it is meant for images within :data:`PIXEL_SIZE_TOLERANCE` of its card's
``input_pixel_size_nm``. A *general model* is one whose card records the range of pixel sizes it
was trained on (``training.input_pixel_size_range_nm``, written for HR-only data sets spanning
magnifications, like the bundled ``general``); it is meant for every image no specimen model is
meant for. So:

1. among the specimen models meant for the image's pixel size, the closest one;
2. else a general model, preferring one whose range holds the pixel size, then the nearest
   range (in log pixel size);
3. else (a zoo without a general model) the closest model, as before, with a warning from
   :meth:`zoo.client.client.EnhanceClient.check_pixel_size`.

Pixel size is all the client knows of an image: a specimen model will also be chosen for an
image of another specimen at its pixel size. Name the model (``--model general``) then.
Pure functions of the cards, no TensorFlow, shared by the embedded server's start-up and the
client's choice among served candidates.
"""

from __future__ import annotations

import math
from typing import Mapping

PIXEL_SIZE_TOLERANCE = 0.10


def pixel_size_range(card: Mapping) -> tuple[float, float] | None:
    """(lo, hi) input pixel sizes a general model was trained on, or None for a specimen model."""
    span = (card.get("training") or {}).get("input_pixel_size_range_nm")
    if isinstance(span, (list, tuple)) and len(span) == 2 and all(isinstance(v, (int, float)) for v in span):
        lo, hi = float(min(span)), float(max(span))
        return (lo, hi) if lo > 0 else None
    return None


def pixel_size_mismatch(card: Mapping, pixel_size_nm: float) -> float:
    """Relative distance of the image's pixel size from what the model was trained for: from
    its input pixel size, or for a general model from its range (0 inside it)."""
    span = pixel_size_range(card)
    if span is None:
        ref = float(card["input_pixel_size_nm"])
        return abs(pixel_size_nm - ref) / ref
    lo, hi = span
    if pixel_size_nm < lo:
        return (lo - pixel_size_nm) / lo
    if pixel_size_nm > hi:
        return (pixel_size_nm - hi) / hi
    return 0.0


def choose_model(cards: Mapping[str, Mapping], pixel_size_nm: float) -> str:
    """The name of the model an image of ``pixel_size_nm`` gets (see the module docstring)."""
    if not cards:
        raise ValueError("no models to choose from")
    specimen = {n: c for n, c in cards.items() if pixel_size_range(c) is None}
    meant = {n: pixel_size_mismatch(c, pixel_size_nm) for n, c in specimen.items()}
    meant = {n: m for n, m in meant.items() if m <= PIXEL_SIZE_TOLERANCE}
    if meant:
        return min(sorted(meant), key=meant.get)
    general = {n: c for n, c in cards.items() if pixel_size_range(c) is not None}
    if general:
        def distance(name):
            lo, hi = pixel_size_range(general[name])
            log_p = math.log(pixel_size_nm)
            return max(math.log(lo) - log_p, log_p - math.log(hi), 0.0)

        return min(sorted(general), key=distance)
    return min(sorted(cards), key=lambda n: pixel_size_mismatch(cards[n], pixel_size_nm))
