"""Keras 3 model builders, and nothing else (backend-agnostic: ``keras.layers`` and ``keras.ops``).

A builder takes ``input_shape, n_conditioning, n_outputs`` and keyword sizes and returns a
``keras.Model``. `get_builder` imports the builder's module when asked, so ``import
galaxies.models`` does not import Keras. The denoisers' builders are
`galaxies.models.denoisers.BUILDERS`; the autoencoder's, `galaxies.models.autoencoder`.
"""
from __future__ import annotations

from ..errors import InputError

#: the estimators' builders by model name (`galaxies.training.TrainingConfig.model`)
BUILDERS = ("xception", "autokeras")


def get_builder(name: str):
    """The builder function of model ``name``."""
    if name == "xception":
        from .xception import build
    elif name == "autokeras":  # an architecture found by the AutoKeras search
        from .architecture import build
    else:
        raise InputError(f"unknown model {name!r}; choose from {', '.join(BUILDERS)}")
    return build
