"""A simulated data set on disk (zoo.sim.dataset): layout, reproducibility, refusals, atomicity."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from zoo.errors import UserError
from zoo.sim import dataset
from zoo.sim import simulate as sim


def test_simulate_dataset_writes_the_layout(tmp_path):
    from zoo.data.sem_tiff import read_sem

    out = tmp_path / "raw"
    seen = []
    summary = dataset.simulate_dataset(
        out, "gold-on-carbon", pairs=2, seed=9, size=(96, 64), progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(1, 2), (2, 2)] and summary["pairs"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["hr", "lr", "preview.png", "truth.json"]
    truth = json.loads((out / "truth.json").read_text())
    assert list(truth["pairs"]) == ["pair-000", "pair-001"]
    assert truth["lr_pixel_size_nm"] == 14.2 and truth["hr_pixel_size_nm"] == 7.1 and truth["seed"] == 9
    for name, pair_truth in truth["pairs"].items():
        lr, hr = read_sem(out / "lr" / f"{name}.tif"), read_sem(out / "hr" / f"{name}.tif")
        assert lr.pixel_size_nm == pytest.approx(14.2) and hr.pixel_size_nm == pytest.approx(7.1)
        assert lr.image.dtype == np.uint16 and lr.image.shape == (64, 96)
        again = sim.simulate_pair("gold-on-carbon", seed=pair_truth["seed"], size=(96, 64), name=name)
        np.testing.assert_array_equal(again.hr, hr.image)  # a pair is reproducible from its seed
    preview = cv2.imread(str(out / "preview.png"), cv2.IMREAD_UNCHANGED)
    assert preview.dtype == np.uint8 and preview.ndim == 2 and preview.shape[1] > preview.shape[0]

    with pytest.raises(UserError, match="already exist"):
        dataset.simulate_dataset(out, "gold-on-carbon", pairs=1, seed=1, size=(96, 64))
    before = (out / "lr" / "pair-000.tif").read_bytes()
    dataset.simulate_dataset(out, "gold-on-carbon", pairs=1, seed=1, size=(96, 64), overwrite=True)
    assert (out / "lr" / "pair-000.tif").read_bytes() != before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no work folder left


def test_simulate_dataset_refuses_bad_input_before_writing(tmp_path):
    out = tmp_path / "raw"
    for kwargs in (
        dict(sample="gold", pairs=1, size=(96, 64)),
        dict(sample="hydrogel", pairs=0, size=(96, 64)),
        dict(sample="hydrogel", pairs=1, size=(32, 64)),
        dict(sample="hydrogel", pairs=1, size=(96, 64), electrons_per_pixel=-1),
    ):
        sample = kwargs.pop("sample")
        with pytest.raises(UserError):
            dataset.simulate_dataset(out, sample, seed=0, **kwargs)
        assert not out.exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        dataset.simulate_dataset(tmp_path / "file", "hydrogel", pairs=1, seed=0, size=(96, 64))


def test_interrupted_dataset_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "raw"
    calls = []

    def fail(done, total):
        calls.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dataset.simulate_dataset(out, "hydrogel", pairs=2, seed=0, size=(64, 64), progress=fail)
    assert calls == [1] and not out.exists()
