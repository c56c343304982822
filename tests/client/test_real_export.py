"""Export -> publish -> serve -> client round trip on the registry's real tiny SavedModels.

The zoo comes from ``tests.zoo_fixtures.make_tiny_zoo`` (the registry's own export: Keras
ExportArchive, ``card`` signature, warmup records; the ``tiny`` generator preset once zoo.nets
provides it), so this checks the contract between the registry, the server and the client.
"""

from __future__ import annotations

import numpy as np
import pytest

from zoo.client.client import EnhanceClient

pytestmark = pytest.mark.slow  # exports two real tiny generators (~8 s)


@pytest.fixture(scope="module")
def real_zoo(tmp_path_factory):
    from tests.zoo_fixtures import make_tiny_zoo

    return make_tiny_zoo(tmp_path_factory.mktemp("real") / "models", versions=2, seeds=[0, 1])


@pytest.fixture(scope="module")
def real_server(real_zoo):
    from zoo.server.server import EmbeddedServer

    with EmbeddedServer(real_zoo, port=0, poll_seconds=0) as srv:
        yield srv


def test_metadata_and_card_come_through_the_server(real_server, real_zoo):
    from zoo.registry.store import Zoo

    with EnhanceClient(real_server.target, "tiny", label="stable") as client:
        info = client.model_info()
    assert (info.name, info.version, info.input_name, info.output_name) == ("tiny", 1, "image", "enhanced")
    assert info.card == Zoo(real_zoo).card("tiny", 1)


def test_versions_and_labels_answer_with_their_own_weights(real_server, rng):
    image = rng.normal(500, 50, (24, 40)).astype(np.float32)
    results = {}
    for kwargs in ({"version": 1}, {"version": 2}, {"label": "stable"}, {}):
        with EnhanceClient(real_server.target, "tiny", **kwargs) as client:
            result = client.enhance(image, 14.2)
        out, pixel = result.image, result.pixel_size_nm
        results[tuple(kwargs.items())] = (result.version, out)
        assert out.shape == (48, 80) and pixel == pytest.approx(7.1)
    v1, v2 = results[(("version", 1),)][1], results[(("version", 2),)][1]
    assert not np.allclose(v1, v2)  # two seeds, two models
    assert results[(("label", "stable"),)][0] == 1 and np.array_equal(results[(("label", "stable"),)][1], v1)
    assert results[()][0] == 2 and np.array_equal(results[()][1], v2)


@pytest.mark.parametrize("extra", [(13, 77), (0, 0)])
def test_tiled_equals_untiled_away_from_the_border(real_server, rng, extra):
    with EnhanceClient(real_server.target, "tiny", version=1) as client:
        tile = client.model_info().card["tile"]
    # big enough for several tiles per axis; (0, 0) = sizes that are multiples of the divisor
    shape = (tile["size"] + 2 * tile["divisor"] + extra[0], tile["size"] + 6 * tile["divisor"] + extra[1])
    image = rng.normal(1000, 100, shape).astype(np.float32)
    with EnhanceClient(real_server.target, "tiny", version=1, memory_budget_mb=1) as client:
        info = client.model_info()
        result = client.enhance(image, 14.2)
        tiled = result.image
        assert result.tiles > 1  # a budget below one tile: the card's 32 px tiles really tile this image
        mean, std = image.mean(dtype=np.float64), image.std(dtype=np.float64)
        whole = client.predict(((image - mean) / std).astype(np.float32)[None, ..., None], info)[0, ..., 0]
    # compare in the model's (normalised) units
    # the exported function mirror-pads to the divisor at the bottom/right: skip that border
    border = 2 * (info.card["tile"]["overlap"] + info.card["tile"]["divisor"])
    inner = (slice(border, -border), slice(border, -border))
    np.testing.assert_allclose((tiled[inner] - mean) / std, whole[inner], atol=1e-3)
