"""Where the embedded server's model list comes from: the zoo itself, or a TF Serving models.config.

Both are *sources* for :class:`zoo.server.servables.ServableManager`: callables returning the
current list of :class:`~zoo.server.servables.ModelSource`, re-read on every poll, so a newly
published version or an edited config is picked up without a restart.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from zoo.errors import UserError
from zoo.server.servables import ModelSource, versions_on_disk

log = logging.getLogger("zoo.server")


class ZooSource:
    """Every model in a zoo directory: its latest version plus every labelled version.

    If the latest does not load (say the server starts just after a broken version was
    published), the newest older version that verifies and loads answers requests for the
    latest instead (a labelled version is served besides, never instead).

    Labels come from the zoo (:meth:`zoo.registry.store.Zoo.labels`), so ``@stable`` keeps
    resolving to the version the zoo says, even after a newer (unlabelled) one is published.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"model zoo {self.root} does not exist (set --zoo or SEMZOO_ZOO)")

    def __call__(self) -> list[ModelSource]:
        from zoo.registry.store import Zoo

        zoo = Zoo(self.root)
        sources = []
        for name in zoo.models():
            base = self.root / name
            if not versions_on_disk(base):
                continue
            try:
                labels = {label: int(v) for label, v in zoo.labels(name).items()}
            except Exception as exc:  # noqa: BLE001 - a broken labels file must not stop serving
                log.error("cannot read the labels of %s: %s", name, exc)
                labels = {}
            sources.append(
                ModelSource(
                    name, base, "latest", 1, labels=labels, extra_aspired=frozenset(labels.values()), fallback=True
                )
            )
        return sources

    def describe(self) -> str:
        return f"zoo {self.root}"


def parse_model_config(text: str, *, source: str = "model config"):
    """Parse a TF Serving ModelServerConfig text proto (raises UserError naming the problem)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise UserError(f"{source} is not a valid TF Serving ModelServerConfig: {exc}") from None
    return config


def sources_from_config(config, *, source: str = "model config") -> list[ModelSource]:
    """ModelSources of a ModelServerConfig's model_config_list (TF Serving's semantics).

    Base paths are used as given: relative ones are relative to the working directory, as
    tensorflow_model_server resolves them.
    """
    if config.WhichOneof("config") not in (None, "model_config_list"):
        raise UserError(f"{source}: only model_config_list is supported (not custom_model_config)")
    sources, names = [], set()
    for model in config.model_config_list.config:
        if not model.name:
            raise UserError(f"{source}: a model has no name")
        if model.name in names:
            raise UserError(f"{source}: model {model.name!r} is listed twice")
        names.add(model.name)
        if model.model_platform not in ("", "tensorflow"):
            raise UserError(f"{source}: model {model.name!r} has platform {model.model_platform!r}; "
                            "only 'tensorflow' is served")
        if not model.base_path:
            raise UserError(f"{source}: model {model.name!r} has no base_path")
        policy = model.model_version_policy
        choice = policy.WhichOneof("policy_choice")
        if choice == "all":
            kwargs = {"policy": "all"}
        elif choice == "specific":
            kwargs = {"policy": "specific", "versions": frozenset(policy.specific.versions)}
        else:
            num = policy.latest.num_versions if choice == "latest" else 1
            kwargs = {"policy": "latest", "num_versions": max(num, 1)}
        labels = {label: int(version) for label, version in model.version_labels.items()}
        sources.append(ModelSource(model.name, Path(model.base_path), labels=labels, **kwargs))
    return sources


class ConfigFileSource:
    """A models.config file, re-read when it changes (like --model_config_file_poll_wait_seconds).

    :meth:`replace` installs a config given over gRPC (HandleReloadConfigRequest); the file
    takes over again only if it changes afterwards.
    """

    def __init__(self, path: str | Path | None, config=None):
        self.path = Path(path) if path is not None else None
        self._stamp = None
        self._sources: list[ModelSource] = []
        if config is not None:
            self._sources = sources_from_config(config, source="reload request")
        if self.path is not None:
            if not self.path.is_file():
                raise UserError(f"model config {self.path} does not exist")
            self._read()  # fail fast on a bad file at start-up

    def _read(self) -> None:
        stamp = os.stat(self.path).st_mtime_ns, os.stat(self.path).st_size
        if stamp == self._stamp:
            return
        text = self.path.read_text(encoding="utf-8")
        config = parse_model_config(text, source=str(self.path))
        self._sources = sources_from_config(config, source=str(self.path))
        self._stamp = stamp

    def __call__(self) -> list[ModelSource]:
        if self.path is not None:
            try:
                self._read()
            except (OSError, UserError) as exc:
                log.error("keeping the previous model config: %s", exc)
        return list(self._sources)

    def replace(self, config) -> None:
        self._sources = sources_from_config(config, source="reload request")
        if self.path is not None and self.path.is_file():
            self._stamp = os.stat(self.path).st_mtime_ns, os.stat(self.path).st_size

    def describe(self) -> str:
        return f"model config {self.path}" if self.path else "model config from a reload request"
