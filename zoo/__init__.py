"""semzoo: super-resolution for scanning electron microscope images.

A model zoo of GANs (de Haan et al., Sci. Rep. 9, 12050, 2019) trained per sample type,
published as versioned SavedModels and served by TensorFlow Serving.

The public API is small and imported lazily, so ``import zoo`` stays cheap (no TensorFlow):
``read_sem``, ``write_sem``, ``Zoo`` and ``EnhanceClient``.
"""

from __future__ import annotations

# ``import zoo`` leaves the process's environment and logging alone; only the `semzoo` console
# script quiets TensorFlow's start-up chatter (zoo._quiet; SEMZOO_VERBOSE=1 shows everything).

__version__ = "0.1.0"

_LAZY = {
    "read_sem": ("zoo.data.sem_tiff", "read_sem"),
    "write_sem": ("zoo.data.sem_tiff", "write_sem"),
    "Zoo": ("zoo.registry.store", "Zoo"),
    "EnhanceClient": ("zoo.client.client", "EnhanceClient"),
    "UserError": ("zoo.errors", "UserError"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
