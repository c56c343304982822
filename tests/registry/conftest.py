"""Shared fixtures: one tiny export and one tiny zoo per session, copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.zoo_fixtures import export_tiny, make_tiny_zoo


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Path:
    """An exported (unpublished) tiny version; read-only, shared by the session."""
    return export_tiny(tmp_path_factory.mktemp("export") / "tiny", "tiny")


@pytest.fixture(scope="session")
def _tiny_zoo_master(tmp_path_factory, tiny_export) -> Path:
    from zoo.registry.store import Zoo

    root = tmp_path_factory.mktemp("zoo-master") / "models"
    zoo = Zoo(root)
    zoo.publish_version("tiny", tiny_export)
    zoo.publish_version("tiny", tiny_export)
    zoo.set_label("tiny", 1, "stable")
    return root


@pytest.fixture
def tiny_zoo(tmp_path, _tiny_zoo_master) -> Path:
    """A private zoo: models/tiny/{1,2}, stable -> 1 (tests may modify it)."""
    root = tmp_path / "models"
    shutil.copytree(_tiny_zoo_master, root)
    return root
