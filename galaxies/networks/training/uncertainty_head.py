"""An uncertainty network made from a trained estimator: its layers frozen, a head for the spread.

A network trained by the squared error already holds, in the features that feed its last
layer, what its error depends on: the galaxy's flux, size and shape, and the PSF and noise
level it is told. A small dense head on those features, trained by the Gaussian negative
log-likelihood of the estimator's own residuals (`galaxies.networks.training.losses.decoupled_nll`,
the means frozen), predicts the standard deviation of *that* estimator's error. The means are
the estimator's to the last digit, and training costs a forward pass of the frozen layers per
image instead of a second network of the same length.

`fit` does it when given ``base`` (`galaxies.networks.training.loop.fit`): the same data, split,
scalers and fresh-noise stream as the estimator's own training (`check_base`), so the head learns
on the estimator's training rows and is judged on its validation rows.
"""
from __future__ import annotations

from dataclasses import asdict

from galaxies.conventions import LABEL_COLUMNS
from galaxies.runtime.errors import InputError

__all__ = ["HEAD_FIELDS", "check_base", "with_std_head"]

N_LABELS = len(LABEL_COLUMNS)

#: the `TrainingConfig` fields a head may set for itself (its loss, its schedule and averaging, and the label
#: weights of the estimator's own loss on the means, which the head's frozen means do not
#: need); every other field (the data, the inputs, the split, the noise, the labels' scaling)
#: must be the estimator's
HEAD_FIELDS = ("uncertainty", "uncertainty_loss", "epochs", "batch_size", "patience",
               "learning_rate", "schedule", "augment", "average_epochs", "label_weights")


def check_base(config, base) -> None:
    """One-line errors unless ``config`` asks for a standard-deviation head on the estimator
    ``base`` (a `galaxies.networks.training.SavedModel`): ``uncertainty=True`` with the
    decoupled loss, a ``base`` without one, and the estimator's own data, inputs and split."""
    if not config.uncertainty or config.uncertainty_loss != "decoupled":
        raise InputError(f"a head on {base.name} learns standard deviations only: it needs "
                         "uncertainty = True and uncertainty_loss = 'decoupled'")
    if base.uncertainty:
        raise InputError(f"{base.name} already predicts standard deviations")
    if config.loss_weighting != "none":
        raise InputError(f"loss_weighting = {config.loss_weighting!r} cannot train a standard-"
                         "deviation head")
    mine, theirs = asdict(config), asdict(base.config)  # both normalized by TrainingConfig
    differ = [k for k in mine if k not in HEAD_FIELDS and mine[k] != theirs[k]]
    if differ:
        shown = ", ".join(f"{k} = {mine[k]!r} (its {theirs[k]!r})" for k in differ)
        raise InputError(f"a head on {base.name} must train on its data, inputs and split: {shown}")


def with_std_head(model, units: int = 64):
    """A copy of ``model`` (outputs: the labels' means) with every layer frozen and a new head:
    a dense layer of ``units`` (SELU) on the features that feed its output layer, then one log
    standard deviation per label. The new model's outputs are the means, then the log standard
    deviations (`galaxies.networks.training.losses`). ``model`` itself is left as it was."""
    import keras
    from keras import layers

    if int(model.outputs[0].shape[-1]) != N_LABELS:
        raise InputError(f"{model.name} has {model.outputs[0].shape[-1]} outputs; a head needs "
                         f"a network of {N_LABELS} (the labels)")
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    model, out_layer = copy, copy.layers[-1]
    for layer in model.layers:
        layer.trainable = False
    hidden = layers.Dense(units, activation="selu", name="std_hidden")(out_layer.input)
    log_std = layers.Dense(N_LABELS, name="log_std")(hidden)
    outputs = layers.Concatenate(name="labels_and_log_std")([model.outputs[0], log_std])
    return keras.Model(model.inputs, outputs, name=f"{model.name}_with_std")
