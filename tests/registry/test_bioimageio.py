"""bioimage.io packages (`semzoo zoo export --format bioimageio`) of a tiny zoo version.

The package's content is checked here without bioimageio.spec; the last tests run
bioimageio.spec's validation and bioimageio.core's test_model when the extra is installed.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from zoo.errors import UserError
from zoo.registry import bioimageio
from zoo.registry.card import read_card
from zoo.registry.store import Zoo

HAVE_SPEC = bioimageio._spec_installed()


@pytest.fixture(scope="module")
def package(tmp_path_factory, _tiny_zoo_master):
    """tiny:1 exported once (validated with bioimageio.spec where it is installed)."""
    out = tmp_path_factory.mktemp("bioimageio") / "tiny.zip"
    result = bioimageio.export_zoo_version(Zoo(_tiny_zoo_master), "tiny:1", out)
    return out, result


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data))


def test_package_holds_the_described_files(package, _tiny_zoo_master):
    path, result = package
    files = _members(path)
    assert set(files) == {"rdf.yaml", "README.md", "cover.png", "card.json", "test_input.npy",
                          "test_output.npy", "sample_input.tif", "sample_output.tif",
                          "tf_saved_model.zip"}
    assert result["bytes"] == path.stat().st_size and result["model"] == "tiny:1"
    card_text = (_tiny_zoo_master / "tiny" / "1" / "assets.extra" / "card.json").read_bytes()
    assert files["card.json"] == card_text
    # The SavedModel without TF Serving's warmup records, at the zip's root (bioimage.io's layout).
    with zipfile.ZipFile(io.BytesIO(files["tf_saved_model.zip"])) as weights:
        names = set(weights.namelist())
    assert {"saved_model.pb", "assets/card.json", "variables/variables.index"} <= names
    assert not any(n.startswith("assets.extra") for n in names)
    # Every file rdf.yaml names is in the package.
    rdf = files["rdf.yaml"].decode()
    for name in files:
        if name != "rdf.yaml":
            assert f'"{name}"' in rdf, name


def test_description_maps_the_card(_tiny_zoo_master):
    card = read_card(_tiny_zoo_master / "tiny" / "1")
    descr = bioimageio.description(card, version=1, output_std=0.9)
    (inp,), (out,) = descr["inputs"], descr["outputs"]
    assert [a["type"] for a in inp["axes"]] == ["batch", "space", "space", "channel"]
    y_in, x_in, y_out, x_out = inp["axes"][1], inp["axes"][2], out["axes"][1], out["axes"][2]
    assert (y_in["id"], x_in["id"]) == ("y", "x")
    tile = card["tile"]
    for axis in (y_in, x_in):
        assert axis["unit"] == "nanometer" and axis["scale"] == card["input_pixel_size_nm"] == 14.2
        assert axis["size"] == {"min": 2 * tile["overlap"] + tile["divisor"], "step": tile["divisor"]}
    for axis, ref in ((y_out, "y"), (x_out, "x")):
        assert axis["unit"] == "nanometer" and axis["scale"] == pytest.approx(7.1)
        assert axis["size"] == {"tensor_id": "image", "axis_id": ref, "offset": 0}
        assert axis["halo"] == 2 * tile["overlap"]
    assert inp["id"] == "image" and out["id"] == "enhanced"  # the signature's tensor names
    assert inp["preprocessing"][-1] == {
        "id": "zero_mean_unit_variance", "kwargs": {"axes": ["y", "x", "channel"], "eps": 1e-6}}
    assert "postprocessing" not in out  # out is in the input's std units, said in its description
    assert descr["cite"] == [bioimageio.PAPER] and "10.1038/s41598-019-48444-2" in str(descr["cite"])
    assert descr["license"] == "Apache-2.0"
    weights = descr["weights"]["tensorflow_saved_model_bundle"]
    assert weights["tensorflow_version"] == card["versions"]["tensorflow"]
    semzoo = descr["config"]["semzoo"]
    assert semzoo["model"] == "tiny:1" and semzoo["parent"] is None
    assert semzoo["training"]["preset"] == "tiny" and semzoo["tile"] == tile


def test_test_output_is_the_saved_model_on_the_normalised_input(package, _tiny_zoo_master):
    path, _ = package
    files = _members(path)
    x, y = _npy(files["test_input.npy"]), _npy(files["test_output.npy"])
    card = read_card(_tiny_zoo_master / "tiny" / "1")
    assert x.dtype == y.dtype == np.float32
    h, w = x.shape[1:3]
    assert x.shape == (1, h, w, 1) and y.shape == (1, 2 * h, 2 * w, 1)
    assert h % card["tile"]["divisor"] == 0 and h >= 2 * card["tile"]["overlap"] + card["tile"]["divisor"]
    # The input is in a detector's intensities (not already normalised)...
    assert x.mean() > 20 and x.std() > 5
    # ...and the output is what the SavedModel gives for (x - mean) / (std + 1e-6).
    manual = (x[0, :, :, 0] - x.mean()) / (x.std() + 1e-6)
    expected = bioimageio.run_saved_model(_tiny_zoo_master / "tiny" / "1", manual.astype(np.float32))
    np.testing.assert_allclose(y[0, :, :, 0], expected, rtol=1e-4, atol=1e-4)


def test_cover_is_two_to_one_and_shows_both_images(package):
    import cv2

    cover = cv2.imdecode(np.frombuffer(_members(package[0])["cover.png"], np.uint8), cv2.IMREAD_COLOR)
    assert cover.shape[:2] == bioimageio.COVER_SIZE and cover.shape[1] == 2 * cover.shape[0]
    left, right = cover[30:, : cover.shape[1] // 2 - 2], cover[30:, cover.shape[1] // 2 + 2 :]
    assert left.std() > 10 and right.std() > 10  # images, not blank panels


def test_readme_documents_normalisation_training_and_licences(package):
    text = _members(package[0])["README.md"].decode()
    for expected in ("14.2 nm/px", "7.1 nm/px", "zero_mean_unit_variance",
                     "enhanced * std(input) + mean(input)", "10.1038/s41598-019-48444-2",
                     "preset `tiny`", "Apache-2.0", "## Validation"):
        assert expected in text, expected


def test_readme_lists_training_sources_and_the_parent(tmp_path):
    card = json.loads(json.dumps(read_card(Path(__file__).parents[2] / "models" / "general" / "1")))
    text = bioimageio.documentation(card, version=1, output_std=0.85)
    assert "| MIT |" in text and "BSD-3-Clause" in text and "general:1" in text
    assert "HR-only" in text


def test_yaml_writer_round_trips(tmp_path):
    yaml = pytest.importorskip("ruyaml")
    value = {"a": [1, 2.5, {"b": "x: y", "c": None, "d": True}], "e": {}, "f": [], "g": "é\n#"}
    loaded = yaml.YAML(typ="safe").load(bioimageio.to_yaml(value))
    assert loaded == value


def test_existing_file_needs_overwrite_and_bad_paths_are_one_line_errors(tmp_path, _tiny_zoo_master):
    zoo = Zoo(_tiny_zoo_master)
    existing = tmp_path / "x.zip"
    existing.write_bytes(b"keep")
    with pytest.raises(UserError, match="exists; use --overwrite"):
        bioimageio.export_zoo_version(zoo, "tiny", existing)
    assert existing.read_bytes() == b"keep"
    with pytest.raises(UserError, match="is a .zip file"):
        bioimageio.export_zoo_version(zoo, "tiny", tmp_path / "x.tar")
    with pytest.raises(UserError, match="unknown export format"):
        bioimageio.export_zoo_version(zoo, "tiny", tmp_path / "y.zip", fmt="onnx")
    with pytest.raises(UserError, match="at least"):
        bioimageio.export_bioimageio(_tiny_zoo_master / "tiny" / "1", tmp_path / "y.zip", version=1,
                                     image=np.ones((40, 40), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.zip"]


def test_a_failing_check_leaves_no_output(tmp_path, _tiny_zoo_master, monkeypatch):
    def reject(path):
        assert Path(path).is_file() and Path(path).parent == tmp_path  # checked before the rename
        raise UserError("bioimageio.spec rejects the package: nope")

    monkeypatch.setattr(bioimageio, "validate_package", reject)
    with pytest.raises(UserError, match="nope"):
        bioimageio.export_zoo_version(Zoo(_tiny_zoo_master), "tiny", tmp_path / "t.zip")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not HAVE_SPEC, reason="bioimageio.spec not installed (pip install 'semzoo[bioimageio]')")
def test_bioimageio_spec_accepts_the_package_and_rejects_a_broken_one(package, tmp_path, monkeypatch,
                                                                     _tiny_zoo_master):
    assert package[1]["validation"].endswith(": valid-format")
    real = bioimageio.description

    def broken(*args, **kwargs):
        descr = real(*args, **kwargs)
        descr["inputs"][0]["axes"][1]["unit"] = "parsec"  # not a unit bioimage.io knows
        return descr

    monkeypatch.setattr(bioimageio, "description", broken)
    with pytest.raises(UserError, match="rejects the package"):
        bioimageio.export_zoo_version(Zoo(_tiny_zoo_master), "tiny", tmp_path / "b.zip")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(not bioimageio._core_installed(),
                    reason="bioimageio.core not installed (pip install 'semzoo[bioimageio]')")
def test_bioimageio_core_test_model_passes(package, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert bioimageio.test_package(package[0]).endswith("test_model: passed")
    assert list(tmp_path.iterdir()) == []  # its unzipped weights went to a temp folder
