"""EnhanceClient against the embedded server: round trips, model choice, retries, replicas."""

from __future__ import annotations

import subprocess
import sys
import warnings

import grpc
import numpy as np
import pytest

from tests.server.tiny_models import free_port, nearest2x
from zoo.client.client import EnhanceClient, EnhanceResult, ServerError
from zoo.errors import UserError

# A budget of 1 MB makes the tiny test images go in the card's 32 px tiles (per request:
# 0.5 MB / 1024 B per output pixel = 512 output px, below one tile: the card's size wins).
SMALL_BUDGET = {"memory_budget_mb": 1}


def test_importing_the_client_imports_neither_tensorflow_nor_keras():
    code = (
        "import sys, zoo.client.client as c; c.EnhanceClient; from zoo.client import protos; "
        "protos.messages().PredictRequest(); "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules), protos.messages().source)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] private pool (TensorFlow not imported)"


def test_falling_back_to_tensorflow_serving_apis_is_said_once():
    # In a fresh process: the fallback's classes live in another pool than this one's.
    code = (
        "import warnings; from zoo.client import protos\n"
        "def broken():\n    raise LookupError('no serialised descriptor in predict_pb2.py')\n"
        "protos._build_private_pool = broken\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    protos.messages().PredictRequest(); protos.messages().TensorProto()\n"
        "print(len(seen), protos.messages().source); print(seen[0].message)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count_and_source, message = out.stdout.strip().splitlines()[-2:]
    assert count_and_source == "1 tensorflow_serving.apis"
    assert "no serialised descriptor in predict_pb2.py" in message and "importing tensorflow_serving.apis" in message


def test_private_protos_are_wire_compatible_with_tensorflow_serving_apis(rng):
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

    from zoo.client import protos

    m = protos.messages()
    batch = rng.standard_normal((2, 3, 4, 1)).astype(np.float32)
    request = m.PredictRequest()
    request.model_spec.name = "tiny"
    request.model_spec.version_label = "stable"
    request.inputs["image"].CopyFrom(protos.float_tensor(batch, m.TensorProto))
    real = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    import tensorflow as tf

    np.testing.assert_array_equal(tf.make_ndarray(real.inputs["image"]), batch)
    assert real.model_spec.version_label == "stable"

    signatures = get_model_metadata_pb2.SignatureDefMap()
    signatures.signature_def["serving_default"].inputs["image"].dtype = 1
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.metadata["signature_def"].Pack(signatures)
    mine = m.GetModelMetadataResponse.FromString(response.SerializeToString())
    unpacked = m.SignatureDefMap()
    assert mine.metadata["signature_def"].Unpack(unpacked)
    assert unpacked.signature_def["serving_default"].inputs["image"].dtype == 1


def test_to_ndarray_reads_tensor_content_typed_fields_and_strings(rng):
    import tensorflow as tf

    from zoo.client.protos import to_ndarray

    array = rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(to_ndarray(tf.make_tensor_proto(array)), array)  # tensor_content
    as_fields = tf.make_tensor_proto(array)
    as_fields.ClearField("tensor_content")
    as_fields.float_val.extend(array.reshape(-1).tolist())
    np.testing.assert_array_equal(to_ndarray(as_fields), array)
    filled = tf.make_tensor_proto(np.float32(0), shape=[2, 2])  # one value fills the shape, as in TF
    filled.ClearField("tensor_content")
    filled.float_val[:] = [5.0]
    np.testing.assert_array_equal(to_ndarray(filled), np.full((2, 2), 5.0, np.float32))
    assert to_ndarray(tf.make_tensor_proto(b"{}")).item() == b"{}"
    encoded = tf.make_tensor_proto(b"")  # TensorFlow's EncodeStringList of ["x" * 300]
    encoded.ClearField("string_val")
    encoded.tensor_content = bytes([0xAC, 0x02]) + b"x" * 300
    assert to_ndarray(encoded).item() == b"x" * 300
    bad = tf.make_tensor_proto(array)
    bad.tensor_content = bad.tensor_content[:-4]
    with pytest.raises(ValueError, match="needs 6"):
        to_ndarray(bad)


def test_enhance_round_trip_keeps_dtype_and_halves_pixel_size(served, rng):
    image = rng.integers(0, 60000, (70, 90)).astype(np.uint16)
    seen = []
    with EnhanceClient(served.target, "tiny", version=1, **SMALL_BUDGET) as client:
        result = client.enhance(image, 14.2, progress=lambda done, total: seen.append((done, total)))
    out = result.image
    assert isinstance(result, EnhanceResult)
    assert out.dtype == np.uint16 and out.shape == (140, 180)
    np.testing.assert_array_equal(out, nearest2x(image))  # gain 1: normalise + back is exact
    assert result.pixel_size_nm == pytest.approx(7.1) and result.input_pixel_size_nm == 14.2
    assert (result.model, result.version, result.scale, result.tile_size) == ("tiny", 1, 2, 32)
    assert result.server == served.target and result.consistency_map is None and result.consistency is None
    total = result.tiles
    assert total > 1 and seen[0] == (0, total) and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    with pytest.raises(AttributeError):
        result.version = 2  # frozen: the facts stay those of this image
    facts = result.facts()
    assert facts["model"] == "tiny" and facts["tiles"] == total and "consistency" not in facts


def test_whole_image_statistics_not_per_tile(served, rng):
    # v2 multiplies the normalised image by 2: out = 2 (x - mean) + mean with the WHOLE
    # image's mean; per-tile statistics would give each tile its own offset.
    image = np.linspace(0, 1000, 70 * 90, dtype=np.float32).reshape(70, 90) + rng.normal(0, 5, (70, 90)).astype(np.float32)
    with EnhanceClient(served.target, "tiny", version=2) as client:
        out = client.enhance(image, 14.2).image
    assert out.dtype == np.float32
    expected = 2 * (nearest2x(image) - image.mean(dtype=np.float64)) + image.mean(dtype=np.float64)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-2)


def test_integer_output_is_clipped_to_the_dtype(served):
    image = np.array([[0, 255] * 8] * 16, np.uint8)  # gain 2 overshoots both ends
    with EnhanceClient(served.target, "tiny", version=2) as client:
        out = client.enhance(image, 14.2).image
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255


@pytest.mark.parametrize(
    "kwargs, version", [({"version": 1}, 1), ({"version": 2}, 2), ({"label": "stable"}, 1), ({}, 2)]
)
def test_choose_version_or_label(served, kwargs, version):
    with EnhanceClient(served.target, "tiny", **kwargs) as client:
        assert client.enhance(np.ones((8, 8), np.float32), 14.2).version == version


@pytest.mark.parametrize(
    "shape, kwargs, tiles, tile_size",
    [
        ((75, 101), {}, 1, 101),  # default budget: the whole image is one request, exactly untiled
        ((75, 101), SMALL_BUDGET, 12, 32),  # a budget below one tile: the card's tiles
        ((75, 101), {"memory_budget_mb": 12, "concurrency": 1}, 4, 55),  # the largest tiles within the budget
        ((300, 300), {"max_message_mb": 1}, 4, 247),  # the whole output (1.4 MB) exceeds the message limit
    ],
)
def test_tiled_result_equals_untiled_on_a_served_conv_model(served, rng, shape, kwargs, tiles, tile_size):
    image = rng.normal(100, 20, shape).astype(np.float32)
    with EnhanceClient(served.target, "conv", **kwargs) as client:
        info = client.model_info()
        assert info.card["tile"] == {"size": 32, "overlap": 2, "divisor": 1}
        result = client.enhance(image, 14.2)
        assert (result.tiles, result.tile_size) == (tiles, tile_size)
        mean, std = image.mean(dtype=np.float64), image.std(dtype=np.float64)
        whole = EnhanceClient(served.target, "conv").predict(
            ((image - mean) / std).astype(np.float32)[None, ..., None], info)[0, ..., 0]
    untiled = whole * std + mean
    if tiles == 1:
        np.testing.assert_allclose(result.image, untiled, rtol=1e-6, atol=1e-4)
    border = 2 * 2 * info.card["tile"]["overlap"]
    inner = (slice(border, -border), slice(border, -border))
    np.testing.assert_allclose(result.image[inner], untiled[inner], atol=1e-3)


def test_a_client_shared_between_threads_stamps_each_image_with_its_own_facts(served, rng):
    """Two threads, one client, two versions and two tilings: each result carries its own."""
    from concurrent.futures import ThreadPoolExecutor

    images = {1: rng.normal(100, 20, (40, 50)).astype(np.float32), 2: rng.normal(100, 20, (80, 100)).astype(np.float32)}
    client = EnhanceClient(served.target, candidates=["tiny", "gel"], **SMALL_BUDGET)
    pixel = {1: 14.2, 2: 56.8}  # -> tiny (14.2 nm) and gel (56.8 nm)

    def run(k):
        return k, client.enhance(images[k], pixel[k], consistency=k == 2)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, [1, 2] * 4))
    expected = {k: client.tile_plan(client.choose_model(pixel[k]), *images[k].shape) for k in images}
    for k, result in results:
        assert result.model == ("tiny" if k == 1 else "gel")
        assert result.image.shape == tuple(2 * n for n in images[k].shape)
        assert result.pixel_size_nm == pytest.approx(pixel[k] / 2)
        assert result.tiles == _tile_count(images[k].shape, expected[k].tile)
        assert (result.consistency_map is not None) == (k == 2)
    assert len({r.tiles for _, r in results}) == 2


def _tile_count(shape, tile):
    from zoo.client.tiling import TileBlender

    return len(TileBlender(*shape, scale=2, tile=tile, context=2).tiles)


def test_for_pixel_size_picks_the_closest_model_and_warns(served):
    candidates = ["missing", "tiny", "gel"]
    assert EnhanceClient.for_pixel_size(served.target, 14.0, candidates).model == "tiny"
    assert EnhanceClient.for_pixel_size(served.target, 60.0, candidates).model == "gel"
    client = EnhanceClient(served.target, candidates=candidates)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = client.enhance(np.ones((8, 8), np.float32), 30.0)  # 47 % off the 56.8 nm model
    assert result.model == "gel"
    assert any("differs by 47%" in str(w.message) for w in caught)
    with pytest.raises(UserError, match="strict"):
        EnhanceClient(served.target, "tiny", strict=True).enhance(np.ones((8, 8), np.float32), 20.0)
    with pytest.raises(UserError, match="pixel size is unknown"):
        client.enhance(np.ones((8, 8), np.float32))
    with pytest.raises(UserError, match="none of the models"):
        EnhanceClient.for_pixel_size(served.target, 14.0, ["missing"])


def test_unknown_model_and_bad_images_are_clear_errors(served):
    with pytest.raises(ServerError, match="Servable not found for request: Latest\\(nope\\)") as info:
        EnhanceClient(served.target, "nope").enhance(np.ones((8, 8), np.float32), 14.2)
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    client = EnhanceClient(served.target, "tiny")
    with pytest.raises(UserError, match="2-D"):
        client.enhance(np.ones((2, 8, 8), np.float32), 14.2)
    with pytest.raises(ServerError, match="deadline"):
        client.enhance(np.ones((8, 8), np.float32), 14.2, deadline_s=0)


def test_unreachable_server_fails_after_retries():
    client = EnhanceClient(f"127.0.0.1:{free_port()}", "tiny", retries=2, backoff_s=0.01, timeout=5)
    with pytest.raises(ServerError, match="UNAVAILABLE"):
        client.model_info()


def test_client_retries_until_a_restarted_server_answers(client_zoo, monkeypatch):
    import zoo.client.transport as transport
    from zoo.server.server import EmbeddedServer

    port = free_port()
    first = EmbeddedServer(client_zoo, port=port, poll_seconds=0).start()
    client = EnhanceClient(f"127.0.0.1:{port}", "tiny", retries=10, backoff_s=0.05)
    image = np.ones((8, 8), np.float32)
    client.enhance(image, 14.2)
    first.stop(grace=0)

    restarted = []
    real_sleep = transport.time.sleep

    def restart_on_first_backoff(seconds):  # the server comes back while the client waits
        if not restarted:
            restarted.append(EmbeddedServer(client_zoo, port=port, poll_seconds=0).start())
        real_sleep(seconds)

    monkeypatch.setattr(transport.time, "sleep", restart_on_first_backoff)
    try:
        out = client.enhance(image, 14.2).image
        assert restarted and out.shape == (16, 16)
    finally:
        for server in restarted:
            server.stop(grace=0)


def test_round_robin_over_replicas_and_past_a_dead_one(client_zoo):
    from zoo.server.server import EmbeddedServer

    with EmbeddedServer(client_zoo, port=0, poll_seconds=0) as a, EmbeddedServer(client_zoo, port=0, poll_seconds=0) as b:
        dead = f"127.0.0.1:{free_port()}"
        client = EnhanceClient([a.target, dead, b.target], "tiny", version=1, backoff_s=0.01, batch_size=1,
                               **SMALL_BUDGET)
        out = client.enhance(np.arange(64 * 64, dtype=np.float32).reshape(64, 64), 14.2).image
        assert out.shape == (128, 128)
        assert a.prediction.requests >= 2 and b.prediction.requests >= 2


def test_tensor_content_responses_give_the_same_result(client_zoo, rng):
    # as from tensorflow_model_server --enable_serialization_as_tensor_content (the card too)
    from zoo.server.server import EmbeddedServer

    image = rng.integers(0, 4000, (40, 40)).astype(np.uint16)
    with EmbeddedServer(client_zoo, port=0, poll_seconds=0, tensor_content=True) as srv:
        out = EnhanceClient(srv.target, "tiny", version=1).enhance(image, 14.2).image
    np.testing.assert_array_equal(out, nearest2x(image))


def test_flat_image_does_not_divide_by_zero(served):
    out = EnhanceClient(served.target, "tiny", version=2).enhance(np.full((10, 12), 7, np.uint16), 14.2).image
    assert (out == 7).all()


def test_a_version_replaced_mid_image_restarts_the_image_on_the_new_one(tmp_path):
    """Tiles of one image never mix two versions: the image is redone on the new version."""
    from tests.server.tiny_models import publish
    from zoo.server.server import EmbeddedServer

    root = tmp_path / "zoo"
    publish(root, "tiny", gain=1.0)
    image = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    with EmbeddedServer(root, port=0, poll_seconds=0) as srv:
        client = EnhanceClient(srv.target, "tiny", batch_size=1, concurrency=1, **SMALL_BUDGET)

        def publish_after_first_tile(done, total):
            if done == 1 and srv.manager.available()["tiny"] == [1]:
                publish(root, "tiny", gain=2.0)
                srv.manager.poll()  # loads v2, then unloads v1 (no longer the latest)
                assert srv.manager.available()["tiny"] == [2]

        result = client.enhance(image, 14.2, progress=publish_after_first_tile)
    out = result.image
    assert result.version == 2
    mean = image.mean(dtype=np.float64)
    np.testing.assert_allclose(out, 2 * (nearest2x(image) - mean) + mean, rtol=1e-4, atol=1e-2)


def test_a_larger_tile_size_means_fewer_tiles_and_the_same_result(served, rng):
    image = rng.normal(100, 20, (75, 101)).astype(np.float32)
    with EnhanceClient(served.target, "conv", tile_size=32) as card_tiles, \
            EnhanceClient(served.target, "conv", tile_size=64) as big:
        small = card_tiles.enhance(image, 14.2)
        large = big.enhance(image, 14.2)
        tiny_request = EnhanceClient(served.target, "conv", tile_size=8)  # below the card's 32: card wins
        tiny = tiny_request.enhance(image, 14.2)
    assert large.tiles < small.tiles == tiny.tiles and (small.tile_size, large.tile_size) == (32, 64)
    np.testing.assert_allclose(large.image, small.image, atol=1e-3)


def overshooting_image(rng):
    """uint16 scan in 20000-45000 with 5 pixels at 2000 and 3 at 64000: tiny v2 (gain 2) maps
    x to 2x - mean, which only those 8 push beyond [0, 65535] (by thousands of grey levels)."""
    image = rng.integers(20000, 45001, (24, 30)).astype(np.uint16)
    flat = image.reshape(-1)
    spots = rng.choice(flat.size, 8, replace=False)
    flat[spots[:5]], flat[spots[5:]] = 2000, 64000
    return image


def test_clipping_is_counted_and_float32_output_keeps_the_overshoot(served, rng):
    image = overshooting_image(rng)
    expected = 2.0 * image.astype(np.float64) - image.mean(dtype=np.float64)
    with EnhanceClient(served.target, "tiny", version=2) as client:
        result = client.enhance(image, 14.2)
        out, clipping = result.image, result.clipping
        assert out.dtype == np.uint16
        assert clipping == {"dtype": "uint16", "range": [0, 65535], "below": 5 * 4, "above": 3 * 4,
                            "share": 32 / out.size}
        assert (out[nearest2x(image) == 2000] == 0).all() and (out[nearest2x(image) == 64000] == 65535).all()

        result = client.enhance(image, 14.2, dtype="float32")
        floats = result.image
        assert floats.dtype == np.float32
        assert result.clipping == {"dtype": "float32", "range": None, "below": 0, "above": 0,
                                               "share": 0.0}
        np.testing.assert_allclose(floats, nearest2x(expected), atol=0.05)  # below 0, above 65535 kept
        assert floats.min() < -20000 and floats.max() > 90000
        # --consistent: the clipping is the written (back-projected) output's
        result = client.enhance(image, 14.2, consistent=True)
        projected, clipping = result.image, result.clipping
        assert clipping["below"] <= np.count_nonzero(projected == 0)
        assert clipping["above"] <= np.count_nonzero(projected == 65535)
        with pytest.raises(UserError, match="output dtype must be one of input, float32"):
            client.enhance(image, 14.2, dtype="int8")
    with EnhanceClient(served.target, "tiny", version=1) as client:
        assert client.enhance(image, 14.2).clipping["share"] == 0.0  # gain 1: nothing beyond the range
