"""Keras 3 model builders, and nothing else (backend-agnostic: ``keras.layers`` and ``keras.ops``).

A builder takes ``input_shape, n_conditioning, n_outputs`` and keyword sizes and returns a
``keras.Model``. `get_builder` imports the builder's module when asked, so ``import
galaxies.networks.models`` does not import Keras. The denoisers' builders are
`galaxies.networks.models.denoisers.BUILDERS`; the autoencoder's, `galaxies.networks.models.autoencoder`.

`xception` (the Xception-style estimator), `architecture` (an architecture the AutoKeras
search found, rebuilt), `autoencoder` (encoder and decoder), `denoisers` (EDSR and RDN).
"""
from __future__ import annotations

from galaxies.runtime.errors import InputError

#: the estimators' builders by model name (`galaxies.networks.training.TrainingConfig.model`)
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
