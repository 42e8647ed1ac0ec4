"""Bound-weighted training: each galaxy's error weighed by its own Cramér–Rao bound.

A network is judged by its per-galaxy normalized error, ``(estimate - truth) / CRB``, while a
plain squared error on standardized labels weighs a bright galaxy (a tight bound) like a faint
one. With ``loss_weighting="bound"`` the loss is what is measured:

    loss = mean over the 5 labels of ((y_pred - y_true) / CRB_scaled)^2

``CRB_scaled`` is the galaxy's bound in standardized label units: the bound over the label
scaler's standard deviation, and for a label learned as its logarithm (``log_labels``) over
the standard deviation times the galaxy's value, the bound of the logarithm to first order
(`galaxies.networks.training.scaling.Standardizer.units_per_step`). So the loss is the mean
squared normalized error and the validation loss that early stopping watches is the metric
itself; its minimizer is the posterior mean weighted by each galaxy's inverse squared bound,
the reference the networks' ratio is judged against (`galaxies.evaluation.against_posterior`). The weights are not
rescaled to a mean of 1: Adam's steps do not depend on a constant factor of the loss, so the
learning rate still fits, while normalizing each label apart would weigh the labels otherwise
than the metric does. A galaxy without a finite bound (a singular Fisher matrix: a parameter
the image does not constrain) gets weight 0 for that label, as the metric leaves it out.
Two departures from the metric's own weights are kept as options to measure against it:
``"bound-per-label"`` scales each label's weights to a mean of 1 over the training rows (the
labels then share the loss as under the plain error), and ``loss_weight_cap`` caps each label's
weights at a multiple of its median (a few very bright galaxies cannot carry a label's loss).
With ``"bound-per-label"``, ``loss_weighted_labels`` weighs only the labels named by the bound
(each scaled to a mean of 1 over the training rows); the others keep weight 1, the plain
squared error, on every row: a weighted label's term then has the size of a plain one on
average, so the labels still share the loss as under the plain error.
docs/benchmarks.md has what each did to the recommended network.

The bounds of the training rows come from the differentiable model
(`galaxies.inference.crb_sets.for_dataset` with ``renderer="jax"``, cached). The bound of a
row depends on its read noise: with the row's own noise (fixed noise, or fresh noise with
``noise_sigma=None``) it is computed once per row; when the stream draws sigma per showing
(``noise_sigma=(low, high)``), it is computed at log-spaced noise levels spanning the range,
neighbours at most `GRID_RATIO` apart, and interpolated linearly in log bound against log sigma
(nearly a straight line: the read noise makes the bound grow like sigma, the Poisson part
bends it a little). The eight orientations of the stream leave the bounds unchanged (they only
flip the signs of the shears). The weights travel as five more target columns after the
standardized labels (`bound_weighted_mse`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from galaxies.conventions import LABEL_COLUMNS
from galaxies.runtime.errors import InputError

__all__ = ["GRID_RATIO", "LABEL_BOUND_SAMPLE", "sigma_grid", "label_weights", "BoundWeights",
           "LabelWeights", "bound_weighted_mse"]

#: the largest ratio of neighbouring noise levels at which drawn-noise bounds are computed
GRID_RATIO = 2.0
#: the training rows whose bounds set the weights of ``loss_weighting="label-bound"``
LABEL_BOUND_SAMPLE = 2_000
N_LABELS = len(LABEL_COLUMNS)


def sigma_grid(low: float, high: float, ratio: float = GRID_RATIO) -> np.ndarray:
    """Log-spaced read-noise levels from ``low`` to ``high``, neighbours at most ``ratio``
    apart (one level when ``low == high``)."""
    if not 0 < low <= high or ratio <= 1:
        raise InputError(f"sigma grid ({low}, {high}) needs 0 < low <= high and ratio > 1")
    if low == high:
        return np.array([float(low)])
    points = max(2, 1 + math.ceil(math.log(high / low) / math.log(ratio) - 1e-9))
    return np.exp(np.linspace(math.log(low), math.log(high), points))


def label_weights(bounds: np.ndarray, units) -> np.ndarray:
    """``1 / (bound / units)^2`` per galaxy and label (N, 5), float32: the bound in standardized
    label units (``units``: label units per standardized unit, the scaler's standard deviation
    or, per galaxy, `Standardizer.units_per_step`); 0 where the bound is not a positive finite
    number."""
    scaled = np.asarray(bounds, np.float64) / np.asarray(units, np.float64)
    ok = np.isfinite(scaled) & (scaled > 0)
    out = np.zeros(scaled.shape, np.float32)
    out[ok] = 1.0 / scaled[ok] ** 2
    return out


@dataclass
class BoundWeights:
    """The bounds of a data set's rows and the weights of a batch of them.

    ``bounds`` (N, 5) at each row's own read noise, or (N, K, 5) at the noise levels
    ``sigmas`` (K,); ``units`` (N, 5) label units per standardized unit at each row (the label
    scaler's standard deviation, times the row's value for a logarithmic label); ``sigma_column``
    the column of the read noise in the (scaled) conditioning input, decoded by
    ``conditioning`` (a `galaxies.networks.training.scaling.Standardizer`), for drawn noise;
    ``scale`` (5,) multiplies the weights of each label (1: the metric's own weights);
    ``cap`` (5,), when given, is the largest weight of each label (after ``scale``);
    ``plain`` (5,) bool, when given, marks the labels of weight 1 (not weighed by the bound).
    """

    bounds: np.ndarray
    units: np.ndarray
    sigmas: np.ndarray | None = None
    sigma_column: int | None = None
    conditioning: object = None
    scale: np.ndarray | None = None
    cap: np.ndarray | None = None
    plain: np.ndarray | None = None

    @classmethod
    def for_training(cls, ds, config, scalers: dict, cache_dir=None, progress: bool = False,
                     train=None):
        """The bounds of every row of ``ds`` (a loaded data set, its first rows those of the
        file ``ds.path``) for the noise ``config`` trains with; cached by
        `galaxies.inference.crb_sets.for_dataset` (in ``cache_dir``, default beside the set).
        With ``loss_weighting="bound-per-label"`` each label's weights are scaled to a mean of
        1 over the rows ``train`` (default: all; at every noise level of the grid); with
        ``loss_weight_cap`` they are capped at that multiple of each label's median there;
        the labels not in ``loss_weighted_labels`` (when given) get weight 1."""
        _check_rows_from_first(ds)
        rows = np.arange(len(ds))
        bounds, sigmas = _training_bounds(ds, config, rows, cache_dir, progress)
        units = np.broadcast_to(scalers["label"].units_per_step(ds.label), ds.label.shape)
        if sigmas is None:
            out = cls(bounds, units)
        else:
            out = cls(bounds, units, sigmas, config.conditioning.index("sigma"), scalers["conditioning"])
        chosen = rows if train is None else train
        seen = label_weights(out.bounds[chosen], out.units_of(chosen, out.bounds.ndim)).reshape(-1, N_LABELS)
        if config.loss_weighting == "bound-per-label":
            out.scale = 1.0 / np.maximum(seen.mean(axis=0), np.finfo(np.float32).tiny)
            seen = seen * out.scale
        if getattr(config, "loss_weighted_labels", None) is not None:
            out.plain = np.array([p not in config.loss_weighted_labels for p in LABEL_COLUMNS])
            seen[:, out.plain] = 1.0
        if config.loss_weight_cap is not None:
            out.cap = config.loss_weight_cap * np.median(seen, axis=0)
        return out

    def units_of(self, rows: np.ndarray, ndim: int = 2) -> np.ndarray:
        """``units`` of the rows, shaped to divide bounds of ``ndim`` dimensions ((n, 5), or
        (n, K, 5) at the noise levels of the grid)."""
        units = np.asarray(self.units)[rows]
        return units[:, None] if ndim == 3 else units

    def at(self, rows: np.ndarray, sigma: np.ndarray | None = None) -> np.ndarray:
        """The bounds (n, 5) of the rows ``rows`` with read noise ``sigma`` (n,) (drawn noise
        only; log-log interpolation between the grid's levels, clipped to its ends)."""
        if self.sigmas is None:
            return self.bounds[rows]
        if sigma is None:
            raise InputError("bounds at drawn noise levels need each row's sigma")
        table = np.log(self.bounds[rows])  # (n, K, 5); NaN stays NaN
        if len(self.sigmas) == 1:
            return np.exp(table[:, 0])
        x = np.clip(np.log(np.asarray(sigma, np.float64)), np.log(self.sigmas[0]), np.log(self.sigmas[-1]))
        right = np.clip(np.searchsorted(np.log(self.sigmas), x), 1, len(self.sigmas) - 1)
        x0, x1 = np.log(self.sigmas[right - 1]), np.log(self.sigmas[right])
        t = ((x - x0) / (x1 - x0))[:, None]
        n = np.arange(len(rows))
        return np.exp((1 - t) * table[n, right - 1] + t * table[n, right])

    def __call__(self, rows: np.ndarray, extras: tuple = ()) -> np.ndarray:
        """The weights (n, 5) of the rows ``rows`` of the set, given the batch's other model
        inputs ``extras`` (their first the scaled conditioning, which holds the drawn sigma)."""
        sigma = None
        if self.sigmas is not None:
            known = self.conditioning.inverse(np.asarray(extras[0]))
            sigma = known[:, self.sigma_column]
        rows = np.asarray(rows)
        weights = label_weights(self.at(rows, sigma), self.units_of(rows))
        if self.scale is not None:
            weights = weights * self.scale
        if self.cap is not None:
            weights = np.minimum(weights, self.cap)
        if self.plain is not None:
            weights[:, self.plain] = 1.0
        return weights.astype(np.float32)


@dataclass
class LabelWeights:
    """One weight per label, the same for every galaxy (``loss_weighting="label-bound"``):
    the inverse of the label's mean squared bound, in standardized units, over a sample of the
    training rows (at every noise level the stream draws). A network whose error on each galaxy
    is a fixed multiple of its bound then has each label's term of the loss equal to that
    multiple squared, as the metric has it, so the labels share the loss as they are judged.
    Unlike ``"bound"``, every galaxy of a label weighs the same, so the minimizer stays the
    posterior mean and no noise level or brightness takes the loss from the others.
    ``weights`` (5,)."""

    weights: np.ndarray

    @classmethod
    def for_training(cls, ds, config, scalers: dict, cache_dir=None, progress: bool = False,
                     train=None, sample: int = LABEL_BOUND_SAMPLE):
        """The weights from the bounds of ``sample`` rows of ``train`` (default: all rows of
        ``ds``), drawn with ``config.seed``; bounds cached as for `BoundWeights`."""
        _check_rows_from_first(ds)
        chosen = np.arange(len(ds)) if train is None else np.asarray(train)
        rng = np.random.default_rng(config.seed)
        rows = np.sort(rng.choice(chosen, min(sample, len(chosen)), replace=False))
        bounds, _ = _training_bounds(ds, config, rows, cache_dir, progress)
        units = scalers["label"].units_per_step(ds.label[rows])
        inverse = label_weights(bounds[rows], units[:, None] if bounds.ndim == 3 else units)
        inverse = inverse.reshape(-1, N_LABELS).astype(np.float64)  # 0 where no finite bound
        mean_square = np.array([np.mean(1.0 / c[c > 0]) if np.any(c > 0) else np.nan
                                for c in inverse.T])
        if not np.all(np.isfinite(mean_square)):
            raise InputError(f"label-bound weighting: no finite bound for "
                             f"{[p for p, m in zip(LABEL_COLUMNS, mean_square) if not m > 0]} "
                             f"among {len(rows)} training rows")
        return cls(np.asarray(1.0 / mean_square, np.float32))

    def __call__(self, rows: np.ndarray, extras: tuple = ()) -> np.ndarray:
        """The weights (n, 5) of the rows ``rows``: the same five for every row."""
        return np.tile(self.weights, (len(np.asarray(rows)), 1))


def _check_rows_from_first(ds) -> None:
    """One error unless ``ds`` holds the rows of its file ``ds.path`` from the first one (the
    bounds are cached by row number)."""
    from galaxies.storage import files

    stored = files.load_dataset(ds.path, fields=(), rows=len(ds))
    if len(stored) != len(ds) or not np.array_equal(stored.label, ds.label):
        raise InputError(f"bound weighting needs the rows of {ds.path} from its first one; "
                         "the data set given is another selection")


def _training_bounds(ds, config, rows: np.ndarray, cache_dir=None, progress: bool = False):
    """The bounds of the rows ``rows`` of ``ds`` for the noise ``config`` trains with, as an
    array over all rows of ``ds`` (NaN elsewhere), and the noise levels: ``(bounds (N, 5),
    None)`` at each row's own read noise, or ``(bounds (N, K, 5), sigmas (K,))`` at the levels
    of `sigma_grid` spanning ``config.noise_sigma``."""
    from galaxies.inference import crb_sets

    def bounds_at(sigma):
        return crb_sets.for_dataset(ds.path, rows=rows, renderer="jax", sigma=sigma,
                                    cache_dir=cache_dir, progress=progress)[:len(ds)]

    if config.noise_sigma is None:
        return bounds_at(None), None
    sigmas = sigma_grid(*config.noise_sigma)
    return np.stack([bounds_at(float(s)) for s in sigmas], axis=1), sigmas


def bound_weighted_mse(y_true, y_pred):
    """The mean over labels of the weighted squared error: ``y_true`` (n, 10) holds the 5
    standardized labels then their weights (`label_weights`), ``y_pred`` (n, 5)."""
    from keras import ops
    labels, weights = y_true[..., :N_LABELS], y_true[..., N_LABELS:]
    return ops.mean(weights * ops.square(y_pred[..., :N_LABELS] - labels), axis=-1)
