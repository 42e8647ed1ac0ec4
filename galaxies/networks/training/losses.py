"""Losses of the estimators (Keras 3, backend-agnostic: ``keras.ops`` only).

With ``uncertainty=True`` a network also predicts the log standard deviation of each label.
By default (``uncertainty_loss="decoupled"``) the means are trained by the mean squared error
exactly as without uncertainty, and the log standard deviations by the Gaussian negative
log-likelihood of the residuals with the means held fixed (gradients of the means stopped), so
asking for an uncertainty does not trade away accuracy; ``uncertainty_loss="nll"`` trains
both by the plain Gaussian negative log-likelihood.
"""
from __future__ import annotations

from galaxies.conventions import LABEL_COLUMNS

__all__ = ["gaussian_nll", "decoupled_nll", "mean_mse", "LOSSES"]

N_LABELS = len(LABEL_COLUMNS)


def gaussian_nll(y_true, y_pred):
    """Gaussian negative log-likelihood; ``y_pred`` holds 5 means then 5 log standard deviations."""
    from keras import ops
    mean, log_std = y_pred[..., :N_LABELS], ops.clip(y_pred[..., N_LABELS:], -7.0, 7.0)
    return ops.mean(0.5 * ops.square((y_true - mean) * ops.exp(-log_std)) + log_std, axis=-1)


def decoupled_nll(y_true, y_pred):
    """Mean squared error of the 5 means plus the Gaussian negative log-likelihood of the 5
    log standard deviations with the means held fixed: the means learn exactly as under
    `mean_mse`, and the standard deviations learn the spread of their residuals."""
    from keras import ops
    mean = y_pred[..., :N_LABELS]
    fixed = ops.concatenate([ops.stop_gradient(mean), y_pred[..., N_LABELS:]], axis=-1)
    return mean_mse(y_true, y_pred) + gaussian_nll(y_true, fixed)


def mean_mse(y_true, y_pred):
    """Mean squared error of the first five outputs (the labels) only."""
    from keras import ops
    return ops.mean(ops.square(y_true - y_pred[..., :N_LABELS]), axis=-1)


#: the loss of each ``uncertainty_loss`` choice
LOSSES = {"decoupled": decoupled_nll, "nll": gaussian_nll}
