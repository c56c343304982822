"""Tiny SavedModels with the zoo's signatures, for server/client/CLI tests.

``serving_default``: ``image`` (N,H,W,1) float32 -> ``enhanced`` (N,2H,2W,1) =
``gain`` x nearest-neighbour x2 of the input, plus (``conv=True``) a fixed seeded 5x5 conv
of the input (receptive-field radius 2 LR px), so tiling seams would show. ``card``: ``batch``
int32 (N,) -> the card JSON (N,), read from the SavedModel asset at call time (as the
registry's export does).
Versions are written in the zoo layout models/<name>/<version>/ with both card copies and
every file's sha256 in the card, by the zoo's own ``publish_version``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np


def tiny_card(name: str, *, pixel_size_nm: float = 14.2, tile: int = 32, overlap: int = 2, divisor: int = 1,
              pixel_size_range_nm: tuple[float, float] | None = None) -> dict:
    """A valid card; ``pixel_size_range_nm`` makes it a general model's (zoo.client.model_choice)."""
    from zoo.registry.card import new_card

    return new_card(
        name=name,
        sample_type="gold-on-carbon",
        input_pixel_size_nm=pixel_size_nm,
        scale=2,
        tile={"size": tile, "overlap": overlap, "divisor": divisor},
        training={"pairs": 1, "patches": 1, "simulated": True, "dataset_hash": "0" * 8, "steps": 0, "preset": "tiny",
                  **({"input_pixel_size_range_nm": list(pixel_size_range_nm)} if pixel_size_range_nm else {})},
        versions={"semzoo": "test", "tensorflow": "test", "keras": "test"},
    )


def nearest2x(image: np.ndarray) -> np.ndarray:
    """Nearest-neighbour x2 of an (H, W) image or an (N, H, W, 1) batch."""
    rows, cols = (0, 1) if image.ndim == 2 else (-3, -2)
    return np.repeat(np.repeat(image, 2, axis=rows), 2, axis=cols)


def conv_kernel(seed: int = 7) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((5, 5, 1, 1)) * 0.1).astype(np.float32)


def save_tiny_model(out_dir: Path, card: dict, *, gain: float = 1.0, conv: bool = False) -> Path:
    """Write a SavedModel version directory (card + sha256s) at ``out_dir`` (must not exist)."""
    import tensorflow as tf

    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        asset_file = Path(tmp) / "card.json"
        asset_file.write_text(json.dumps(card))

        class Tiny(tf.Module):
            def __init__(self):
                super().__init__()
                self.gain = tf.Variable(float(gain), trainable=False)
                self.kernel = tf.Variable(conv_kernel(), trainable=False)
                self.card_file = tf.saved_model.Asset(str(asset_file))

            @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name="image")])
            def serve(self, image):
                up = tf.repeat(tf.repeat(image, 2, axis=1), 2, axis=2) * self.gain
                if conv:
                    detail = tf.nn.conv2d(image, self.kernel, strides=1, padding="SAME")
                    up = up + tf.repeat(tf.repeat(detail, 2, axis=1), 2, axis=2)
                return {"enhanced": up}

            @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="batch")])
            def card(self, batch):
                return {"card": tf.fill(tf.shape(batch)[:1], tf.io.read_file(self.card_file.asset_path))}

        module = Tiny()
        tf.saved_model.save(module, str(out_dir), signatures={"serving_default": module.serve, "card": module.card})
    from zoo.registry.card import write_card

    write_card(out_dir, card)  # the zoo's publish adds every file's sha256
    return out_dir


def publish(zoo_root: Path, name: str, *, label: str | None = None, gain: float = 1.0, conv: bool = False, **card_kwargs) -> int:
    """Publish a tiny model through the zoo's own atomic publish; return the version number."""
    from zoo.registry.store import Zoo

    card = tiny_card(name, **card_kwargs)
    return Zoo(zoo_root).publish_version(
        name, lambda tmp: save_tiny_model(tmp, card, gain=gain, conv=conv), label=label
    )


def set_labels(zoo_root: Path, name: str, labels: dict) -> None:
    from zoo.registry.store import Zoo

    for label, version in labels.items():
        Zoo(zoo_root).set_label(name, version, label)


def free_port() -> int:
    """A loopback port that was free a moment ago (for restart-on-the-same-port tests)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.02):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    import time

    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
