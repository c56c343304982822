"""Keep TensorFlow's import-time C++ log lines off a CLI user's terminal.

Some of TensorFlow's native libraries log through absl before ``TF_CPP_MIN_LOG_LEVEL`` is read
("All log messages before absl::InitializeLog() ..."), so the only way to silence them is to
point file descriptor 2 elsewhere while ``import tensorflow`` runs. Python-level errors raised by
the import are unaffected: they travel as exceptions, not through the file descriptor.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def stderr_fd_silenced() -> Iterator[None]:
    """Redirect the process-level stderr (fd 2) to /dev/null for the duration."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _AlreadyLoaded(importlib.abc.Loader):
    def create_module(self, spec):
        return sys.modules[spec.name]

    def exec_module(self, module) -> None:
        pass


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """On the first ``import tensorflow``, import it with fd 2 silenced, then step aside."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        uninstall_quiet_tensorflow_import()
        with stderr_fd_silenced():
            importlib.import_module("tensorflow")
        return importlib.util.spec_from_loader(name, _AlreadyLoaded())


_FINDER = _QuietTensorFlowImport()


def install_quiet_tensorflow_import() -> None:
    """Make the process's first ``import tensorflow`` (wherever it happens) quiet."""
    if "tensorflow" not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall_quiet_tensorflow_import() -> None:
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(_FINDER)
