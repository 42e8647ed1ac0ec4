"""`TrainingConfig`: how to train one estimator, and which fields of a data set it reads."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from galaxies.conventions import LABEL_COLUMNS
from galaxies.runtime.errors import InputError
from galaxies.storage import files

__all__ = ["TrainingConfig", "CONDITIONING", "INPUTS", "NOISE", "SCHEDULES", "UNCERTAINTY_LOSSES",
           "LOSS_WEIGHTINGS", "LOG_LABELS", "check_budget", "input_fields", "dataset_arrays"]

CONDITIONING = ("psf_fwhm", "sigma")  # scalar inputs a model may take
INPUTS = ("noisy", "noiseless")  # which images of a data set a model reads
NOISE = ("fixed", "fresh")  # the set's noisy images, or new noise at every showing
SCHEDULES = ("cosine", "plateau")
UNCERTAINTY_LOSSES = ("decoupled", "nll")
#: the plain error, over each galaxy's bound, or over each label's typical bound
LOSS_WEIGHTINGS = ("none", "bound", "bound-per-label", "label-bound")
LOG_LABELS = ("flux", "sersic_n", "sersic_r")  # the positive labels, which may be learned as logarithms


@dataclass
class TrainingConfig:
    """How to train one estimator. Sizes and epochs normally come from the profile.

    Attributes:
        model:          builder name (`galaxies.networks.models.BUILDERS`).
        inputs:         ``"noisy"`` or ``"noiseless"`` images of the data set.
        conditioning:   known per-galaxy numbers given as a second input (`CONDITIONING`).
        psf_channel:    give the PSF image as a second image channel.
        uncertainty:    also predict a standard deviation per label (written as ``pred_std``).
        uncertainty_loss: ``"decoupled"`` (MSE for the means, Gaussian NLL for the standard
                        deviations given the means) or ``"nll"`` (Gaussian NLL for both).
        epochs, batch_size, patience: as in Keras; ``patience`` is early stopping's.
        learning_rate:  Adam's peak learning rate.
        schedule:       ``"cosine"`` (one warm-up epoch, then cosine decay) or ``"plateau"``.
        augment:        train on random orientations of the pixel grid (see `dihedral`).
        validation_fraction: share of the rows held out for validation (seeded split).
        seed:           seeds the split, the weights, the shuffling and the augmentation.
        limit:          use only the first rows of the training set.
        train_rows:     train on only this many rows of the seeded training split (its
                        first, by row number); the validation rows are those of the whole
                        split, so runs of different sizes are judged on the same rows.
        noise:          ``"fixed"``: the set's noisy images (the original study's way); ``"fresh"``: new
                        noise on the noiseless images at every showing (`galaxies.networks.training.noise`).
        noise_sigma:    with fresh noise, the read-noise range ``(low, high)`` drawn per image
                        (give ``conditioning=("sigma",)`` so the network knows it), or None
                        for each row's own sigma.
        loss_weighting: ``"none"``: the plain squared error of the standardized labels;
                        ``"bound"``: each galaxy's error over its own Cramér–Rao bound, the
                        measure the networks are judged by (`galaxies.networks.training.weighting`);
                        ``"bound-per-label"``: the same with each label's weights scaled to a
                        mean of 1, so the labels share the loss as under the plain error;
                        ``"label-bound"``: one weight per label, the same for every galaxy,
                        the inverse of the label's mean squared bound over the training rows,
                        so the labels share the loss as the metric weighs them while the
                        target of each stays the (unweighted) posterior mean.
        label_weights:  five positive weights, one per label (`LABEL_COLUMNS`), multiplying each
                        label's squared error for every galaxy (None: all 1); with
                        ``loss_weighting="none"`` only (``"label-bound"`` computes them).
        loss_weight_cap: with a bound weighting, the largest weight as a multiple of each
                        label's median weight over the training rows (None: no cap), so that
                        a few galaxies with tiny bounds cannot carry a label's whole loss.
        loss_weighted_labels: with ``loss_weighting="bound-per-label"``, the labels
                        (`LABEL_COLUMNS`) whose error is weighed by the bound (scaled to a mean
                        of 1); the others keep the plain squared error, weight 1 (None: all).
        log_labels:     the labels (of `LOG_LABELS`) the network learns as their logarithm
                        (standardized after it; `galaxies.networks.training.scaling.Standardizer`):
                        its squared error is then relative, as the bound is for a flux or a
                        radius, and the posterior closer to Gaussian. Predictions come back in
                        the labels' own units.
        crop:           the network sees the central ``crop`` x ``crop`` pixels of each image
                        (None: all 64 x 64): fewer pixels, a cheaper network, and the bound of
                        a galaxy small against the stamp hardly changed.
        average_epochs: keep the mean of the weights at the end of the last ``average_epochs``
                        epochs (stochastic weight averaging along the cosine schedule's tail)
                        instead of the best validation epoch's; 0: no averaging. Meant as an
                        ensemble of one training's nearby points at the cost of one network.
        model_kwargs:   keyword arguments of the builder (sizes).
    """

    model: str = "xception"
    inputs: str = "noisy"
    conditioning: tuple = ()
    psf_channel: bool = False
    uncertainty: bool = False
    epochs: int = 10
    batch_size: int = 128
    patience: int = 4
    learning_rate: float = 1e-3
    validation_fraction: float = 0.1
    seed: int = 0
    limit: int | None = None  # use only the first rows of the training set
    train_rows: int | None = None  # of the training split; the validation rows unchanged
    model_kwargs: dict = field(default_factory=dict)
    schedule: str = "cosine"
    augment: bool = True
    uncertainty_loss: str = "decoupled"
    noise: str = "fixed"
    noise_sigma: tuple | None = None
    loss_weighting: str = "none"
    loss_weight_cap: float | None = None
    loss_weighted_labels: tuple | None = None
    label_weights: tuple | None = None
    log_labels: tuple = ()
    crop: int | None = None
    average_epochs: int = 0

    def __post_init__(self):
        if self.inputs not in INPUTS:
            raise InputError(f"inputs = {self.inputs!r}; choose from {INPUTS}")
        self.conditioning = tuple(self.conditioning)
        bad = [c for c in self.conditioning if c not in CONDITIONING]
        if bad:
            raise InputError(f"conditioning {bad} not understood; choose from {CONDITIONING}")
        if len(set(self.conditioning)) != len(self.conditioning):
            raise InputError(f"conditioning {self.conditioning} names an input twice")
        check_budget(self)
        if self.noise not in NOISE:
            raise InputError(f"noise = {self.noise!r}; choose from {NOISE}")
        if self.noise == "fresh" and self.inputs != "noisy":
            raise InputError("noise = 'fresh' makes noisy inputs; it needs inputs = 'noisy'")
        if self.noise_sigma is not None:
            if self.noise != "fresh":
                raise InputError(f"noise_sigma = {self.noise_sigma} needs noise = 'fresh'")
            self.noise_sigma = tuple(float(v) for v in self.noise_sigma)
            if "sigma" not in self.conditioning:
                raise InputError(f"noise_sigma = {self.noise_sigma} draws the noise level: give "
                                 "conditioning=('sigma',) so that the network knows it")
        if self.train_rows is not None and (isinstance(self.train_rows, bool)
                                            or int(self.train_rows) != self.train_rows
                                            or self.train_rows < 1):
            raise InputError(f"train_rows = {self.train_rows!r} must be a positive integer "
                             "(or None for the whole training split)")
        if (isinstance(self.average_epochs, bool) or int(self.average_epochs) != self.average_epochs
                or not 0 <= self.average_epochs <= self.epochs):
            raise InputError(f"average_epochs = {self.average_epochs!r} must be a whole number from 0 "
                             f"to epochs = {self.epochs}")
        if self.patience < 0:
            raise InputError(f"patience = {self.patience} must be at least 0")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise InputError(f"learning_rate = {self.learning_rate} must be a positive number")
        if self.schedule not in SCHEDULES:
            raise InputError(f"schedule = {self.schedule!r}; choose from {SCHEDULES}")
        if self.uncertainty_loss not in UNCERTAINTY_LOSSES:
            raise InputError(f"uncertainty_loss = {self.uncertainty_loss!r}; choose from "
                             f"{UNCERTAINTY_LOSSES}")
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise InputError(f"loss_weighting = {self.loss_weighting!r}; choose from {LOSS_WEIGHTINGS}")
        if self.loss_weighting != "none" and self.uncertainty:
            raise InputError(f"loss_weighting = {self.loss_weighting!r} weighs the squared error; "
                             "it cannot be combined with uncertainty = True")
        if self.loss_weight_cap is not None:
            if self.loss_weighting not in ("bound", "bound-per-label"):
                raise InputError(f"loss_weight_cap = {self.loss_weight_cap} needs a bound weighting "
                                 "(loss_weighting = 'bound' or 'bound-per-label')")
            if not (math.isfinite(self.loss_weight_cap) and self.loss_weight_cap >= 1):
                raise InputError(f"loss_weight_cap = {self.loss_weight_cap} must be a number >= 1 "
                                 "(a multiple of the median weight)")
        if self.label_weights is not None:
            self.label_weights = tuple(float(v) for v in self.label_weights)
            if len(self.label_weights) != len(LABEL_COLUMNS) or not all(
                    math.isfinite(v) and v > 0 for v in self.label_weights):
                raise InputError(f"label_weights = {self.label_weights} must be {len(LABEL_COLUMNS)} "
                                 f"positive numbers, one for each of {tuple(LABEL_COLUMNS)}")
            if self.loss_weighting != "none":
                raise InputError(f"label_weights = {self.label_weights} needs loss_weighting = "
                                 f"'none' (not {self.loss_weighting!r}, which sets the weights)")
            if self.uncertainty:
                raise InputError(f"label_weights = {self.label_weights} weighs the squared error; "
                                 "it cannot be combined with uncertainty = True")
        if self.loss_weighted_labels is not None:
            self.loss_weighted_labels = tuple(self.loss_weighted_labels)
            bad = [v for v in self.loss_weighted_labels if v not in LABEL_COLUMNS]
            if bad or not self.loss_weighted_labels:
                raise InputError(f"loss_weighted_labels {bad or '()'} not understood; choose "
                                 f"one or more of {tuple(LABEL_COLUMNS)}")
            if self.loss_weighting != "bound-per-label":
                raise InputError(f"loss_weighted_labels = {self.loss_weighted_labels} needs "
                                 "loss_weighting = 'bound-per-label' (the others' weight 1 "
                                 "matches weights scaled to a mean of 1)")

        self.log_labels = tuple(self.log_labels)
        bad = [v for v in self.log_labels if v not in LOG_LABELS]
        if bad or len(set(self.log_labels)) != len(self.log_labels):
            raise InputError(f"log_labels {self.log_labels} not understood; choose each of "
                             f"{LOG_LABELS} at most once")
        if self.crop is not None and (isinstance(self.crop, bool) or int(self.crop) != self.crop
                                      or not 16 <= self.crop <= 64 or self.crop % 2):
            raise InputError(f"crop = {self.crop!r} must be an even number of pixels from 16 to 64 "
                             "(or None for the whole stamp)")

    @property
    def log_flags(self) -> list[bool]:
        """One flag per label (`LABEL_COLUMNS`): learned as its logarithm."""
        return [name in self.log_labels for name in LABEL_COLUMNS]

    @classmethod
    def from_profile(cls, profile, **overrides) -> "TrainingConfig":
        """The profile's Xception settings (epochs, batch size, patience, learning rate,
        rows, architecture); keyword arguments replace fields."""
        from galaxies.runtime import profiles
        profile = profiles.get(profile)
        base = dict(epochs=profile.epochs, batch_size=profile.batch_size, patience=profile.patience)
        for name in ("learning_rate", "limit"):
            value = getattr(profile, f"xception_{name}", None)
            if value is not None:
                base[name] = value
        architecture = getattr(profile, "xception_model", None)
        if architecture and overrides.get("model", "xception") == "xception":
            base["model_kwargs"] = dict(architecture)
        return cls(**{**base, **overrides})


def check_budget(config) -> None:
    """The checks every training configuration shares: ``validation_fraction`` in (0, 1),
    ``epochs`` and ``batch_size`` at least 1, ``limit`` None or at least 2 rows."""
    if not 0 < config.validation_fraction < 1:
        raise InputError(f"validation_fraction = {config.validation_fraction} must be in (0, 1)")
    for name in ("epochs", "batch_size"):
        if getattr(config, name) < 1:
            raise InputError(f"{name} = {getattr(config, name)} must be at least 1")
    if config.limit is not None and config.limit < 2:
        raise InputError(f"limit = {config.limit} must be at least 2 (or None for all rows)")


def _reads_noisy(config: TrainingConfig, training: bool) -> bool:
    """Whether the model reads a set's noisy images: a network trained on fresh noise is
    trained on the noiseless ones (the noise is drawn on them) and predicts noisy ones."""
    return config.inputs == "noisy" and not (training and config.noise == "fresh")


def input_fields(config: TrainingConfig, images: np.ndarray | None = None,
                 training: bool = False) -> tuple[str, ...]:
    """The fields of a data set a model of ``config`` reads to predict (``training``: to be
    trained); no image field when ``images`` replace the set's own, e.g. denoised ones."""
    image = () if images is not None else ("img",) if _reads_noisy(config, training) else ("img_nonoise",)
    return image + (("psf_img",) if config.psf_channel else ())


def dataset_arrays(ds: files.Dataset, config: TrainingConfig, images: np.ndarray | None = None,
                   training: bool = False):
    """``(images, psf_img, conditioning)`` of a data set as a model of ``config`` reads them to
    predict (``training``: to be trained; with fresh noise, the noiseless images)."""
    if images is None:
        noisy = _reads_noisy(config, training)
        images = ds.img if noisy else ds.img_nonoise
        if images is None:
            raise InputError(f"{ds.path}: the {'noisy' if noisy else 'noiseless'} images were not loaded")
    elif len(images) != len(ds):
        raise InputError(f"images has {len(images)} rows but {ds.path} has {len(ds)}")
    psf = ds.psf_images() if config.psf_channel else None
    conditioning = {name: getattr(ds, name) for name in config.conditioning}
    return images, psf, conditioning
