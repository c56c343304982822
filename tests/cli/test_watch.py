"""`semzoo watch`: slow writers, restarts, bad files and SIGTERM, end to end with a tiny zoo."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from tests.client.test_watching import slow_writer
from tests.server.tiny_models import nearest2x, publish


@pytest.fixture(scope="module")
def watch_zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("watch-zoo")
    publish(root, "tiny", gain=1.0, label="stable")  # nearest x2 at 14.2 nm
    return root


def sem_bytes(shape=(40, 52), pixel_size_nm=14.2, seed=0) -> tuple[bytes, np.ndarray]:
    """A semzoo TIFF (with its pixel size) as bytes, and its image."""
    import tifffile

    image = np.random.default_rng(seed).integers(1000, 50000, shape).astype(np.uint16)
    buffer = io.BytesIO()
    options = {} if pixel_size_nm is None else {
        "imagej": True, "resolution": (1 / pixel_size_nm, 1 / pixel_size_nm), "metadata": {"unit": "nm"}}
    tifffile.imwrite(buffer, image, **options)
    return buffer.getvalue(), image


def put(path, **kwargs) -> np.ndarray:
    data, image = sem_bytes(**kwargs)
    path.write_bytes(data)
    return image


def lines(text: str, marker: str) -> list[str]:
    return [line for line in text.splitlines() if marker in line]


def test_once_waits_for_a_slow_writer_and_never_reads_it_half_written(cli, watch_zoo, tmp_path):
    from zoo.data.sem_tiff import read_sem

    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    data, image = sem_bytes((64, 80))
    finished = threading.Event()
    # Pauses longer than --settle: the file is quiet but does not read yet (strips past its end).
    writer = slow_writer(inbox / "scan.tif", data, 5, 0.5, finished)
    result = cli("watch", inbox, "-o", out, "--zoo", watch_zoo, "--model", "tiny", "--once", "--settle", "0.3")
    writer.join(10)
    assert result.exit_code == 0, result.output
    assert finished.is_set()
    enhanced = read_sem(out / "scan.tif")
    np.testing.assert_array_equal(enhanced.image, nearest2x(image))  # the whole image, not a part of it
    assert (out / "scan.consistency.tif").exists()
    [line] = lines(result.stdout, " -> ")
    assert "scan.tif" in line and "tiny v1" in line and "14.2 nm -> 7.1 nm" in line
    assert "consistency ok" in line and "inconsistent (threshold 2.2%)" in line and "mean |z|" in line
    assert "error" not in result.output


def test_a_restart_redoes_nothing(cli, watch_zoo, tmp_path):
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    put(inbox / "a.tif", seed=1)
    put(inbox / "b.tiff", seed=2)
    args = ("watch", inbox, "-o", out, "--zoo", watch_zoo, "--once", "--settle", "0.1")
    first = cli(*args)
    assert first.exit_code == 0, first.output
    assert len(lines(first.stdout, " -> ")) == 2
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert {"a.tif", "b.tif", "a.consistency.tif", "b.consistency.tif"} <= set(before)
    put(inbox / "c.tif", seed=3)
    again = cli(*args)
    assert again.exit_code == 0, again.output
    [line] = lines(again.stdout, " -> ")
    assert "c.tif" in line
    assert "2 file(s) already enhanced, skipped" in again.output
    assert all((out / name).stat().st_mtime_ns == mtime for name, mtime in before.items())


def test_a_bad_file_gets_one_error_line_and_the_others_are_enhanced(cli, watch_zoo, tmp_path):
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    put(inbox / "a.tif", seed=1)
    (inbox / "broken.tif").write_bytes(b"this is not a TIFF")
    put(inbox / "nopixel.tif", pixel_size_nm=None)
    put(inbox / "z.tif", seed=4)
    result = cli("watch", inbox, "-o", out, "--zoo", watch_zoo, "--once", "--settle", "0.1")
    assert result.exit_code == 2, result.output
    errors = lines(result.output, "error:")
    assert len(errors) == 2, result.output
    assert any("broken.tif" in e and "not a readable TIFF" in e for e in errors)
    assert any("nopixel.tif" in e and "--pixel-size" in e for e in errors)
    assert sorted(p.name for p in out.glob("*.tif")) == ["a.consistency.tif", "a.tif", "z.consistency.tif", "z.tif"]
    assert "Traceback" not in result.output and "2 enhanced, 2 failed" in result.output


def test_bad_arguments_are_one_line_errors(cli, watch_zoo, tmp_path):
    result = cli("watch", tmp_path / "missing", "-o", tmp_path / "out", "--zoo", watch_zoo)
    assert result.exit_code == 2 and "no such folder" in result.output
    result = cli("watch", tmp_path, "-o", tmp_path, "--zoo", watch_zoo)
    assert result.exit_code == 2 and "watched folder itself" in result.output
    result = cli("watch", tmp_path, "-o", tmp_path / "out", "--zoo", watch_zoo, "--model", "nope")
    assert result.exit_code == 2 and "no model named 'nope'" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_sigterm_stops_after_the_current_file_with_nothing_half_written(watch_zoo, tmp_path):
    from zoo.data.sem_tiff import read_sem
    from zoo.server.server import EmbeddedServer

    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    for i, (name, shape) in enumerate((("a.tif", (40, 52)), ("b.tif", (768, 768)), ("c.tif", (40, 52)))):
        put(inbox / name, shape=shape, seed=i)
        os.utime(inbox / name, (1_000 + i, 1_000 + i))  # arrival order a, b, c
    with EmbeddedServer(watch_zoo, port=0, poll_seconds=0) as srv:
        proc = subprocess.Popen(
            [sys.executable, "-m", "zoo.cli.main", "watch", str(inbox), "-o", str(out), "--server", srv.target,
             "--model", "tiny@stable", "--settle", "0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            first = proc.stdout.readline()  # a's line: b (large) is next, and being enhanced now
            proc.send_signal(signal.SIGTERM)
            rest, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
    printed = lines(first + rest, " -> ")
    assert proc.returncode == 0, err
    assert "a.tif" in first and "stopped:" in err and "Traceback" not in err
    enhanced = sorted(p.name for p in out.iterdir())
    assert "c.tif" not in enhanced  # stopped before the file after the current one
    assert len(printed) == len([n for n in enhanced if not n.endswith(".consistency.tif")])
    for name in enhanced:  # whatever is there is whole: no temp files, every output readable
        assert not name.startswith(".")
        read_sem(out / name)
    assert all((out / n.replace(".tif", ".consistency.tif")).exists() for n in enhanced if "consistency" not in n)
