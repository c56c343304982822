"""``KEY=VALUE`` command-line settings (``semzoo train --set``, ``semzoo simulate --set``)."""

from __future__ import annotations

from zoo.errors import UserError


def split_setting(item, example: str) -> tuple[str, str]:
    """``"beta = 1.0"`` -> ``("beta", "1.0")``; UserError (with ``example``) when it is not KEY=VALUE."""
    key, sep, text = str(item).partition("=")
    key, text = key.strip(), text.strip()
    if not sep or not key:
        raise UserError(f"bad setting {item!r}: use KEY=VALUE, e.g. {example}")
    return key, text
