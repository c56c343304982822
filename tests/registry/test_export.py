"""SavedModel export: signature names, numbers equal the Keras model, warmup records, weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.zoo_fixtures import standin_generator, tiny_card, tiny_generator
from zoo.errors import UserError
from zoo.registry.card import CARD_ASSET_PATH, CARD_PATH, WARMUP_PATH, read_card
from zoo.registry.export import (
    check_signatures,
    export_generator,
    generator_divisor,
    load_generator_weights,
    read_warmup_requests,
    receptive_field_radius,
    tile_geometry,
)


@pytest.fixture(scope="module")
def loaded(tiny_export):
    import tensorflow as tf

    return tf.saved_model.load(str(tiny_export))


def keras_reference(generator, image: np.ndarray, divisor: int) -> np.ndarray:
    """The Keras model on the input mirror-padded to the divisor, cropped back."""
    _, h, w, _ = image.shape
    padded = np.pad(image, ((0, 0), (0, -h % divisor), (0, -w % divisor), (0, 0)), mode="symmetric")
    return np.asarray(generator(padded, training=False))[:, : 2 * h, : 2 * w, :]


def test_signatures_have_exactly_the_contract_names(loaded, tiny_export):
    assert set(loaded.signatures) == {"serving_default", "card"}
    serve = loaded.signatures["serving_default"]
    _, inputs = serve.structured_input_signature
    assert list(inputs) == ["image"]
    assert inputs["image"].shape.as_list() == [None, None, None, 1]
    assert inputs["image"].dtype.name == "float32"
    assert list(serve.structured_outputs) == ["enhanced"]
    card_sig = loaded.signatures["card"]
    _, card_inputs = card_sig.structured_input_signature
    assert list(card_inputs) == ["batch"]
    assert card_inputs["batch"].shape.as_list() == [None] and card_inputs["batch"].dtype.name == "int32"
    assert list(card_sig.structured_outputs) == ["card"]
    assert check_signatures(tiny_export) == []


def test_card_signature_returns_the_card_json(loaded, tiny_export):
    import tensorflow as tf

    cards = loaded.signatures["card"](batch=tf.constant([0]))["card"].numpy()
    assert cards.shape == (1,)  # batched, so TF Serving's batching session can run it
    text = cards[0].decode()
    assert json.loads(text) == read_card(tiny_export)
    assert text == (tiny_export / CARD_PATH).read_text() == (tiny_export / CARD_ASSET_PATH).read_text()
    three = loaded.signatures["card"](batch=tf.constant([7, 7, 7]))["card"].numpy()
    assert [c.decode() for c in three] == [text] * 3


@pytest.mark.parametrize("shape", [(1, 24, 40), (2, 19, 33), (1, 5, 3), (1, 1, 1)])
def test_export_equals_keras_on_any_size(loaded, tiny_export, shape):
    """Non-square and odd sizes never seen in training: padded inside, cropped back."""
    import tensorflow as tf

    rng = np.random.default_rng(sum(shape))
    image = rng.standard_normal((*shape, 1)).astype(np.float32)
    out = loaded.signatures["serving_default"](image=tf.constant(image))["enhanced"].numpy()
    n, h, w = shape
    assert out.shape == (n, 2 * h, 2 * w, 1)
    assert np.isfinite(out).all()
    divisor = read_card(tiny_export)["tile"]["divisor"]
    reference = keras_reference(tiny_generator(0), image, divisor)
    np.testing.assert_allclose(out, reference, atol=1e-5)


def test_export_of_the_standin_matches_keras_and_reflects_padding(tmp_path):
    import tensorflow as tf

    generator = standin_generator(seed=3, divisor=8)
    out_dir = export_generator(generator, tiny_card(generator, "standin"), tmp_path / "standin")
    serve = tf.saved_model.load(str(out_dir)).signatures["serving_default"]
    image = np.random.default_rng(1).standard_normal((1, 13, 21, 1)).astype(np.float32)
    out = serve(image=tf.constant(image))["enhanced"].numpy()
    np.testing.assert_allclose(out, keras_reference(generator, image, 8), atol=1e-6)
    # Zero padding would differ at the bottom/right border: the padding really mirrors.
    zero = np.pad(image, ((0, 0), (0, 3), (0, 3), (0, 0)))
    assert np.abs(out - np.asarray(generator(zero))[:, :26, :42]).max() > 1e-3


def test_warmup_records_are_prediction_logs_at_the_tile_size(tiny_export):
    import tensorflow as tf

    logs = read_warmup_requests(tiny_export / WARMUP_PATH)
    assert len(logs) == 1
    request = logs[0].predict_log.request
    assert request.model_spec.name == "tiny"
    assert request.model_spec.signature_name == "serving_default"
    assert list(request.inputs) == ["image"]
    size = read_card(tiny_export)["tile"]["size"]
    tensor = tf.make_ndarray(request.inputs["image"])
    assert tensor.shape == (1, size, size, 1) and tensor.dtype == np.float32
    assert request.inputs["image"].tensor_content  # compact encoding, as clients send
    assert abs(float(tensor.mean())) < 0.2 and 0.8 < float(tensor.std()) < 1.2  # normalised


def test_warmup_batch_sizes_and_tile_override(tmp_path):
    generator = standin_generator()
    out = export_generator(generator, tiny_card(generator), tmp_path / "v",
                           warmup_tile=16, warmup_batch_sizes=(1, 4))
    logs = read_warmup_requests(out / WARMUP_PATH)
    shapes = [tuple(d.size for d in log.predict_log.request.inputs["image"].tensor_shape.dim) for log in logs]
    assert shapes == [(1, 16, 16, 1), (4, 16, 16, 1)]


def test_export_refuses_a_non_empty_directory_and_an_invalid_card(tmp_path):
    generator = standin_generator()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        export_generator(generator, tiny_card(generator), tmp_path / "taken")
    assert (tmp_path / "taken" / "x").read_text() == "keep me"
    bad = tiny_card(generator)
    bad["scale"] = 3
    with pytest.raises(UserError, match="output_pixel_size_nm"):
        export_generator(generator, bad, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_check_signatures_reports_wrong_names(tmp_path):
    import tensorflow as tf

    class Wrong(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, None, None, 1), tf.float32, name="x")])
        def serve(self, x):
            return {"output_0": x}

    tf.saved_model.save(Wrong(), str(tmp_path / "wrong"), signatures={"serving_default": Wrong().serve})
    problems = check_signatures(tmp_path / "wrong")
    assert "signature 'serving_default' inputs are ['x'], not ['image']" in problems
    assert "signature 'serving_default' outputs are ['output_0'], not ['enhanced']" in problems
    assert "signature 'card' is missing" in problems
    assert check_signatures(tmp_path) == ["saved_model.pb is missing"]


def test_receptive_field_and_tile_geometry_of_known_models():
    import keras

    # nearest x2 + 3x3 conv on the HR grid: 1 HR px of context = 1 LR px
    assert receptive_field_radius(standin_generator(), divisor=8) == 1
    # a 5x5 LR conv then nearest x2 then a 5x5 HR conv: 2 + ceil(2/2) = 3 LR px
    image = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(1, 5, padding="same")(image)
    x = keras.layers.UpSampling2D(2)(x)
    model = keras.Model(image, keras.layers.Conv2D(1, 5, padding="same")(x))
    assert receptive_field_radius(model, divisor=4) == 3
    assert generator_divisor(model) == 1
    # overlap rounded up to the divisor so the tile stride stays on the pooling grid
    assert tile_geometry(model, divisor=4, min_tile=30) == {"size": 32, "overlap": 4, "divisor": 4}
    assert tile_geometry(model, divisor=4, min_tile=4) == {"size": 16, "overlap": 4, "divisor": 4}


def test_tiny_generator_tile_covers_its_receptive_field(tiny_export):
    tile = read_card(tiny_export)["tile"]
    assert tile["divisor"] in (8, 16)
    assert tile["overlap"] >= 1 and tile["overlap"] % tile["divisor"] == 0
    assert tile["size"] >= 4 * tile["overlap"] and tile["size"] % tile["divisor"] == 0


def test_tiles_with_the_card_geometry_reproduce_the_untiled_output(tiny_export, loaded):
    """Two tiles on the pooling grid, overlapping by the card's overlap: the seam is exact.

    (Measured on the untrained tiny generator: an overlap of 32 px instead of 64 differs by
    4e-6, tiles off the pooling grid by 1e-4, so the tolerance below catches both.)
    """
    import tensorflow as tf

    tile = read_card(tiny_export)["tile"]
    size, overlap = tile["size"], tile["overlap"]
    stride = size - 2 * overlap
    image = np.random.default_rng(5).standard_normal((1, size, stride + size, 1)).astype(np.float32)
    serve = loaded.signatures["serving_default"]
    whole = serve(image=tf.constant(image))["enhanced"].numpy()
    left = serve(image=tf.constant(image[:, :, :size]))["enhanced"].numpy()
    right = serve(image=tf.constant(image[:, :, stride:]))["enhanced"].numpy()
    seam = 2 * (stride + overlap)  # HR column where the right tile's useful part starts
    core = slice(2 * overlap, 2 * (size - overlap))  # rows away from the outer border
    np.testing.assert_allclose(left[:, core, 2 * overlap : seam], whole[:, core, 2 * overlap : seam], atol=2e-6)
    np.testing.assert_allclose(right[:, core, 2 * overlap : 2 * (size - overlap)],
                               whole[:, core, seam : seam + 2 * (size - 2 * overlap)], atol=2e-6)


def test_weights_load_back_into_a_fresh_generator(tiny_export):
    generator = tiny_generator(seed=0)
    fresh = tiny_generator(seed=99)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(generator.get_weights(), fresh.get_weights()))
    load_generator_weights(tiny_export, fresh)
    for a, b in zip(generator.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(UserError, match="different architecture"):
        load_generator_weights(tiny_export, standin_generator())


def test_weights_are_stored_once(tiny_export):
    """float32 weights: ~4 bytes per parameter (tracking the model too would double it)."""
    params = tiny_generator(0).count_params()
    size = next((tiny_export / "variables").glob("variables.data-*")).stat().st_size
    assert 4 * params <= size < 4 * params * 1.1 + 4096
