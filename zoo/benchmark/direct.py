"""In-process measurements: the SavedModel called directly, its FLOPs, and the Lanczos floor.

These are the reference the served numbers are divided by. The model is loaded exactly as the
embedded server loads it (``tf.saved_model.load`` + the ``serving_default`` signature), so the
ratio served / direct is the cost of gRPC, (de)serialisation, normalisation and tiling alone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np


class DirectModel:
    """A zoo version's ``serving_default`` signature, called in this process."""

    def __init__(self, version_dir: str | Path):
        import tensorflow as tf

        self.path = Path(version_dir)
        self._tf = tf
        self._loaded = tf.saved_model.load(str(self.path))  # keeps the variables alive
        self.function = self._loaded.signatures["serving_default"]
        (self.output_name,) = self.function.structured_outputs

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """(N, H, W, 1) float32 normalised LR -> (N, 2H, 2W, 1) float32."""
        out = self.function(image=self._tf.constant(batch))[self.output_name]
        return out.numpy()

    def gflop_per_image(self, lr_height: int, lr_width: int) -> float:
        """Floating-point operations of one (1, H, W, 1) call, in GFLOP.

        Counted by TensorFlow's profiler (``tf.compat.v1.profiler`` with
        ``float_operation()``) on the signature's graph frozen at that input shape: every op
        with a registered FLOP count (Conv2D counts 2 per multiply-add, plus bias adds,
        activations' arithmetic, pooling). Padding to the generator's divisor is included,
        because the served function pads too.
        """
        tf = self._tf
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        function = self.function

        @tf.function
        def fixed(image):
            return function(image=image)

        concrete = fixed.get_concrete_function(tf.TensorSpec([1, lr_height, lr_width, 1], tf.float32))
        graph_def = convert_variables_to_constants_v2(concrete).graph.as_graph_def()
        graph = tf.Graph()
        logger = tf.get_logger()
        level = logger.level
        logger.setLevel("ERROR")  # the v1 profiler warns about its own deprecated helpers
        try:
            with graph.as_default():
                tf.graph_util.import_graph_def(graph_def, name="")
                options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
                options["output"] = "none"
                profile = tf.compat.v1.profiler.profile(graph, options=options)
        finally:
            logger.setLevel(level)
        return profile.total_float_ops / 1e9


def plain_conv_gflop_per_s(*, size: int = 392, channels: int = 64, rounds: int = 7) -> float:
    """GFLOP/s of one plain 3x3 ``channels`` -> ``channels`` float32 convolution on a
    ``size`` x ``size`` map in TensorFlow (median of ``rounds``): what this CPU does on the
    network's dominant operation, the reference for the model's achieved rate."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal((1, size, size, channels)).astype(np.float32))
    k = tf.constant(rng.standard_normal((3, 3, channels, channels)).astype(np.float32))
    conv = tf.function(lambda a, b: tf.nn.conv2d(a, b, 1, "SAME"))
    conv(x, k).numpy()  # oneDNN sets up its kernel once per shape
    seconds = float(np.median([timed(lambda: conv(x, k).numpy()) for _ in range(rounds)]))
    return 2 * 9 * channels * channels * size * size / 1e9 / seconds


def timed(function: Callable[[], object]) -> float:
    """Seconds one call takes (wall clock: what a user waits for)."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def lanczos_x2(image: np.ndarray) -> np.ndarray:
    """The floor every network must beat: OpenCV's Lanczos4 x2, as the generator's first layer."""
    import cv2

    h, w = image.shape
    return cv2.resize(image, (2 * w, 2 * h), interpolation=cv2.INTER_LANCZOS4)


def direct_tiled(model: DirectModel, image: np.ndarray, card: dict, plan) -> np.ndarray:
    """Enhance a normalised 2-D image tile by tile in-process, with the client's exact tiling.

    ``plan``: the client's :class:`zoo.client.tiling.TilePlan` for this image
    (``EnhanceClient.tile_plan``); same tile grid, same batches of equal-shaped tiles, same
    blending: the in-process counterpart of ``EnhanceClient.enhance`` on one thread.
    """
    from zoo.client.tiling import TileBlender

    tile = card["tile"]
    blender = TileBlender(
        *image.shape, scale=int(card["scale"]), tile=plan.tile, context=int(tile["overlap"]),
        divisor=int(tile["divisor"]),
    )
    by_shape: dict[tuple, list] = {}
    for t in blender.tiles:
        by_shape.setdefault(t.shape, []).append(t)
    for group in by_shape.values():
        for i in range(0, len(group), plan.batch):
            tiles = group[i:i + plan.batch]
            stack = np.stack([image[t.y0:t.y0 + t.h, t.x0:t.x0 + t.w] for t in tiles])[..., None]
            for t, out in zip(tiles, model(stack)):
                blender.add(t, out[..., 0])
    return blender.result()
