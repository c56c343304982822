"""SEM TIFFs arriving in a folder, each handed over once its writer has finished (`semzoo watch`).

Acquisition software writes an image over seconds (a slow scan saved line by line, a copy to a
network share in chunks), so a file that has appeared is not yet a file to read. A file counts
as *written* when

1. its size and modification time have not changed for ``settle_s`` seconds, and
2. it reads as a complete image (``is_complete(path)`` returns None; semzoo passes
   :func:`zoo.client.files.read_checked`, which refuses a TIFF whose strips point past the end
   of the file, i.e. one still being written).

A file that stays unchanged for :data:`GIVE_UP_SETTLES` x ``settle_s`` and still does not read
is handed over as failed, with the reason, once; it is looked at again only if it changes.

New files are noticed through watchdog: the OS's notifications (inotify, FSEvents, ...) where
they work, its :class:`~watchdog.observers.polling.PollingObserver` (directory listings) with
``poll=True``, on network file systems (NFS/SMB mounts send no notifications for writes made by
another machine) and when the native observer cannot start. Files already there when watching
starts come first, oldest first; then files in the order they appeared. Among the files that
are written, the earliest arrival is handed over first: a slow file does not hold up the ones
after it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

GIVE_UP_SETTLES = 3
NETWORK_FILE_SYSTEMS = ("nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "afs", "9p", "fuse.sshfs", "davfs")


def is_network_file_system(folder: Path) -> bool:
    """Whether ``folder`` lies on a network mount (Linux ``/proc/mounts``; False elsewhere)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return False
    target, best, kind = str(Path(folder).resolve()), "", ""
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
            best, kind = point, parts[2]
    return kind in NETWORK_FILE_SYSTEMS


@dataclass
class Arrival:
    """A file handed over: ``error`` is None when it is written and reads, else why it does not."""

    path: Path
    error: str | None = None


@dataclass
class _Pending:
    order: int
    state: tuple[int, int] | None = None  # (size, mtime_ns) last seen
    since: float = 0.0  # when that state was first seen
    tried: tuple[int, int] | None = None  # the state last found unreadable
    reason: str | None = None


@dataclass
class Arrivals:
    """The files of ``folder`` (top level, ``suffixes``, not hidden) as their writers finish them.

    Use as a context manager; :meth:`next` blocks until one is ready. ``watch=False`` takes
    only the files there at the start (``semzoo watch --once``). ``note`` says how files are
    noticed (for the user).
    """

    folder: Path
    is_complete: Callable[[Path], str | None]
    settle_s: float = 2.0
    suffixes: tuple[str, ...] = (".tif", ".tiff")
    poll: bool = False
    watch: bool = True
    accept: Callable[[Path], bool] = lambda path: True
    clock: Callable[[], float] = time.monotonic
    note: str = ""
    _pending: dict = field(default_factory=dict)
    _handed: dict = field(default_factory=dict)  # path -> state when handed over
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _count: int = 0
    _observer: object = None

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "Arrivals":
        for path in sorted(self._listing(), key=lambda p: ((_stat(p) or (0, 0))[1], p.name)):
            self.notice(path)
        if self.watch:
            self._start_observer()
        else:
            self.note = "the files there now"
        return self

    def __exit__(self, *exc) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def _start_observer(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        arrivals = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                if event.is_directory:
                    return
                for name in (getattr(event, "dest_path", ""), event.src_path):
                    if name:
                        arrivals.notice(Path(os.fsdecode(name)))

        interval = max(0.05, min(1.0, self.settle_s / 2))
        reason = "--poll" if self.poll else "a network file system" if is_network_file_system(self.folder) else ""
        if not reason:
            try:
                observer = Observer()
                observer.schedule(Handler(), str(self.folder), recursive=False)
                observer.start()
                self._observer, self.note = observer, f"file-system notifications ({type(observer).__name__})"
                return
            except (OSError, RuntimeError) as exc:  # e.g. inotify watch limit reached
                reason = f"notifications unavailable: {exc}"
        observer = PollingObserver(timeout=interval)
        observer.schedule(Handler(), str(self.folder), recursive=False)
        observer.start()
        self._observer, self.note = observer, f"polling every {interval:g} s ({reason})"

    # -- what arrives ------------------------------------------------------------------------
    def _listing(self) -> list[Path]:
        try:
            return [p for p in self.folder.iterdir() if self._wanted(p)]
        except OSError:
            return []

    def _wanted(self, path: Path) -> bool:
        return (path.parent == self.folder and path.suffix.lower() in self.suffixes
                and not path.name.startswith(".") and path.is_file())

    def notice(self, path: Path) -> None:
        """A file appeared or changed (called from the observer's thread, too)."""
        path = Path(path)
        if not self._wanted(path):
            return
        with self._lock:
            if path in self._pending:
                return
            if path in self._handed and self._handed[path] == _stat(path):
                return  # the same file again (a late event for one already handed over)
            if not self.accept(path):
                return
            self._count += 1
            self._pending[path] = _Pending(order=self._count)

    def pending(self) -> list[Path]:
        with self._lock:
            return sorted(self._pending, key=lambda p: self._pending[p].order)

    # -- handing over ------------------------------------------------------------------------
    def next(self, stop: threading.Event) -> Arrival | None:
        """The earliest-arrived file that is written (or has failed), waiting for one; None
        once ``stop`` is set, or (``watch=False``) when no file is left."""
        tick = max(0.02, min(0.5, self.settle_s / 4))
        while not stop.is_set():
            arrival = self._ready()
            if arrival is not None:
                return arrival
            if not self.watch and not self.pending():
                return None
            stop.wait(tick)
        return None

    def _ready(self) -> Arrival | None:
        now = self.clock()
        for path in self.pending():
            entry = self._pending[path]
            state = _stat(path)
            if state is None:  # gone (moved away, deleted)
                self._drop(path, None)
                continue
            if state != entry.state:
                # First sight of a file last modified a while ago (there before we started):
                # that quiet time counts. Reading it must still succeed.
                age = max(0.0, time.time() - state[1] / 1e9) if entry.state is None else 0.0
                entry.state, entry.since = state, now - age
                if age < self.settle_s:
                    continue
            quiet = now - entry.since
            if quiet < self.settle_s:
                continue
            if entry.tried == state:  # unreadable at this state: give up after a while
                if quiet >= GIVE_UP_SETTLES * self.settle_s:
                    self._drop(path, state)
                    return Arrival(path, entry.reason)
                continue
            reason = self.is_complete(path)
            if reason is None:
                self._drop(path, state)
                return Arrival(path)
            entry.tried, entry.reason = state, reason
        return None

    def _drop(self, path: Path, state) -> None:
        with self._lock:
            self._pending.pop(path, None)
            if state is not None:
                self._handed[path] = state


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)
