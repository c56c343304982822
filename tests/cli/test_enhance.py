"""`semzoo enhance` end to end: embedded server or --server, files and folders, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from tests.server.tiny_models import nearest2x, publish


@pytest.fixture(scope="module")
def cli_zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-zoo")
    publish(root, "tiny", gain=1.0, label="stable")  # v1, 14.2 nm
    publish(root, "tiny", gain=2.0)  # v2 (latest, unlabelled)
    publish(root, "gel", gain=1.0, pixel_size_nm=56.8)
    return root


def sem_file(path, pixel_size_nm=14.2, shape=(40, 52), seed=0):
    from zoo.data.sem_tiff import write_sem

    image = np.random.default_rng(seed).integers(0, 50000, shape).astype(np.uint16)
    write_sem(path, image, pixel_size_nm)
    return image


def test_enhance_one_file_writes_doubled_tiff_with_provenance_and_compare(cli, cli_zoo, tmp_path):
    import cv2

    from zoo.data.sem_tiff import read_sem

    image = sem_file(tmp_path / "in.tif")
    out = tmp_path / "out.tif"
    result = cli("enhance", tmp_path / "in.tif", "-o", out, "--zoo", cli_zoo, "--model", "tiny", "--compare")
    assert result.exit_code == 0, result.output
    sem = read_sem(out)
    assert sem.image.shape == (80, 104) and sem.image.dtype == np.uint16
    assert sem.pixel_size_nm == pytest.approx(7.1)
    np.testing.assert_array_equal(sem.image, nearest2x(image))  # tiny v1 (stable) is identity x2
    described = sem.metadata["description"]
    assert described["model"] == "tiny" and described["model_version"] == 1  # bare name -> @stable
    assert described["input_file"] == str((tmp_path / "in.tif").resolve())
    assert described["server"].startswith("embedded") and sem.metadata["version"]
    png = cv2.imread(str(tmp_path / "out.compare.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint8 and png.shape[0] > 80 and png.shape[1] > 2 * 104
    # Both outputs get a plain file's permissions (mkstemp alone would leave the PNG 0600).
    assert (tmp_path / "out.compare.png").stat().st_mode & 0o777 == out.stat().st_mode & 0o777


def test_enhance_folder_picks_model_by_pixel_size(cli, cli_zoo, tmp_path):
    from zoo.data.sem_tiff import read_sem

    src = tmp_path / "src"
    src.mkdir()
    sem_file(src / "gold.tif", 14.2)
    sem_file(src / "gel.tiff", 56.0)
    result = cli("enhance", src, "-o", tmp_path / "out", "--zoo", cli_zoo)
    assert result.exit_code == 0, result.output
    gold, gel = read_sem(tmp_path / "out" / "gold.tif"), read_sem(tmp_path / "out" / "gel.tif")
    assert gold.metadata["description"]["model"] == "tiny" and gold.pixel_size_nm == pytest.approx(7.1)
    assert gel.metadata["description"]["model"] == "gel" and gel.pixel_size_nm == pytest.approx(28.0)


def test_enhance_gives_the_general_model_every_image_no_specimen_model_is_meant_for(cli, cli_zoo, tmp_path):
    import shutil

    from zoo.data.sem_tiff import read_sem

    zoo = tmp_path / "zoo"
    shutil.copytree(cli_zoo, zoo)
    publish(zoo, "general", gain=1.0, pixel_size_nm=30.0, pixel_size_range_nm=(10.0, 90.0))
    src = tmp_path / "src"
    src.mkdir()
    sem_file(src / "gold.tif", 14.5)  # within 10% of tiny's 14.2 nm: the specimen model
    sem_file(src / "tio2.tif", 7.3)  # no specimen model at 7.3 nm: general (outside its range: a warning)
    sem_file(src / "fibre.tif", 40.0)  # between the specimen models: general
    result = cli("enhance", src, "-o", tmp_path / "out", "--zoo", zoo)
    assert result.exit_code == 0, result.output
    models = {n: read_sem(tmp_path / "out" / f"{n}.tif").metadata["description"]["model"]
              for n in ("gold", "tio2", "fibre")}
    assert models == {"gold": "tiny", "tio2": "general", "fibre": "general"}
    warned = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "7.3 nm" in warned[0] and "10-90 nm range" in warned[0]


def test_enhance_by_version_and_label_through_a_running_server(cli, cli_zoo, tmp_path):
    from zoo.data.sem_tiff import read_sem
    from zoo.server.server import EmbeddedServer

    sem_file(tmp_path / "in.tif")
    with EmbeddedServer(cli_zoo, port=0, poll_seconds=0) as srv:
        for model, version in (("tiny", 1), ("tiny:2", 2), ("tiny@stable", 1), ("tiny:latest", 2)):
            out = tmp_path / f"out-{version}-{model.replace(':', '_').replace('@', '_')}.tif"
            result = cli("enhance", tmp_path / "in.tif", "-o", out, "--server", srv.target, "--model", model)
            assert result.exit_code == 0, result.output
            described = read_sem(out).metadata["description"]
            assert (described["model_version"], described["server"]) == (version, srv.target)


@pytest.mark.parametrize(
    "args, message",
    [
        (("--model", "nope"), "no model named 'nope'"),
        (("--model", "../tiny"), "invalid model '../tiny'"),
        (("--model", "tiny/1"), "invalid model"),
        (("--model", "tiny:9"), "has no version 9"),
        (("--model", "tiny@beta"), "has no label 'beta'"),
        (("--model", "gel", "--strict"), "strict"),
    ],
)
def test_bad_model_is_a_clear_error_without_output(cli, cli_zoo, tmp_path, args, message):
    (tmp_path / "src").mkdir()
    sem_file(tmp_path / "src" / "in.tif")
    result = cli("enhance", tmp_path / "src" / "in.tif", "-o", tmp_path / "out.tif", "--zoo", cli_zoo, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "out.tif").exists()
    result = cli("enhance", tmp_path / "src", "-o", tmp_path / "out", "--zoo", cli_zoo, *args)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out").exists()  # not even an empty output folder


def test_missing_pixel_size_is_an_error_unless_given(cli, cli_zoo, tmp_path):
    from zoo.data.sem_tiff import read_sem

    sem_file(tmp_path / "in.tif", pixel_size_nm=None)
    out = tmp_path / "out.tif"
    result = cli("enhance", tmp_path / "in.tif", "-o", out, "--zoo", cli_zoo, "--model", "tiny")
    assert result.exit_code == 2 and "pixel size" in result.output and not out.exists()
    result = cli("enhance", tmp_path / "in.tif", "-o", out, "--zoo", cli_zoo, "--model", "tiny", "--pixel-size", "14")
    assert result.exit_code == 0, result.output
    assert read_sem(out).pixel_size_nm == pytest.approx(7.0)


def test_one_bad_file_in_a_folder_means_no_output_at_all(cli, cli_zoo, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    sem_file(src / "a.tif")
    sem_file(src / "b.tif", pixel_size_nm=None)
    result = cli("enhance", src, "-o", tmp_path / "out", "--zoo", cli_zoo, "--model", "tiny")
    assert result.exit_code == 2 and "b.tif" in result.output
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_overwrite(cli, cli_zoo, tmp_path):
    sem_file(tmp_path / "in.tif")
    out = tmp_path / "out.tif"
    out.write_bytes(b"precious")
    result = cli("enhance", tmp_path / "in.tif", "-o", out, "--zoo", cli_zoo, "--model", "tiny")
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert out.read_bytes() == b"precious"
    result = cli("enhance", tmp_path / "in.tif", "-o", out, "--zoo", cli_zoo, "--model", "tiny", "--overwrite")
    assert result.exit_code == 0 and out.read_bytes() != b"precious"


def test_bad_paths_are_clear_errors(cli, cli_zoo, tmp_path):
    result = cli("enhance", tmp_path / "missing.tif", "-o", tmp_path / "o.tif", "--zoo", cli_zoo)
    assert result.exit_code == 2 and "no such file" in result.output
    sem_file(tmp_path / "in.tif")
    result = cli("enhance", tmp_path / "in.tif", "-o", tmp_path / "o.png", "--zoo", cli_zoo)
    assert result.exit_code == 2 and ".tif" in result.output
    result = cli("enhance", tmp_path / "in.tif", "-o", tmp_path / "in.tif", "--zoo", cli_zoo, "--overwrite")
    assert result.exit_code == 2 and "input itself" in result.output
    result = cli("enhance", tmp_path / "in.tif", "-o", tmp_path / "o.tif", "--zoo", tmp_path / "nozoo")
    assert result.exit_code == 2 and "no models" in result.output


def test_enhance_through_a_server_never_imports_tensorflow(cli_zoo, tmp_path):
    """A client machine needs numpy, grpcio and the protos, not TensorFlow or Keras."""
    import subprocess
    import sys

    from zoo.data.sem_tiff import read_sem
    from zoo.server.server import EmbeddedServer

    sem_file(tmp_path / "in.tif")
    code = (
        "import sys\nfrom zoo.cli.main import app\n"
        "try:\n    app(sys.argv[1:], prog_name='semzoo')\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print('exit', code, 'tf', 'tensorflow' in sys.modules, 'keras', 'keras' in sys.modules)\n"
    )
    with EmbeddedServer(cli_zoo, port=0, poll_seconds=0) as srv:
        args = ["enhance", str(tmp_path / "in.tif"), "-o", str(tmp_path / "out.tif"), "--server", srv.target,
                "--model", "tiny@stable"]
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "exit 0 tf False keras False", done.stdout + done.stderr
    assert read_sem(tmp_path / "out.tif").image.shape == (80, 104)


# -- the data-consistency map (issue 13) ---------------------------------------------------------

@pytest.fixture(scope="module")
def trust_zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust-zoo")
    publish(root, "tiny", gain=1.0)  # nearest x2: agrees with a smooth input
    publish(root, "inverted", gain=-1.0)  # the input upside down: contradicts it everywhere
    return root


def smooth_sem_file(path, pixel_size_nm=14.2, shape=(40, 52), seed=0):
    """A smooth specimen (blobs of 4-6 px) with noise of 20 counts, as uint16."""
    from zoo.data.sem_tiff import write_sem

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    image = np.full(shape, 10000.0)
    for _ in range(12):
        cy, cx, s = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(4, 6)
        image += 3000 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * s * s))
    image = np.rint(image + rng.normal(0, 20, shape)).astype(np.uint16)
    write_sem(path, image, pixel_size_nm)
    return image


def test_every_output_has_its_consistency_map_beside_it(cli, trust_zoo, tmp_path):
    import cv2

    from zoo.data.sem_tiff import read_sem

    smooth_sem_file(tmp_path / "in.tif")
    out = tmp_path / "out.tif"
    result = cli("enhance", tmp_path / "in.tif", "-o", out, "--zoo", trust_zoo, "--model", "tiny", "--compare")
    assert result.exit_code == 0, result.output
    assert "consistency check" not in result.output
    side = read_sem(tmp_path / "out.consistency.tif")
    assert side.image.dtype == np.float32 and side.image.shape == (40, 52)  # the input's grid
    assert side.pixel_size_nm == pytest.approx(14.2)  # and its ImageJ scale
    summary = read_sem(out).metadata["description"]["consistency"]
    assert summary["flagged"] is False and summary["file"] == "out.consistency.tif"
    assert {"share_beyond_3_sigma", "mean_abs_z", "threshold", "inconsistent_share"} <= set(summary)
    assert side.metadata["description"]["consistency"]["mean_abs_z"] == summary["mean_abs_z"]
    assert np.mean(np.abs(side.image)) == pytest.approx(summary["mean_abs_z"], abs=0.2)
    png = cv2.imread(str(tmp_path / "out.compare.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape[1] > 3 * 104  # input | output | consistency


def test_an_inconsistent_output_warns_and_strict_writes_nothing(cli, trust_zoo, tmp_path):
    smooth_sem_file(tmp_path / "in.tif")
    args = ("enhance", tmp_path / "in.tif", "--zoo", trust_zoo, "--model", "inverted", "--compare")
    result = cli(*args, "-o", tmp_path / "out.tif")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "consistency check" in line]
    assert len(lines) == 1 and lines[0].startswith("warning:") and "semzoo finetune" in lines[0]
    assert "%" in lines[0] and (tmp_path / "out.consistency.tif").exists()

    strict = tmp_path / "strict"
    strict.mkdir()
    result = cli(*args, "-o", strict / "out.tif", "--strict")
    assert result.exit_code == 2 and result.output.count("error:") == 1 and "consistency check" in result.output
    assert "Traceback" not in result.output and list(strict.iterdir()) == []


def test_consistent_projects_the_output_and_keeps_the_models_own_summary(cli, trust_zoo, tmp_path):
    from zoo.data.sem_tiff import read_sem

    smooth_sem_file(tmp_path / "in.tif")
    out = tmp_path / "out.tif"
    result = cli("enhance", tmp_path / "in.tif", "-o", out, "--zoo", trust_zoo, "--model", "tiny", "--consistent")
    assert result.exit_code == 0, result.output
    summary = read_sem(out).metadata["description"]["consistency"]
    assert summary["projected"] is True
    assert summary["mean_abs_z"] <= summary["before_projection"]["mean_abs_z"]


def test_the_sidecar_is_never_left_half_written(cli, trust_zoo, tmp_path, monkeypatch):
    import tifffile

    smooth_sem_file(tmp_path / "in.tif")
    real_imwrite = tifffile.imwrite

    def failing(path, data, **kwargs):
        if np.asarray(data).dtype == np.float32:  # the map, not the uint16 output
            with open(path, "wb") as f:
                f.write(b"II*\0 half")
            raise OSError("disk full")
        return real_imwrite(path, data, **kwargs)

    monkeypatch.setattr(tifffile, "imwrite", failing)
    result = cli("enhance", tmp_path / "in.tif", "-o", tmp_path / "out.tif", "--zoo", trust_zoo, "--model", "tiny")
    assert result.exit_code != 0 and "disk full" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]  # no output, no map, no temp file


def test_clipped_share_is_recorded_warned_about_and_float32_avoids_it(cli, cli_zoo, tmp_path):
    from zoo.data.sem_tiff import read_sem, write_sem

    rng = np.random.default_rng(3)
    image = rng.integers(20000, 45001, (40, 52)).astype(np.uint16)
    image[5, 7:17] = 64000  # 10 of 2080 input pixels: tiny v2 (gain 2) pushes them past 65535
    write_sem(tmp_path / "in.tif", image, 14.2)
    result = cli("enhance", tmp_path / "in.tif", "-o", tmp_path / "out.tif", "--zoo", cli_zoo, "--model", "tiny:2")
    assert result.exit_code == 0, result.output
    described = read_sem(tmp_path / "out.tif").metadata["description"]
    assert described["output_dtype"] == "uint16"
    assert described["clipping"] == {"dtype": "uint16", "range": [0, 65535], "below": 0, "above": 40,
                                     "share": 40 / (80 * 104)}
    clipped = [line for line in result.stderr.splitlines() if "clipped" in line]
    assert clipped == [f"warning: {tmp_path / 'in.tif'}: 0.48% of the output's pixels were clipped to uint16's "
                       "range [0, 65535] (0 below, 40 above); --dtype float32 keeps them"]

    result = cli("enhance", tmp_path / "in.tif", "-o", tmp_path / "float.tif", "--zoo", cli_zoo, "--model",
                 "tiny:2", "--dtype", "float32")
    assert result.exit_code == 0, result.output
    assert "clipped" not in result.stderr
    sem = read_sem(tmp_path / "float.tif")
    assert sem.image.dtype == np.float32 and sem.image.max() > 65535 and sem.pixel_size_nm == pytest.approx(7.1)
    assert sem.metadata["description"]["output_dtype"] == "float32"
    assert sem.metadata["description"]["clipping"]["share"] == 0.0

    result = cli("enhance", tmp_path / "in.tif", "-o", tmp_path / "x.tif", "--zoo", cli_zoo, "--dtype", "int8")
    assert result.exit_code == 2 and "int8" in result.output


def test_a_small_clipped_share_is_recorded_without_a_warning(cli, cli_zoo, tmp_path):
    from zoo.data.sem_tiff import read_sem, write_sem

    image = np.random.default_rng(4).integers(20000, 45001, (40, 52)).astype(np.uint16)
    image[5, 7] = 64000  # 4 of 8320 output pixels clipped: 0.05%, under the 0.1% that warns
    write_sem(tmp_path / "in.tif", image, 14.2)
    result = cli("enhance", tmp_path / "in.tif", "-o", tmp_path / "out.tif", "--zoo", cli_zoo, "--model", "tiny:2")
    assert result.exit_code == 0, result.output
    assert read_sem(tmp_path / "out.tif").metadata["description"]["clipping"]["above"] == 4
    assert "clipped" not in result.stderr


def test_memory_budget_chooses_whole_image_or_tiles_and_the_output_is_the_same(cli, cli_zoo, tmp_path):
    from zoo.data.sem_tiff import read_sem

    image = sem_file(tmp_path / "in.tif", shape=(100, 90))
    outputs = {}
    for budget in ("4096", "1"):  # the default: one request; 1 MiB: the card's tiles
        out = tmp_path / f"out-{budget}.tif"
        result = cli("enhance", tmp_path / "in.tif", "-o", out, "--zoo", cli_zoo, "--model", "tiny",
                     "--memory-budget", budget)
        assert result.exit_code == 0, result.output
        outputs[budget] = read_sem(out)
    whole, tiled = outputs["4096"].metadata["description"], outputs["1"].metadata["description"]
    assert whole["tiles"] == 1 and whole["tile_size"] >= 100
    assert tiled["tiles"] > 1 and tiled["tile_size"] < 90
    np.testing.assert_array_equal(outputs["1"].image, outputs["4096"].image)
    np.testing.assert_array_equal(outputs["1"].image, nearest2x(image))
    bad = cli("enhance", tmp_path / "in.tif", "-o", tmp_path / "bad.tif", "--zoo", cli_zoo, "--model", "tiny",
              "--memory-budget", "0")
    assert bad.exit_code == 2 and not (tmp_path / "bad.tif").exists()
