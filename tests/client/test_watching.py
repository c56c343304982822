"""zoo.client.watching.Arrivals: files are handed over once written, in arrival order."""

from __future__ import annotations

import os
import threading

import pytest

from zoo.client.watching import Arrivals


def slow_writer(path, data: bytes, chunks: int, pause_s: float, done: threading.Event) -> threading.Thread:
    """Write ``data`` into ``path`` in ``chunks`` pieces, ``pause_s`` apart (the first one now)."""
    pieces = [data[i * len(data) // chunks:(i + 1) * len(data) // chunks] for i in range(chunks)]
    handle = open(path, "wb")
    handle.write(pieces[0])
    handle.flush()

    def run():
        with handle:
            for piece in pieces[1:]:
                done.wait(pause_s)  # a pause of the acquisition software, not a test timing
                handle.write(piece)
                handle.flush()
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def deadline(stop: threading.Event, seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, stop.set)  # a failing test ends instead of hanging
    timer.daemon = True
    timer.start()
    return timer


@pytest.mark.parametrize("poll", [False, True])
@pytest.mark.parametrize("pause_s", [0.05, 0.5])  # shorter and longer than the settle time
def test_a_file_written_in_chunks_is_handed_over_only_when_complete(tmp_path, poll, pause_s):
    data = os.urandom(60_000)
    complete = lambda p: None if p.stat().st_size == len(data) else "truncated"  # noqa: E731
    stop = threading.Event()
    with Arrivals(tmp_path, complete, settle_s=0.2, poll=poll) as arrivals:
        assert ("polling" in arrivals.note) == poll
        writer = slow_writer(tmp_path / "scan.tif", data, 6, pause_s, threading.Event())
        timer = deadline(stop, 30)
        arrival = arrivals.next(stop)
        timer.cancel()
    writer.join(5)
    assert arrival is not None and arrival.path == tmp_path / "scan.tif" and arrival.error is None
    assert (tmp_path / "scan.tif").stat().st_size == len(data)


def test_existing_files_oldest_first_and_each_only_once(tmp_path):
    for name, mtime in (("b.tif", 1_000), ("a.TIFF", 2_000), ("c.tif", 3_000), (".hidden.tif", 0), ("notes.txt", 0)):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (mtime, mtime))
    stop = threading.Event()
    with Arrivals(tmp_path, lambda p: None, settle_s=0.1, watch=False) as arrivals:
        names = []
        while (arrival := arrivals.next(stop)) is not None:
            names.append(arrival.path.name)
            arrivals.notice(arrival.path)  # a late event for a file already handed over
    assert names == ["b.tif", "a.TIFF", "c.tif"]


def test_a_file_that_never_reads_is_handed_over_once_as_failed(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    stop = threading.Event()
    timer = deadline(stop, 30)
    with Arrivals(tmp_path, lambda p: f"{p}: not a readable TIFF", settle_s=0.1, watch=False) as arrivals:
        arrivals_seen = []
        while (arrival := arrivals.next(stop)) is not None:
            arrivals_seen.append(arrival)
    timer.cancel()
    assert [(a.path.name, a.error) for a in arrivals_seen] == [("bad.tif", f"{tmp_path / 'bad.tif'}: not a readable TIFF")]
