"""The zoo on disk: models/<name>/<version>/ SavedModels, labels, atomic publishing.

The layout is TF Serving's model base path, so ``models/`` is mounted as ``/models`` unchanged::

    models/<name>/<version>/            a complete SavedModel + card (integer directory name)
    models/<name>/labels.json           {"stable": 3, "canary": 4}
    models/<name>/.tmp-<host>-<pid>-*   a publish in progress (ignored; cleaned when stale)

A version directory is complete or absent: ``publish_version`` builds it in a hidden directory
beside the final one, writes the card with the sha256 of every file, fsyncs every file and
directory, and renames it into place in one step (numbering and labels are serialised by an
flock on the model directory). TF Serving polls the base path and would
load a half-copied directory (tensorflow/serving#1086); hidden directories are not integers,
so TF Serving never looks at them.

Resolution rule (``resolve``): ``name`` means the version labelled ``stable`` when that label
exists, else the latest version. Publishing a new version must not silently change what users
of a blessed model get; ``name:latest`` asks for the newest explicitly.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from zoo.errors import UserError
from zoo.registry.card import (
    CARD_ASSET_PATH,
    CARD_PATH,
    Card,
    card_from_json,
    check_name,
    read_card,
    validate_card,
    write_card,
)
from zoo.registry.files import (  # noqa: F401 - re-exported: the zoo's file helpers
    TMP_PREFIX,
    atomic_write_text,
    default_mode,
    file_hashes,
    fsync_dir,
    fsync_tree,
    sha256_file,
)

DEFAULT_LABEL = "stable"
LABELS_FILE = "labels.json"
STALE_AFTER_S = 24 * 3600
RESERVED_LABELS = {"latest"}

ProgressCallback = Callable[[int, int], None]


@contextlib.contextmanager
def _locked(model_dir: Path) -> Iterator[None]:
    """An exclusive advisory lock on the model directory itself (no-op without fcntl).

    Locking the directory (not a lock file in it) leaves nothing behind for git, Docker or
    TF Serving to trip over.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(model_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _is_version_name(name: str) -> bool:
    # Canonical non-negative integers only: "007" would be version 7 to TF Serving but a
    # different directory to us.
    return name.isdigit() and name.isascii() and str(int(name)) == name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Zoo:
    """A model zoo rooted at ``root`` (a TF Serving model base path).

    Reading never writes (no directories are created just by looking). Names and labels are
    ``[a-z0-9-]+``; versions are positive integers.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Zoo({str(self.root)!r})"

    # ---- reading -------------------------------------------------------------------------
    def models(self) -> list[str]:
        """Names of the models that have at least one version, sorted."""
        if not self.root.is_dir():
            return []
        names = []
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and _valid_name(entry.name) and self._version_numbers(entry):
                names.append(entry.name)
        return names

    def model_dir(self, name: str) -> Path:
        return self.root / check_name(name)

    def _version_numbers(self, model_dir: Path) -> list[int]:
        if not model_dir.is_dir():
            return []
        return sorted(
            int(e.name) for e in model_dir.iterdir() if e.is_dir() and _is_version_name(e.name)
        )

    def versions(self, name: str) -> list[int]:
        """The model's versions, ascending; UserError for an unknown model."""
        found = self._version_numbers(self.model_dir(name))
        if not found:
            known = ", ".join(self.models()) or "none"
            raise UserError(f"no model named {name!r} in the zoo at {self.root} (models: {known})")
        return found

    def latest(self, name: str) -> int:
        return self.versions(name)[-1]

    def version_dir(self, name: str, version: int) -> Path:
        """The directory of ``name`` version ``version``; UserError when it does not exist."""
        versions = self.versions(name)
        if isinstance(version, bool) or not isinstance(version, int) or version not in versions:
            raise UserError(
                f"model {name!r} has no version {version!r} "
                f"(versions: {', '.join(map(str, versions))})"
            )
        return self.model_dir(name) / str(version)

    def card(self, name: str, version: int | None = None) -> Card:
        """The card of a version (default: what ``resolve(name)`` picks)."""
        if version is None:
            name, version = self.resolve(name)
        return read_card(self.version_dir(name, version))

    def labels(self, name: str) -> dict[str, int]:
        """``{label: version}`` of a model (empty when it has none)."""
        path = self.model_dir(name) / LABELS_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise UserError(f"{path} is not valid JSON ({exc}); fix or delete it") from None
        if not isinstance(data, dict) or not all(
            _valid_name(k) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in data.items()
        ):
            raise UserError(f"{path} must map labels to version numbers; fix or delete it")
        return dict(sorted(data.items()))

    def resolve(self, spec: str) -> tuple[str, int]:
        """``"name"``, ``"name:3"``, ``"name:latest"`` or ``"name@label"`` -> (name, version).

        A bare name picks the ``stable`` label when it exists, else the latest version.
        """
        if not isinstance(spec, str) or not spec:
            raise UserError("empty model reference: use NAME, NAME:VERSION or NAME@LABEL")
        if "@" in spec:
            name, _, label = spec.partition("@")
            labels = self.labels(name)
            self.versions(name)  # unknown model -> its own message
            if label not in labels:
                raise UserError(
                    f"model {name!r} has no label {label!r} "
                    f"(labels: {', '.join(labels) or 'none'})"
                )
            version = labels[label]
        elif ":" in spec:
            name, _, text = spec.partition(":")
            if text == "latest":
                return name, self.latest(name)
            if not _is_version_name(text):
                raise UserError(f"bad version {text!r} in {spec!r}: use NAME:INTEGER")
            version = int(text)
        else:
            name = spec
            versions = self.versions(name)
            version = self.labels(name).get(DEFAULT_LABEL, versions[-1])
        self.version_dir(name, version)  # raises when the version (or a label's target) is gone
        return name, version

    def verify(self, name: str, version: int) -> list[str]:
        """Problems with a version's files (empty list = every sha256 matches the card)."""
        vdir = self.version_dir(name, version)
        links = _symlinks(vdir)
        if links:  # a SavedModel is a program: run only files that live in the zoo
            return links
        try:
            card_text = (vdir / CARD_PATH).read_text(encoding="utf-8")
            card = card_from_json(card_text, source=CARD_PATH)
        except FileNotFoundError:
            return [f"{CARD_PATH} is missing"]
        except UserError as exc:
            return [str(exc)]
        problems = []
        try:
            if (vdir / CARD_ASSET_PATH).read_text(encoding="utf-8") != card_text:
                problems.append(f"{CARD_ASSET_PATH} differs from {CARD_PATH}")
        except FileNotFoundError:
            problems.append(f"{CARD_ASSET_PATH} is missing")
        if card["name"] != name:
            problems.append(f"card names the model {card['name']!r}, not {name!r}")
        if not card["files"]:
            problems.append("card lists no files (never published?)")
        actual = file_hashes(vdir)
        for rel, digest in sorted(card["files"].items()):
            if rel not in actual:
                problems.append(f"{rel} is missing")
            elif actual[rel] != digest:
                problems.append(f"{rel} is modified (sha256 differs from the card)")
        for rel in sorted(set(actual) - set(card["files"])):
            problems.append(f"{rel} is not listed in the card")
        return problems

    # ---- writing -------------------------------------------------------------------------
    def set_label(self, name: str, version: int, label: str) -> None:
        """Point ``label`` at an existing version (atomic update of labels.json)."""
        check_label(label)
        self.version_dir(name, version)
        mdir = self.model_dir(name)
        with _locked(mdir):
            self._write_label(mdir, name, label, version)

    def remove_label(self, name: str, label: str) -> None:
        mdir = self.model_dir(name)
        with _locked(mdir):
            labels = self.labels(name)
            if label not in labels:
                raise UserError(f"model {name!r} has no label {label!r}")
            del labels[label]
            atomic_write_text(mdir / LABELS_FILE, json.dumps(labels, indent=2, sort_keys=True) + "\n")

    def _write_label(self, mdir: Path, name: str, label: str, version: int) -> None:
        labels = self.labels(name)
        labels[label] = int(version)
        atomic_write_text(mdir / LABELS_FILE, json.dumps(labels, indent=2, sort_keys=True) + "\n")

    def clean_stale(self, name: str) -> list[Path]:
        """Remove leftovers of killed publishes; return what was removed.

        A ``.tmp-<host>-<pid>-*`` directory is stale when its process no longer runs on this
        host, or when it is older than a day (another host's crash on a shared filesystem).
        """
        mdir = self.model_dir(name)
        if not mdir.is_dir():
            return []
        host = socket.gethostname().replace("-", "_")
        removed = []
        for entry in mdir.iterdir():
            if not entry.name.startswith(TMP_PREFIX):
                continue
            parts = entry.name[len(TMP_PREFIX) :].split("-")
            mine = len(parts) >= 2 and parts[0] == host and parts[1].isdigit()
            try:
                age = time.time() - entry.lstat().st_mtime
            except FileNotFoundError:
                continue
            if (mine and not _pid_alive(int(parts[1]))) or age > STALE_AFTER_S:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        entry.unlink()
                removed.append(entry)
        return removed

    def publish_version(
        self,
        name: str,
        build: Callable[[Path], None] | str | Path,
        *,
        label: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Publish a new version of ``name`` atomically; return its number.

        ``build`` is either a callable that writes an exported SavedModel (with its card, e.g.
        :func:`zoo.registry.export.export_generator`) into the directory it is given, or an
        existing exported directory to copy (e.g. another zoo version). The card is rewritten
        with this model's name and the sha256 of every file; the signatures are checked; then
        the version appears under the next integer in one rename. On any error, nothing is
        left behind.
        """
        check_name(name)
        if label is not None:
            check_label(label)
        step = progress or (lambda done, total: None)
        mdir = self.model_dir(name)
        mdir.mkdir(parents=True, exist_ok=True)
        self.clean_stale(name)
        host = socket.gethostname().replace("-", "_")
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{host}-{os.getpid()}-", dir=mdir))
        try:
            step(0, 4)
            if callable(build):
                build(tmp)
            else:
                source = Path(build)
                if not (source / "saved_model.pb").is_file():
                    raise UserError(f"{source} is not a SavedModel directory (no saved_model.pb)")
                shutil.copytree(source, tmp, dirs_exist_ok=True, symlinks=False)
            step(1, 4)
            card = dict(read_card(tmp))
            card["name"] = name
            for stray in (tmp / CARD_PATH, tmp / CARD_ASSET_PATH):
                with contextlib.suppress(FileNotFoundError):
                    stray.unlink()
            card["files"] = file_hashes(tmp)
            write_card(tmp, validate_card(card))
            from zoo.registry.export import check_signatures

            problems = check_signatures(tmp)
            if problems:
                raise UserError(f"refusing to publish {name}: " + "; ".join(problems))
            step(2, 4)
            os.chmod(tmp, default_mode(directory=True))
            fsync_tree(tmp)
            step(3, 4)
            with _locked(mdir):
                version = (self._version_numbers(mdir) or [0])[-1] + 1
                final = mdir / str(version)
                try:
                    os.rename(tmp, final)  # atomic; fails if a (non-empty) target exists
                except OSError as exc:
                    if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                        raise RuntimeError(f"{final} appeared during publish") from exc
                    raise
                fsync_dir(mdir)
                if label is not None:
                    self._write_label(mdir, name, label, version)
            step(4, 4)
            return version
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _symlinks(version_dir: Path) -> list[str]:
    """Symbolic links in a version directory (or the directory itself being one), as problems.

    Publishing copies files (never links), so a link means the version was altered after
    publishing and may point at files outside the zoo, which the card's sha256s cannot vouch
    for (whoever placed the link could have placed a matching card too).
    """
    if version_dir.is_symlink():
        return [f"the version directory is a symbolic link to {os.readlink(version_dir)}"]
    problems = []
    for root, dirs, files in os.walk(version_dir):  # followlinks=False: links are reported, not entered
        for entry in sorted(dirs + files):
            path = Path(root) / entry
            if path.is_symlink():
                rel = path.relative_to(version_dir).as_posix()
                problems.append(f"{rel} is a symbolic link to {os.readlink(path)}")
    return problems


def _valid_name(name: str) -> bool:
    try:
        check_name(name)
    except UserError:
        return False
    return True


def check_label(label: object) -> str:
    """A label is [a-z0-9-]+ but not all digits (that would read as a version) nor 'latest'."""
    check_name(label, "label")
    if label.isdigit() or label in RESERVED_LABELS:  # type: ignore[union-attr]
        raise UserError(f"invalid label {label!r}: it would read as a version; pick a word")
    return label  # type: ignore[return-value]
