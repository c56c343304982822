"""Keep TensorFlow's known start-up chatter off a CLI user's terminal (``semzoo`` only).

Some of TensorFlow's native libraries log through absl before ``TF_CPP_MIN_LOG_LEVEL`` is read
("All log messages before absl::InitializeLog() ..."), so the only way to catch those lines is to
point file descriptor 2 elsewhere while ``import tensorflow`` runs. The lines caught there are
written back unless they are known chatter (:data:`KNOWN_CHATTER`), so an unexpected message
still reaches the user. Python-level errors raised by the import are unaffected: they travel as
exceptions, not through the file descriptor.

Only the console script calls :func:`quiet_cli`; ``import zoo`` changes nothing in the process.
``SEMZOO_VERBOSE=1`` turns all of it off and shows everything.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import os
import sys
import tempfile
from typing import Iterator

VERBOSE_ENV = "SEMZOO_VERBOSE"

# Lines TensorFlow (2.16-2.21) prints on import or at its first device query that say nothing
# an SEM user can act on: CUDA probing on a machine without a GPU, oneDNN and CPU-instruction
# notes, factory registrations repeated by plugins.
KNOWN_CHATTER = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    "TF-TRT Warning: Could not find TensorRT",
    "failed call to cuInit",
    "Attempting to register factory for plugin",
)


def verbose() -> bool:
    """True when ``SEMZOO_VERBOSE`` asks to see everything (any value but empty, 0, false, no)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def quiet_cli() -> None:
    """What ``semzoo`` does before a command runs, unless :func:`verbose`: TensorFlow's C++ log
    level to fatal only (when the user has not set ``TF_CPP_MIN_LOG_LEVEL``; real failures
    still arrive as Python exceptions) and the known chatter of its import filtered out."""
    if verbose():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    install_quiet_tensorflow_import()


def is_chatter(line: str) -> bool:
    return any(known in line for known in KNOWN_CHATTER)


@contextlib.contextmanager
def stderr_fd_filtered() -> Iterator[None]:
    """Catch what is written to the process-level stderr (fd 2) for the duration; then write
    back every line that is not known chatter."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to filter
        yield
        return
    caught = tempfile.TemporaryFile()  # a file, not a pipe: a long burst cannot block the writer
    try:
        os.dup2(caught.fileno(), 2)
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        caught.seek(0)
        kept = b"".join(line for line in caught.read().splitlines(keepends=True)
                        if not is_chatter(line.decode("utf-8", "replace")))
        caught.close()
        while kept:  # also when the import failed: its messages may say why
            kept = kept[os.write(2, kept):]


class _AlreadyLoaded(importlib.abc.Loader):
    def create_module(self, spec):
        return sys.modules[spec.name]

    def exec_module(self, module) -> None:
        pass


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """On the first ``import tensorflow``, import it with fd 2 filtered, then step aside."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        uninstall_quiet_tensorflow_import()
        with stderr_fd_filtered():
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
