"""Shared fixtures: seeded generators, the real vendor samples (when present), CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

SEM_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "sem-samples"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def sem_samples() -> Path:
    """The real FEI and Zeiss TIFFs from ../shared/sem-samples; skipped where absent."""
    if not SEM_SAMPLES.is_dir():
        pytest.skip("../shared/sem-samples is not present")
    return SEM_SAMPLES


@pytest.fixture
def cli():
    """Invoke ``semzoo`` in-process: ``cli("info", "a.tif")`` -> typer Result."""
    from typer.testing import CliRunner

    from zoo.cli.main import app

    runner = CliRunner()

    def invoke(*args: str, **kwargs):
        return runner.invoke(app, [str(a) for a in args], **kwargs)

    return invoke
