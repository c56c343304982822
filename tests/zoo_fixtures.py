"""Tiny zoo versions for tests (registry, server, client, CLI): import from any test module.

    from tests.zoo_fixtures import make_tiny_zoo
    root = make_tiny_zoo(tmp_path / "models")          # models/tiny/1 labelled stable

Exporting takes about a second (plus TensorFlow's import); build one zoo per module or
session with a scoped fixture and copy it (``shutil.copytree``) when a test modifies it.
The generator is the real ``tiny`` preset (its receptive field gives 256 px tiles with 64 px
overlap), or with ``generator="standin"`` a nearest-x2 + 3x3-conv model with the same contract
((N,H,W,1) -> (N,2H,2W,1)) whose tiles are 32 px with 8 px overlap, handy for tiling tests on
small images. ``tile={...}`` overrides the card's tile geometry. Both generators are seeded.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

TINY_TRAINING = {
    "pairs": 2,
    "patches": 16,
    "simulated": True,
    "dataset_hash": "0" * 16,
    "steps": 0,
    "preset": "tiny",
}


def tiny_generator(seed: int = 0, kind: str = "tiny"):
    """The ``tiny`` preset generator (untrained, seeded), or the stand-in (``kind="standin"``,
    also used where zoo.nets is missing)."""
    import keras

    if kind == "standin":
        return standin_generator(seed)
    keras.utils.set_random_seed(seed)
    try:
        from zoo.nets.generator import build_generator
        from zoo.nets.presets import get_preset
    except ImportError:
        return standin_generator(seed)
    return build_generator(get_preset("tiny"))


def standin_generator(seed: int = 0, divisor: int = 8):
    """Nearest x2 upsampling + a 3x3 conv: the generator contract without the U-Net."""
    import keras

    keras.utils.set_random_seed(seed)
    image = keras.Input((None, None, 1), name="lr")
    up = keras.layers.UpSampling2D(2, interpolation="nearest")(image)
    residual = keras.layers.Conv2D(1, 3, padding="same")(up)
    model = keras.Model(image, keras.layers.Add()([up, residual]), name="standin")
    model.divisor = divisor
    return model


def _divisor(generator) -> int:
    """The stand-in's own divisor, else the zoo.nets U-Net's."""
    if getattr(generator, "divisor", None):
        return generator.divisor
    from zoo.nets.generator import DIVISOR

    return DIVISOR


def tiny_card(
    generator,
    name: str = "tiny",
    *,
    sample_type: str | None = "gold-on-carbon",
    input_pixel_size_nm: float = 14.2,
    min_tile: int = 32,
    tile: Mapping[str, int] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    parent: str | None = None,
) -> dict:
    from zoo.registry.card import new_card
    from zoo.registry.export import tile_geometry

    return new_card(
        name=name,
        sample_type=sample_type,
        input_pixel_size_nm=input_pixel_size_nm,
        scale=2,
        tile=tile or tile_geometry(generator, divisor=_divisor(generator), min_tile=min_tile),
        training=dict(TINY_TRAINING),
        evaluation=evaluation,
        parent=parent,
    )


def export_tiny(
    out_dir: str | Path, name: str = "tiny", *, seed: int = 0, generator: str = "tiny", **card_kwargs
) -> Path:
    """Export a tiny (or ``generator="standin"``) generator + card into ``out_dir``."""
    from zoo.registry.export import export_generator

    generator = tiny_generator(seed, generator)
    return export_generator(generator, tiny_card(generator, name, **card_kwargs), out_dir)


def make_tiny_zoo(
    root: str | Path,
    *,
    name: str = "tiny",
    versions: int = 1,
    labels: Mapping[str, int] | None = None,
    seeds: Sequence[int] | None = None,
    generator: str = "tiny",
    **card_kwargs,
) -> Path:
    """A zoo at ``root`` with ``versions`` published versions of ``name``; returns ``root``.

    ``labels`` default to ``{"stable": 1}``. With ``seeds`` each version gets its own weights
    (one export per seed); otherwise all versions are copies of one export. ``generator`` is
    "tiny" or "standin"; other keywords go to :func:`tiny_card` (``tile``, ``evaluation``,
    ``sample_type``, ``input_pixel_size_nm``, ``parent``, ``min_tile``).
    """
    from zoo.registry.store import Zoo

    zoo = Zoo(root)
    staging = Path(tempfile.mkdtemp(prefix="semzoo-tiny-"))
    try:
        exports = []
        for i, seed in enumerate(seeds or [0]):
            exports.append(
                export_tiny(staging / f"export-{i}", name, seed=seed, generator=generator, **card_kwargs)
            )
        for v in range(versions):
            zoo.publish_version(name, exports[v % len(exports)])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for label, version in (labels if labels is not None else {"stable": 1}).items():
        zoo.set_label(name, version, label)
    return Path(root)
