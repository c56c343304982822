"""A non-editable install: the wheel carries the bundled models and `semzoo` finds them.

Builds the wheel from a copy of the source (pip wheel, no build isolation: offline), installs it
into a fresh venv that sees this environment's dependencies (a .pth to its site-packages, so
not the editable install's finder) and lists the zoo from outside the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "zoo", "models")


def _run(*args, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


def test_an_installed_wheel_serves_the_bundled_models(tmp_path):
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", ".tmp-*"))
        else:
            shutil.copy2(path, source / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", tmp_path / "dist", source)
    (wheel,) = (tmp_path / "dist").glob("semzoo-*.whl")

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    # This environment's dependencies (TensorFlow, typer, ...) without its editable semzoo: a .pth
    # line only adds the directory; the .pth files inside it (the editable finder) do not run.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel)

    env = {k: v for k, v in os.environ.items() if k not in ("SEMZOO_ZOO", "PYTHONPATH")}
    where = _run(python, "-c", "import zoo, zoo.cli.options as o; print(zoo.__file__); print(o.default_zoo())",
                 cwd=tmp_path, env=env).stdout.split()
    assert Path(where[0]).is_relative_to(site), where
    assert Path(where[1]) == site / "zoo" / "bundled_models"
    listed = json.loads(_run(venv / "bin" / "semzoo", "zoo", "list", "--json", cwd=tmp_path, env=env).stdout)
    bundled = sorted(p.name for p in (REPO / "models").iterdir() if p.is_dir())
    assert sorted(row["model"] for row in listed) == bundled
    assert all(row["problems"] == {} for row in listed), listed  # the copies' files match their cards
    assert {"gold-on-carbon", "hydrogel", "general"} <= set(bundled)
    # Exactly the repository's versions, and none of the checkout's placeholders.
    assert not list((site / "zoo" / "bundled_models").rglob(".*"))
    for name in bundled:
        versions = sorted(p.name for p in (REPO / "models" / name).iterdir() if p.name.isdigit())
        assert sorted(p.name for p in (site / "zoo" / "bundled_models" / name).iterdir() if p.name.isdigit()) == versions
    # $SEMZOO_ZOO still comes first.
    other = _run(python, "-c", "import zoo.cli.options as o; print(o.default_zoo())", cwd=tmp_path,
                 env={**env, "SEMZOO_ZOO": str(tmp_path / "mine")}).stdout.strip()
    assert other == str(tmp_path / "mine")
