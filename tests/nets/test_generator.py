"""The U-Net generator: shapes, residual on the Lanczos input, export with dynamic H, W, tiling."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.nets import generator as G
from zoo.nets.presets import get_preset


@pytest.fixture(scope="module")
def tiny():
    import keras

    keras.utils.set_random_seed(3)
    return G.build_generator(get_preset("tiny"))


def test_output_is_twice_the_input_for_sizes_never_seen(tiny, rng):
    for h, w in [(8, 8), (16, 40), (56, 24)]:
        x = rng.standard_normal((2, h, w, 1)).astype(np.float32)
        assert tuple(tiny(x).shape) == (2, 2 * h, 2 * w, 1)
    assert G.DIVISOR == 8


def test_first_layer_is_lanczos_and_output_is_residual_on_it(tiny, rng):
    import cv2
    import keras

    assert isinstance(tiny.layers[1], G.LanczosUpsample2x)
    x = rng.standard_normal((1, 16, 24, 1)).astype(np.float32)
    model = keras.Model(tiny.input, [tiny.get_layer("lanczos_upsample2x").output,
                                     tiny.get_layer("residual").output, tiny.output])
    up, residual, out = (t.numpy() for t in model(x))
    np.testing.assert_allclose(up[0, :, :, 0], cv2.resize(x[0, :, :, 0], (48, 32), interpolation=cv2.INTER_LANCZOS4),
                               atol=2e-5)
    np.testing.assert_allclose(out, up + residual, atol=1e-6)
    # A zero residual conv turns the generator into exactly the Lanczos upsampler.
    layer = tiny.get_layer("residual")
    saved = layer.get_weights()
    try:
        layer.set_weights([np.zeros_like(w) for w in saved])
        np.testing.assert_allclose(tiny(x).numpy(), up, atol=1e-6)
    finally:
        layer.set_weights(saved)


def test_presets_widths_and_parameter_counts():
    import keras

    paper, small, tiny = (get_preset(n) for n in ("paper", "small", "tiny"))
    assert paper.g_widths[0] == 32 and paper.g_widths[-1] == 512
    assert paper.steps == 48_000 and paper.d_every == 4
    keras.utils.set_random_seed(0)
    counts = {c.name: G.build_generator(c).count_params() for c in (tiny, small)}
    assert counts["tiny"] < 50_000 < counts["small"] < 2_000_000


def test_export_with_dynamic_height_and_width_matches_keras(tiny, rng, tmp_path):
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(tiny)
    archive.add_endpoint("serve", lambda x: tiny(x, training=False),
                         input_signature=[keras.InputSpec(shape=(None, None, None, 1), dtype="float32")])
    archive.write_out(str(tmp_path / "saved"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    x = rng.standard_normal((1, 24, 40, 1)).astype(np.float32)  # non-square, never used above
    np.testing.assert_allclose(loaded.serve(tf.constant(x)).numpy(), tiny(x).numpy(), atol=1e-5)


def test_receptive_field_equals_the_measured_dependence(tiny, rng):
    import tensorflow as tf

    radius = G.receptive_field_radius_lr(get_preset("tiny"))
    width = 2 * radius + 48
    width += -width % G.DIVISOR
    x = tf.constant(rng.standard_normal((1, 8, width, 1)).astype(np.float32))
    centre = 2 * (width // 2 - (width // 2) % G.DIVISOR)
    reach = 0
    for u in range(centre, centre + 2 * G.DIVISOR):  # one period of the pooling phases
        with tf.GradientTape() as tape:
            tape.watch(x)
            # Whole output columns: sums over rows keep far gradients above float underflow.
            target = tf.reduce_sum(tiny(x)[:, :, u, :])
        grad = np.abs(tape.gradient(target, x).numpy()[0, :, :, 0]).sum(axis=0)
        cols = np.nonzero(grad)[0]
        reach = max(reach, u // 2 - cols.min(), cols.max() - u // 2)
    assert reach == radius
    overlap = G.recommended_tile_overlap(get_preset("tiny"))
    assert overlap % G.DIVISOR == 0 and radius <= overlap < radius + G.DIVISOR


def test_tiles_with_the_recommended_overlap_reproduce_the_whole_image(tiny, rng):
    overlap = G.recommended_tile_overlap(get_preset("tiny"))
    image = rng.standard_normal((1, 2 * overlap + 16, 2 * overlap + 24, 1)).astype(np.float32)
    whole = tiny(image).numpy()
    # A tile whose start is on the pooling grid (multiple of DIVISOR) and whose borders are
    # at least `overlap` away from the part we keep gives exactly the same pixels there.
    y0, x0 = G.DIVISOR, 2 * G.DIVISOR
    tile = image[:, y0:y0 + 2 * overlap + 8, x0:x0 + 2 * overlap + 8]
    out = tiny(tile).numpy()
    keep = slice(2 * overlap, 2 * overlap + 16)
    np.testing.assert_allclose(out[:, keep, keep], whole[:, 2 * y0 + keep.start:2 * y0 + keep.stop,
                                                          2 * x0 + keep.start:2 * x0 + keep.stop], atol=1e-5)


def test_keras_file_round_trip(tiny, rng, tmp_path):
    import keras

    path = tmp_path / "g.keras"
    tiny.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    x = rng.standard_normal((1, 8, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), tiny(x).numpy(), atol=1e-6)
