"""The model zoo: versions, cards, SavedModel export and TF Serving config.

``Zoo`` (store.py) is the on-disk zoo, ``publish_generator`` (publish.py) publishes a
generator with its card; publishing a training run is training's part
(:func:`zoo.training.publish.publish_run`). Imported lazily: ``import zoo.registry`` does not
import TensorFlow.
"""

from __future__ import annotations

_LAZY = {
    "Zoo": ("zoo.registry.store", "Zoo"),
    "publish_generator": ("zoo.registry.publish", "publish_generator"),
    "export_generator": ("zoo.registry.export", "export_generator"),
    "validate_card": ("zoo.registry.card", "validate_card"),
    "read_card": ("zoo.registry.card", "read_card"),
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'zoo.registry' has no attribute {name!r}")
