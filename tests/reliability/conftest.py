"""Fixtures for the reliability suite: a tiny zoo (nearest-x2 models, 32 px tiles) to copy."""

from __future__ import annotations

import shutil

import pytest

from tests.server.tiny_models import publish


@pytest.fixture(scope="session")
def base_zoo(tmp_path_factory):
    """``tiny`` v1 (gain 1, labelled stable) and v2 (gain 2): copy it before changing it."""
    root = tmp_path_factory.mktemp("reliability") / "models"
    publish(root, "tiny", gain=1.0, label="stable")
    publish(root, "tiny", gain=2.0)
    return root


@pytest.fixture
def zoo_copy(base_zoo, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(base_zoo, root)
    return root
