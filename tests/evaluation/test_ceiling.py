"""The gap metric's resolution ceiling on simulated pairs (zoo.evaluation.ceiling + its tool)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zoo.evaluation.ceiling import degraded_versions, gap_metric_ceiling, markdown_ceiling

ROOT = Path(__file__).resolve().parents[2]


def test_degraded_versions_keep_the_grid_and_blur_as_asked():
    rng = np.random.default_rng(0)
    clean = rng.random((40, 30))
    out = degraded_versions(clean, sigmas_px=(0.5, 2.0))
    assert list(out) == ["noise-free", "noise-free, blur sigma 0.5 px", "noise-free, blur sigma 2 px",
                         "every 2nd sample, Lanczos"]
    assert all(v.shape == clean.shape for v in out.values())
    assert np.std(out["noise-free, blur sigma 2 px"]) < np.std(out["noise-free, blur sigma 0.5 px"]) < np.std(clean)
    # The kept samples of the every-2nd-sample version are the originals (Lanczos interpolates).
    np.testing.assert_allclose(out["every 2nd sample, Lanczos"][::2, ::2], clean[::2, ::2], atol=1e-9)


@pytest.mark.slow
def test_noise_free_target_shows_its_gaps_and_blur_hides_them_monotonically():
    rows = gap_metric_ceiling("gold-on-carbon", [11, 12], size=(256, 256), sigmas_px=(0.5, 1.0, 1.5))
    percent = {name: 100 * r.undetected_gap_fraction for name, r in rows.items()}
    target = rows["target"]
    assert target.n_gaps > 50 and 0 < target.n_undetected < target.n_gaps
    shown = target.n_gaps - target.n_undetected
    assert all(r.n_gaps == shown for name, r in rows.items() if name != "target")
    # Shot noise in the target barely makes gaps: its noise-free signal shows almost all of them.
    assert percent["noise-free"] < 5
    blurred = [percent[f"noise-free, blur sigma {s:g} px"] for s in (0.5, 1.0, 1.5)]
    assert percent["noise-free"] < blurred[0] < blurred[1] < blurred[2]
    assert percent["every 2nd sample, Lanczos"] > percent["noise-free"] + 5
    table = markdown_ceiling(rows, 7.1)
    assert "(FWHM 16.7 nm)" in table and "target (noisy), of all planted gaps" in table


def test_tool_refuses_bad_arguments_in_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "ceiling.md"
    out.write_text("mine")
    for args in (["--pairs", "0"], ["--sample", "cheese"], ["--size", "10x10"], ["--out", str(out)]):
        proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gap_metric_ceiling.py"), *args],
                              capture_output=True, text=True)
        assert proc.returncode == 2, args
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
        assert "Traceback" not in proc.stderr
    assert out.read_text() == "mine"


def test_checkpoint_trajectory_tool_refuses_what_is_not_a_run_or_a_test_set(tmp_path):
    tool = str(ROOT / "tools" / "checkpoint_trajectory.py")
    run, test = tmp_path / "run", tmp_path / "test"
    (run / "checkpoints").mkdir(parents=True)
    (test / "registered").mkdir(parents=True)

    def refusal(*args):
        proc = subprocess.run([sys.executable, tool, *map(str, args)], capture_output=True, text=True)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
        return proc.stderr

    assert "is not a training run" in refusal(run, test)
    (run / "config.json").write_text("{}")
    assert "has no registered/truth.json" in refusal(run, test)
    (test / "registered" / "truth.json").write_text("{}")
    assert "has no checkpoints" in refusal(run, test)
    (run / "checkpoints" / "ckpt-250.index").write_text("")
    assert "no checkpoint at step 500" in refusal(run, test, "--checkpoints", "250,500")
    assert "bad --checkpoints" in refusal(run, test, "--checkpoints", "x")
