"""Build hook only (the project is described in pyproject.toml): the wheel carries the zoo.

models/ stays at the repository's top level (TF Serving's model base path, the Dockerfile's
COPY); a wheel gets a copy of it as package data, ``zoo/bundled_models/``, so that an installed
``semzoo`` finds the bundled models (zoo.cli.options.default_zoo). An editable install reads
models/ in place and copies nothing.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODELS = Path(__file__).resolve().parent / "models"


class build_py_with_models(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        if not MODELS.is_dir():
            raise SystemExit(f"{MODELS} is missing: the wheel must carry the bundled models")
        target = Path(self.build_lib) / "zoo" / "bundled_models"
        shutil.rmtree(target, ignore_errors=True)
        # Never a half-published version (.tmp-*) nor placeholders (.gitkeep).
        shutil.copytree(MODELS, target, ignore=shutil.ignore_patterns(".*"))


setup(cmdclass={"build_py": build_py_with_models})
