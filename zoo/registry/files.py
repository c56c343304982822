"""File-level durability helpers of the zoo: hashes, fsync, atomic writes, sane permissions."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from zoo.atomic import default_mode, fsync_dir, write_text_atomic  # noqa: F401 (fsync_dir, default_mode: re-exported)
from zoo.registry.card import CARD_PATHS

TMP_PREFIX = ".tmp-"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(version_dir: str | Path) -> dict[str, str]:
    """sha256 of every file under ``version_dir`` (relative POSIX paths) except the card copies."""
    root = Path(version_dir)
    hashes = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() or path.is_symlink():
            rel = path.relative_to(root).as_posix()
            if rel not in CARD_PATHS:
                hashes[rel] = sha256_file(path)
    return hashes


def fsync_tree(root: str | Path) -> None:
    """Flush every file and directory under ``root`` (and ``root`` itself) to stable storage."""
    root = Path(root)
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file + fsync + rename: readers see old or new."""
    write_text_atomic(path, text, prefix=TMP_PREFIX, keep_mode=True, sync_dir=True)
