"""Which model versions the embedded server serves, and their life cycle.

This is the part of TF Serving's ServerCore that a client can observe: a *source* says which
models exist and which of their versions are *aspired* (TF Serving's word), and the manager
loads aspired versions and unloads the rest. As in TF Serving:

- a version is a directory whose name is an integer under the model's base path (anything
  else, such as the zoo's hidden ``.tmp-*`` publish directories, is ignored);
- the version policy is ``latest`` (N newest), ``all`` or ``specific``;
- unloading is *availability-preserving* (TF Serving's AvailabilityPreservingPolicy): a version
  that is no longer aspired keeps serving until a version the *version policy* aspires is
  available; while none is, the newest such version stays and older ones go (its test
  ``AspireErrorDontUnload``). So a new version that fails to load never takes the model, or
  its latest, offline. A labelled version is served besides the policy's but does not count as
  availability: with ``stable`` on 2 and 3 serving, a corrupt 4 leaves 3 answering the latest;
- every version's state (START/LOADING/AVAILABLE/UNLOADING/END plus the error of a failed
  load) is kept for GetModelStatus.

Unlike TF Serving, a version is verified before it is loaded: every file's sha256 must match
its card (:meth:`zoo.registry.store.Zoo.verify`). A SavedModel is a program; the server only
runs what the zoo published.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import grpc

log = logging.getLogger("zoo.server")

# ModelVersionStatus.State values (tensorflow_serving/apis/get_model_status.proto).
START, LOADING, AVAILABLE, UNLOADING, END = 10, 20, 30, 40, 50
# tensorflow.error.Code values used in StatusProto (tensorflow/core/protobuf/error_codes.proto).
OK, UNKNOWN, NOT_FOUND, FAILED_PRECONDITION, DATA_LOSS = 0, 2, 5, 9, 15


class ServingError(Exception):
    """An error with the gRPC status code and message TF Serving would answer."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ModelSource:
    """One served model: where its versions live and which of them to serve.

    ``labels`` maps label -> version. ``extra_aspired`` are versions served besides the
    policy's (the zoo mode serves every labelled version, so ``stable`` keeps working after
    a newer ``canary`` is published).
    """

    name: str
    base_path: Path
    policy: str = "latest"  # "latest" | "all" | "specific"
    num_versions: int = 1
    versions: frozenset[int] = frozenset()
    labels: Mapping[str, int] = field(default_factory=dict)
    extra_aspired: frozenset[int] = frozenset()
    fallback: bool = False  # when nothing aspired loads, serve the newest older version that does

    def policy_aspired(self, on_disk: Iterable[int]) -> set[int]:
        """The versions the version policy chooses (without ``extra_aspired``)."""
        on_disk = sorted(set(on_disk))
        if self.policy == "all":
            return set(on_disk)
        if self.policy == "specific":
            return set(self.versions) & set(on_disk)
        return set(on_disk[-max(self.num_versions, 1):]) if on_disk else set()

    def aspired(self, on_disk: Iterable[int]) -> set[int]:
        """Every version to load: the policy's plus the ``extra_aspired`` ones on disk."""
        on_disk = set(on_disk)
        return self.policy_aspired(on_disk) | (set(self.extra_aspired) & on_disk)


def versions_on_disk(base_path: Path) -> dict[int, Path]:
    """Integer-named version directories under a model's base path (as TF Serving lists them)."""
    found: dict[int, Path] = {}
    try:
        entries = list(os.scandir(base_path))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return found
    for entry in entries:
        if entry.is_dir() and entry.name.isdigit():
            found[int(entry.name)] = Path(entry.path)
    return found


def _fingerprint(path: Path) -> tuple:
    """Cheap identity of a directory's content: changes when a file is added, replaced or cut."""
    items = []
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue
            items.append((os.path.relpath(os.path.join(root, name), path), st.st_size, st.st_mtime_ns))
    return tuple(sorted(items))


def verify_version(version_dir: Path) -> list[str]:
    """Problems with a version directory (empty: every file's sha256 matches its card)."""
    from zoo.registry.store import Zoo

    base = version_dir.parent
    try:
        return list(Zoo(base.parent).verify(base.name, int(version_dir.name)))
    except Exception as exc:  # noqa: BLE001 - an unverifiable version is a failed load, not a crash
        return [str(exc)]


@dataclass
class LoadedVersion:
    """A loaded SavedModel: callable signatures, their SignatureDefs and the card."""

    name: str
    version: int
    path: Path
    signature_defs: dict  # signature key -> tensorflow.SignatureDef (from saved_model.pb)
    functions: dict  # signature key -> ConcreteFunction
    card: dict | None
    handle: object = None  # the loaded object: keeps variables alive while requests use it

    @classmethod
    def load(cls, name: str, version: int, path: Path) -> "LoadedVersion":
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        saved_model = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
        if len(saved_model.meta_graphs) != 1:
            raise ValueError(f"expected one MetaGraphDef, found {len(saved_model.meta_graphs)}")
        signature_defs = dict(saved_model.meta_graphs[0].signature_def)
        handle = tf.saved_model.load(str(path))
        functions = dict(handle.signatures)
        card = None
        card_path = path / "assets.extra" / "card.json"
        if card_path.is_file():
            card = json.loads(card_path.read_text(encoding="utf-8"))
        return cls(name, version, path, signature_defs, functions, card, handle)


@dataclass
class VersionStatus:
    state: int
    error_code: int = OK
    error_message: str = ""
    fingerprint: tuple | None = None  # of a failed version: retried only when its files change


class ServableManager:
    """Loads aspired versions from a source function, unloads the rest, answers lookups.

    ``source()`` returns the current list of :class:`ModelSource` (re-read on each
    :meth:`poll`). ``verify(version_dir)`` returns a list of problems; ``loader(name,
    version, path)`` returns a :class:`LoadedVersion`. ``on_change()`` is called after each
    poll (the health service listens).
    """

    def __init__(
        self,
        source: Callable[[], list[ModelSource]],
        *,
        verify: Callable[[Path], list[str]] = verify_version,
        loader: Callable[[str, int, Path], LoadedVersion] = LoadedVersion.load,
        warmup: Callable[[LoadedVersion], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ):
        self._source = source
        self._verify = verify
        self._loader = loader
        self._warmup = warmup
        self._on_change = on_change
        self._lock = threading.Lock()  # guards the three maps below (swapped, never mutated in place by readers)
        self._poll_lock = threading.Lock()  # one poll at a time
        self._loaded: dict[str, dict[int, LoadedVersion]] = {}
        self._status: dict[str, dict[int, VersionStatus]] = {}
        self._labels: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._empty: set[str] = set()  # models already reported as having no version on disk

    # -- life cycle -------------------------------------------------------------------------
    def set_source(self, source: Callable[[], list[ModelSource]]) -> None:
        self._source = source

    def poll(self) -> None:
        """One pass: discover versions, load what is aspired, unload what no longer is."""
        with self._poll_lock:
            try:
                sources = {s.name: s for s in self._source()}
            except Exception as exc:  # noqa: BLE001 - a bad config must not kill the poller
                log.error("cannot read the model configuration: %s", exc)
                return
            for source in sources.values():
                self._poll_model(source)
            for name in list(self._loaded) + list(self._status):
                if name not in sources:
                    self._retire(name, set(self._loaded.get(name, {})), force=True)
                    with self._lock:
                        self._labels.pop(name, None)
        if self._on_change:
            self._on_change()

    def _set_status(self, name: str, version: int, status: VersionStatus) -> None:
        with self._lock:
            statuses = dict(self._status.get(name, {}))
            statuses[version] = status
            self._status[name] = statuses

    def _poll_model(self, source: ModelSource) -> None:
        name = source.name
        on_disk = versions_on_disk(source.base_path)
        if not on_disk and name not in self._empty:
            # TF Serving logs this too; usually a wrong base_path (e.g. /models/... outside Docker)
            log.warning("no versions of %s found under base path %s", name, source.base_path)
        self._empty.discard(name) if on_disk else self._empty.add(name)
        chosen = source.policy_aspired(on_disk)
        aspired = source.aspired(on_disk)
        for version in sorted(aspired, reverse=True):  # newest first: it serves "latest" soonest
            if version in self._loaded.get(name, {}):
                continue
            if not self._failed_unchanged(name, version, on_disk[version]):
                self._load(name, version, on_disk[version])
        loaded = set(self._loaded.get(name, {}))
        if source.fallback and not loaded & chosen and not loaded - aspired:
            # E.g. a server (re)started after a broken version was published: rather than
            # serve nothing (or only a labelled older version), serve the newest version newer
            # than every loaded one that verifies and loads -- what the availability-preserving
            # rule below would have kept serving had the server been running.
            newest_loaded = max(loaded, default=0)
            for version in sorted(set(on_disk) - aspired, reverse=True):
                if version < newest_loaded:
                    break
                if self._failed_unchanged(name, version, on_disk[version]):
                    continue
                self._load(name, version, on_disk[version])
                if version in self._loaded.get(name, {}):
                    log.warning("%s: serving version %d until a newer version loads", name, version)
                    break
        with self._lock:
            self._labels[name] = dict(source.labels)
        self._retire_unaspired(name, chosen, aspired)

    def _retire_unaspired(self, name: str, chosen: set[int], aspired: set[int]) -> None:
        """TF Serving's AvailabilityPreservingPolicy, with labels not counting as availability.

        Versions no longer aspired are unloaded once a version the policy chose (``chosen``)
        is available; until then the newest of them keeps serving (TF Serving unloads the
        lowest unaspired version only while more than one is ready). A labelled version held
        by ``extra_aspired`` is not "the latest": counting it would let a corrupt newest
        version unload the one that answers requests for the latest.
        """
        loaded = set(self._loaded.get(name, {}))
        unaspired = loaded - aspired
        if not unaspired:
            return
        if loaded & chosen:
            self._retire(name, unaspired)
        elif aspired:
            self._retire(name, unaspired - {max(unaspired)}, force=True)
        # nothing aspired at all (say every version directory is gone): keep what serves

    def _failed_unchanged(self, name: str, version: int, path: Path) -> bool:
        """Failed before and unchanged since: do not retry (and re-log) on every poll."""
        previous = self._status.get(name, {}).get(version)
        return (
            previous is not None and previous.state == END and previous.fingerprint is not None
            and previous.fingerprint == _fingerprint(path)
        )

    def _load(self, name: str, version: int, path: Path) -> None:
        self._set_status(name, version, VersionStatus(LOADING))
        log.info("loading %s version %d from %s", name, version, path)
        fingerprint = _fingerprint(path)
        problems = self._verify(path)
        if problems:
            message = f"version {version} of {name} failed verification: " + "; ".join(problems)
            log.error("%s (still serving %s)", message, self._serving_summary(name))
            self._set_status(name, version, VersionStatus(END, DATA_LOSS, message, fingerprint))
            return
        try:
            loaded = self._loader(name, version, path)
            if self._warmup is not None:
                self._warmup(loaded)
        except Exception as exc:  # noqa: BLE001 - any load failure is reported, not raised
            message = f"loading version {version} of {name} failed: {type(exc).__name__}: {exc}"
            log.error("%s (still serving %s)", message, self._serving_summary(name))
            self._set_status(name, version, VersionStatus(END, UNKNOWN, message, fingerprint))
            return
        with self._lock:
            versions = dict(self._loaded.get(name, {}))
            versions[version] = loaded
            self._loaded[name] = versions
            statuses = dict(self._status.get(name, {}))
            statuses[version] = VersionStatus(AVAILABLE)
            self._status[name] = statuses
        log.info("serving %s version %d", name, version)

    def _serving_summary(self, name: str) -> str:
        versions = sorted(self._loaded.get(name, {}))
        return f"version(s) {', '.join(map(str, versions))}" if versions else "no version"

    def _retire(self, name: str, versions: set[int], *, force: bool = False) -> None:
        """Unload versions -- availability-preserving unless the model left the config."""
        if not versions:
            return
        remaining = set(self._loaded.get(name, {})) - versions
        if not force and not remaining:
            return  # nothing aspired is available yet: keep the old versions serving
        for version in sorted(versions):
            with self._lock:
                kept = dict(self._loaded.get(name, {}))
                kept.pop(version, None)
                if kept:
                    self._loaded[name] = kept
                else:
                    self._loaded.pop(name, None)
                statuses = dict(self._status.get(name, {}))
                statuses[version] = VersionStatus(END)
                self._status[name] = statuses
            # In-flight requests hold their own reference; the SavedModel is freed after them.
            log.info("unloaded %s version %d", name, version)

    def start_polling(self, interval_s: float) -> None:
        """Poll in a daemon thread every ``interval_s`` seconds until :meth:`stop_polling`."""
        if interval_s <= 0 or self._thread is not None:
            return

        def run() -> None:
            while not self._stop.wait(interval_s):
                self.poll()

        self._thread = threading.Thread(target=run, name="semzoo-model-poller", daemon=True)
        self._thread.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    # -- queries ----------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(set(self._loaded) | set(self._status))

    def available(self) -> dict[str, list[int]]:
        with self._lock:
            return {name: sorted(v) for name, v in self._loaded.items()}

    def labels(self, name: str) -> dict[str, int]:
        with self._lock:
            return dict(self._labels.get(name, {}))

    def lookup(self, name: str, version: int | None = None, label: str | None = None) -> LoadedVersion:
        """The servable for a ModelSpec, or the ServingError TF Serving answers."""
        if not name:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        with self._lock:
            if label is not None:
                version = self._labels.get(name, {}).get(label)
                if version is None:
                    raise ServingError(
                        grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}"
                    )
            versions = self._loaded.get(name, {})
            if version is None:
                if versions:
                    return versions[max(versions)]
                raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})")
            if version in versions:
                return versions[version]
        raise ServingError(
            grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({name}, {version})"
        )

    def status(self, name: str, version: int | None = None) -> list[tuple[int, VersionStatus]]:
        """(version, status) pairs for GetModelStatus, or its NOT_FOUND error."""
        with self._lock:
            statuses = dict(self._status.get(name, {}))
        if version is not None:
            if version not in statuses:
                raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {name}")
            return [(version, statuses[version])]
        if not statuses:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        return sorted(statuses.items())
