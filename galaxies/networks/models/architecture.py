"""A network from a serialized Keras architecture (the AutoKeras search's pick, retrained).

Registered in `galaxies.networks.models` as model ``"autokeras"``: the architecture travels in the
training configuration (``model_kwargs={"architecture": ...}``), so a retrained pick loads and
predicts like every estimator without importing AutoKeras.
"""
from __future__ import annotations

import copy

from galaxies.runtime.errors import InputError

__all__ = ["build"]


def build(input_shape=(64, 64, 1), n_conditioning: int = 0, n_outputs: int = 5,
          architecture: dict | None = None):
    """Builder of `galaxies.networks.models` for model ``"autokeras"``: a fresh model of a serialized
    ``architecture`` (from `galaxies.evaluation.experiments.autokeras.plain_architecture`), checked
    against the expected shapes."""
    import keras

    if architecture is None:
        raise InputError("the autokeras builder needs model_kwargs={'architecture': ...} "
                         "(see galaxies.evaluation.experiments.autokeras.load_best)")
    if n_conditioning:
        raise InputError("an AutoKeras architecture takes the image only (n_conditioning = 0)")
    # deserialization consumes the dict it is given; the caller's (a training config) stays whole
    model = keras.saving.deserialize_keras_object(copy.deepcopy(architecture))
    if tuple(model.input_shape[1:]) != tuple(input_shape):
        raise InputError(f"the architecture takes inputs of shape {model.input_shape[1:]}, "
                         f"not {tuple(input_shape)}")
    if model.output_shape[-1] != n_outputs:
        raise InputError(f"the architecture has {model.output_shape[-1]} outputs, not {n_outputs}")
    return model
