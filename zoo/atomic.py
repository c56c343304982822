"""Writing a file or a folder so that a reader sees the old one or the new one, never half of it.

:func:`atomic_file` gives a temp file beside the target to write (with whatever library), then
flushes it to disk and renames it into place; :func:`atomic_dir` gives a hidden sibling folder
to build in and renames it onto the target. On an error the temp is removed and the target is
as it was. Both temps live in the target's own directory, so the rename never crosses file
systems.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from zoo.errors import UserError


def umask() -> int:
    """The process's umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(directory: bool = False) -> int:
    """The mode a plain open()/mkdir() would give; mkstemp/mkdtemp use 0600/0700, which
    would hide labels, configs and versions from a TF Serving running as another user."""
    return (0o777 if directory else 0o666) & ~umask()


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename in it) to disk; best effort."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories; rename durability is best effort
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | Path, *, prefix: str | None = None, suffix: str = "", overwrite: bool = True,
                exists_message: str | None = None, keep_mode: bool = False,
                sync_dir: bool = False) -> Iterator[Path]:
    """Yield a temp file's path beside ``path``; when the block ends without an error the file
    is fsynced, given a plain file's mode (``keep_mode``: the replaced file's) and renamed
    onto ``path``. The temp is removed in any case.

    ``prefix``/``suffix`` name the temp (default ``.NAME.`` + random; a writer that goes by the
    extension, e.g. Keras, needs ``suffix``). ``overwrite=False`` refuses an existing ``path``,
    also one created meanwhile (a hard link cannot clobber), with
    :class:`~zoo.errors.UserError` (``exists_message``). ``sync_dir`` also flushes the rename.
    """
    path = Path(path)
    mode = default_mode()
    if keep_mode:
        with contextlib.suppress(FileNotFoundError):
            mode = path.stat().st_mode & 0o7777
    fd, name = tempfile.mkstemp(prefix=f".{path.name}." if prefix is None else prefix, suffix=suffix,
                                dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:  # on disk before the rename makes it visible
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if overwrite:
            os.replace(tmp, path)
        else:
            refusal = UserError(exists_message or f"{path} already exists")
            try:
                os.link(tmp, path)  # atomic and refuses to clobber a file created meanwhile
            except FileExistsError:
                raise refusal from None
            except OSError:  # file systems without hard links
                if path.exists():
                    raise refusal from None
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if sync_dir:
        fsync_dir(path.parent)


def write_text_atomic(path: str | Path, text: str, **options) -> None:
    """``text`` (UTF-8) into ``path`` through :func:`atomic_file` (same options)."""
    with atomic_file(path, **options) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, prefix: str | None = None, mode: int | None = None) -> Iterator[Path]:
    """Yield a new hidden sibling folder of ``path`` to build in; when the block ends without an
    error it takes ``path``'s place (an existing ``path`` is moved aside first, put back if the
    rename fails, and removed after it succeeded). On an error the sibling is removed.

    ``prefix`` names the sibling (default ``.NAME.`` + random); ``mode`` is given to it (default:
    mkdtemp's private 0700).
    """
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}." if prefix is None else prefix, dir=path.parent))
    try:
        if mode is not None:
            tmp.chmod(mode)
        yield tmp
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old / path.name)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old is not None:
                os.replace(old / path.name, path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
