"""Keras 3 model builders (backend-agnostic: keras.layers and keras.ops only).

`BUILDERS` maps an estimator name to ``module:function``; the function takes
``input_shape, n_conditioning, n_outputs`` and keyword sizes and returns a ``keras.Model``.
Modules are imported on demand, so ``import galaxies.models`` does not import Keras.
"""
from __future__ import annotations

import importlib

BUILDERS: dict[str, str] = {
    "xception": "galaxies.models.xception:build",
    "autokeras": "galaxies.autokeras_search:build",  # an architecture found by AutoKeras
}


def get_builder(name: str):
    """The builder function of estimator ``name``."""
    try:
        module, function = BUILDERS[name].split(":")
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(BUILDERS)}") from None
    return getattr(importlib.import_module(module), function)
