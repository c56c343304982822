"""The model card: the single source of a zoo version's metadata.

A card is a JSON object stored twice inside a version directory, byte for byte the same:
``assets.extra/card.json`` (what humans, ``semzoo zoo show`` and TF-Serving-unaware tools
read) and ``assets/card.json`` (the SavedModel asset the ``card`` signature returns, so any
TF Serving client reads the metadata through Predict). It never records the version number:
as in TF Serving, a version's number is its directory's name, and a version directory copied
under a new number is a valid new version.

Fields (all required unless marked optional)::

    schema                 1
    name                   model name, [a-z0-9-]+
    sample_type            e.g. "gold-on-carbon", or null
    input_pixel_size_nm    LR pixel size the model was trained for (nm)
    output_pixel_size_nm   = input_pixel_size_nm / scale
    scale                  magnification factor (2 in the paper)
    normalisation          {"method": "per-image mean/std"} (paper, Methods: each image is
                           normalised by its own mean and standard deviation)
    tile                   {"size": LR tile edge (px, a multiple of divisor),
                            "overlap": LR px of context each side (the generator's receptive
                            field radius, rounded up to a multiple of divisor),
                            "divisor": H, W multiple the generator needs}. Tiles that start
                           at multiples of divisor and overlap by >= overlap reproduce the
                           untiled output exactly away from the image border.
    signatures             {"serving_default": {"inputs": ["image"], "outputs": ["enhanced"]},
                            "card": {"inputs": ["batch"], "outputs": ["card"]}}
    training               {"pairs", "patches", "simulated", "dataset_hash", "steps", "preset",
                            ...optional extras, e.g. a fine-tune's calibration summary}
    evaluation             metric table (dict, may be empty)
    parent                 "name:version" of the model a fine-tune started from, or null
    created                UTC ISO 8601 time, e.g. "2026-11-24T19:50:11Z"
    versions               {"semzoo", "tensorflow", "keras"} that made it
    files                  {relative path: sha256 hex} of every file of the version except
                           the two card copies (a card cannot contain its own hash)
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, TypedDict

from zoo.errors import UserError

CARD_SCHEMA = 1
CARD_PATH = "assets.extra/card.json"
CARD_ASSET_PATH = "assets/card.json"
CARD_PATHS = (CARD_PATH, CARD_ASSET_PATH)
WARMUP_PATH = "assets.extra/tf_serving_warmup_requests"

NORMALISATION_METHOD = "per-image mean/std"
SIGNATURES = {
    "serving_default": {"inputs": ["image"], "outputs": ["enhanced"]},
    "card": {"inputs": ["batch"], "outputs": ["card"]},
}
NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TRAINING_REQUIRED = ("pairs", "patches", "simulated", "dataset_hash", "steps", "preset")


class Tile(TypedDict):
    size: int
    overlap: int
    divisor: int


class Card(TypedDict):
    schema: int
    name: str
    sample_type: str | None
    input_pixel_size_nm: float
    output_pixel_size_nm: float
    scale: int
    normalisation: dict[str, str]
    tile: Tile
    signatures: dict[str, dict[str, list[str]]]
    training: dict[str, Any]
    evaluation: dict[str, Any]
    parent: str | None
    created: str
    versions: dict[str, str]
    files: dict[str, str]


FIELDS = tuple(Card.__annotations__)


def check_name(name: object, what: str = "model name") -> str:
    """Return ``name`` if it is a valid zoo name ([a-z0-9-]+, no path tricks), else raise."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise UserError(
            f"invalid {what} {name!r}: use lower-case letters, digits and '-' "
            "(e.g. gold-on-carbon), not starting or ending with '-'"
        )
    return name


def utc_now() -> str:
    """The current UTC time as the card writes it (seconds resolution, 'Z' suffix)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def software_versions() -> dict[str, str]:
    """semzoo/TensorFlow/Keras versions for the card (imports TensorFlow)."""
    import keras
    import tensorflow as tf

    import zoo

    return {"semzoo": zoo.__version__, "tensorflow": tf.__version__, "keras": keras.__version__}


def new_card(
    *,
    name: str,
    sample_type: str | None,
    input_pixel_size_nm: float,
    scale: int,
    tile: Mapping[str, int],
    training: Mapping[str, Any],
    evaluation: Mapping[str, Any] | None = None,
    parent: str | None = None,
    created: str | None = None,
    versions: Mapping[str, str] | None = None,
) -> Card:
    """Build and validate a card; ``files`` stays empty until the zoo publishes the version."""
    card = {
        "schema": CARD_SCHEMA,
        "name": name,
        "sample_type": sample_type,
        "input_pixel_size_nm": float(input_pixel_size_nm),
        "output_pixel_size_nm": float(input_pixel_size_nm) / scale,
        "scale": scale,
        "normalisation": {"method": NORMALISATION_METHOD},
        "tile": dict(tile),
        "signatures": json.loads(json.dumps(SIGNATURES)),
        "training": dict(training),
        "evaluation": dict(evaluation or {}),
        "parent": parent,
        "created": created or utc_now(),
        "versions": dict(versions) if versions is not None else software_versions(),
        "files": {},
    }
    return validate_card(card)


def _fail(field: str, problem: str) -> UserError:
    return UserError(f"invalid model card: {field} {problem}")


def _number(card: Mapping, field: str, *, positive: bool = True) -> float:
    value = card[field]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(field, f"must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise _fail(field, f"must be > 0, got {value!r}")
    return float(value)


def _int(value: object, field: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(field, f"must be an integer >= {minimum}, got {value!r}")
    return value


def _check_relpath(path: object) -> str:
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path:
        raise _fail("files", f"has an invalid path {path!r}")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise _fail("files", f"has an invalid path {path!r}")
    return path


def validate_card(card: object) -> Card:
    """Check a card against the schema; return it or raise UserError naming the bad field."""
    if not isinstance(card, dict):
        raise UserError(f"invalid model card: expected a JSON object, got {type(card).__name__}")
    missing = [f for f in FIELDS if f not in card]
    if missing:
        raise _fail(missing[0], "is missing")
    unknown = sorted(set(card) - set(FIELDS))
    if unknown:
        raise _fail(unknown[0], "is not a card field (typo?)")
    if card["schema"] != CARD_SCHEMA:
        raise _fail("schema", f"must be {CARD_SCHEMA}, got {card['schema']!r} (newer semzoo?)")
    try:
        check_name(card["name"])
    except UserError:
        raise _fail("name", f"must match [a-z0-9-]+, got {card['name']!r}") from None
    if card["sample_type"] is not None and not isinstance(card["sample_type"], str):
        raise _fail("sample_type", f"must be a string or null, got {card['sample_type']!r}")

    scale = _int(card["scale"], "scale", minimum=1)
    lr = _number(card, "input_pixel_size_nm")
    hr = _number(card, "output_pixel_size_nm")
    if not math.isclose(lr / scale, hr, rel_tol=1e-6):
        raise _fail(
            "output_pixel_size_nm",
            f"must equal input_pixel_size_nm / scale = {lr / scale:g}, got {hr:g}",
        )
    if card["normalisation"] != {"method": NORMALISATION_METHOD}:
        raise _fail("normalisation", f"must be {{'method': {NORMALISATION_METHOD!r}}}")

    tile = card["tile"]
    if not isinstance(tile, dict) or set(tile) != {"size", "overlap", "divisor"}:
        raise _fail("tile", "must be an object with exactly size, overlap and divisor")
    divisor = _int(tile["divisor"], "tile.divisor", minimum=1)
    size = _int(tile["size"], "tile.size", minimum=divisor)
    overlap = _int(tile["overlap"], "tile.overlap", minimum=0)
    if size % divisor:
        raise _fail("tile.size", f"must be a multiple of tile.divisor={divisor}, got {size}")
    if 2 * overlap >= size:
        raise _fail("tile.overlap", f"must be less than half the tile size {size}, got {overlap}")

    if card["signatures"] != SIGNATURES:
        raise _fail("signatures", f"must be {SIGNATURES}")

    training = card["training"]
    if not isinstance(training, dict):
        raise _fail("training", "must be an object")
    for key in _TRAINING_REQUIRED:
        if key not in training:
            raise _fail(f"training.{key}", "is missing")
    for key in ("pairs", "patches", "steps"):
        _int(training[key], f"training.{key}", minimum=0)
    if not isinstance(training["simulated"], bool):
        raise _fail("training.simulated", f"must be true or false, got {training['simulated']!r}")
    for key in ("dataset_hash", "preset"):
        if training[key] is not None and not isinstance(training[key], str):
            raise _fail(f"training.{key}", f"must be a string or null, got {training[key]!r}")

    if not isinstance(card["evaluation"], dict):
        raise _fail("evaluation", "must be an object (may be empty)")

    parent = card["parent"]
    if parent is not None:
        pname, sep, pversion = parent.partition(":") if isinstance(parent, str) else ("", "", "")
        if not (sep and NAME_PATTERN.fullmatch(pname) and pversion.isdigit()):
            raise _fail("parent", f"must be 'name:version' or null, got {parent!r}")

    created = card["created"]
    try:
        when = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        raise _fail("created", f"must be an ISO 8601 time, got {created!r}") from None
    if when.utcoffset() is None or when.utcoffset().total_seconds() != 0:
        raise _fail("created", f"must be in UTC, got {created!r}")

    versions = card["versions"]
    if not isinstance(versions, dict) or not {"semzoo", "tensorflow", "keras"} <= set(versions):
        raise _fail("versions", "must give the semzoo, tensorflow and keras versions")

    files = card["files"]
    if not isinstance(files, dict):
        raise _fail("files", "must map relative paths to sha256 digests")
    for path, digest in files.items():
        _check_relpath(path)
        if path in CARD_PATHS:
            raise _fail("files", f"must not list the card itself ({path})")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise _fail("files", f"has an invalid sha256 for {path}: {digest!r}")
    return card  # type: ignore[return-value]


def card_to_json(card: Mapping[str, Any]) -> str:
    """Serialise a validated card: stable key order, 2-space indent, trailing newline."""
    validate_card(dict(card))
    return json.dumps(card, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def card_from_json(text: str | bytes, *, source: str = "card") -> Card:
    """Parse and validate a card's JSON text; ``source`` names it in error messages."""
    try:
        card = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"invalid model card in {source}: not JSON ({exc})") from None
    try:
        return validate_card(card)
    except UserError as exc:
        raise UserError(f"{exc} (in {source})") from None


def read_card(version_dir: str | Path) -> Card:
    """Read the card of a version (or export) directory."""
    path = Path(version_dir) / CARD_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"no model card at {path}") from None
    return card_from_json(text, source=str(path))


def write_card(version_dir: str | Path, card: Mapping[str, Any]) -> str:
    """Write both card copies into a directory being built; return the JSON text."""
    text = card_to_json(card)
    for rel in CARD_PATHS:
        path = Path(version_dir) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return text


# Metric names `semzoo zoo list` shows first, in this order (the paper's headline numbers).
KEY_METRICS = (
    "undetected_gap_fraction",
    "undetected_gaps_percent",
    "gap_size_error_nm",
    "psnr",
    "psnr_db",
    "ssim",
    "frc_resolution_nm",
)


def key_metrics(evaluation: Mapping[str, Any], limit: int = 3, *, own: str | None = None) -> dict[str, float]:
    """A few headline numbers from a card's evaluation table, for listings.

    An explicit ``evaluation["summary"]`` object wins; otherwise numeric leaves named in
    :data:`KEY_METRICS` are taken, preferring the model's own row (a path containing
    "output", "model" or "sr", or ``own``: the ``name:version`` row of an HR-only table, which
    names its rows after the models) over baselines (input, lanczos, target, other versions).
    """
    summary = evaluation.get("summary")
    if isinstance(summary, Mapping):
        numbers = {k: float(v) for k, v in summary.items() if _is_number(v)}
        return dict(list(numbers.items())[:limit])
    leaves: list[tuple[str, str, float]] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, path + (str(key),))
        elif _is_number(node) and path:
            leaves.append((path[-1], "/".join(path).lower(), float(node)))

    walk(evaluation, ())
    found: dict[str, float] = {}
    for metric in KEY_METRICS:
        candidates = [(p, v) for leaf, p, v in leaves if leaf.lower() == metric]
        if not candidates:
            continue
        mine = ("output", "model", "sr") + ((own.lower(),) if own else ())
        ours = [c for c in candidates if any(w in c[0].split("/") for w in mine)]
        path, value = (ours or candidates)[0]
        found[metric] = value
        if len(found) == limit:
            break
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
