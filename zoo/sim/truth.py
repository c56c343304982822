"""Reading truth.json, the file :mod:`zoo.sim.dataset` writes beside a simulated data set (and
``semzoo prepare`` maps onto the registered grids): what was planted in each pair.

The file is a JSON object with ``pairs`` (``{name: {"particles", "gaps", "touching", ...}}``)
and the set's fields (``sample``, ``seed``, pixel sizes, ``probe_fwhm_nm``, ...). Every reader
goes through :func:`read_truth`, so a damaged file is one :class:`~zoo.errors.UserError` that
names it, wherever it is read.
"""

from __future__ import annotations

import json
from pathlib import Path

from zoo.errors import UserError

TRUTH_FILE = "truth.json"


def read_truth(path: str | Path, *, label: str | None = None) -> dict:
    """The truth file at ``path``, checked to be an object with a ``pairs`` object of objects.

    ``label`` names the file in the error messages (default: the path), e.g. ``"--truth PATH"``.
    Raises :class:`~zoo.errors.UserError` (one line) for a missing file, bad JSON or a missing
    ``pairs``.
    """
    path = Path(path)
    label = label or str(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{label} does not exist") from None
    except (OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise UserError(f"{label} is not readable JSON ({reason})") from None
    pairs = data.get("pairs") if isinstance(data, dict) else None
    if not isinstance(pairs, dict):
        raise UserError(f"{label} has no 'pairs' object (expected the truth.json of semzoo simulate/prepare)")
    bad = [name for name, pair in pairs.items() if not isinstance(pair, dict)]
    if bad:
        raise UserError(f"{label}: pair {bad[0]!r} is not an object (expected the truth.json of semzoo "
                        "simulate/prepare)")
    return data


def with_file_probe(truth: dict) -> dict:
    """``truth`` with each pair given the file's ``probe_fwhm_nm`` unless it has its own."""
    probe = truth.get("probe_fwhm_nm")
    if not isinstance(probe, (int, float)):
        return truth
    # every pair was scanned with the file's probe
    return {**truth, "pairs": {name: {"probe_fwhm_nm": probe, **pair} for name, pair in truth["pairs"].items()}}
