"""The image-to-image denoisers (EDSR, RDN): how one is trained, saved and applied.

A denoiser maps a noisy image to an estimate of the noiseless one. It trains on the
fresh-noise stream (``noise="fresh"``, the default; `galaxies.networks.training.noise`): at every showing
the input is a new noisy draw (Poisson counts plus the row's own read noise) of a training
galaxy's noiseless image, and the target that noiseless image, both in the same one of the
eight orientations of the pixel grid (``augment``); ``noise="fixed"`` trains on the set's noisy
images (the original study's way). Image scaling: one mean and one standard deviation, fitted on noisy
training images (the set's, or one fresh draw), are applied to both the noisy input and the
noiseless target, so the network's output maps back to photo-electrons with the same affine
map. Its directory has the layout of `galaxies.networks.training.SavedModel` (scaler
``image``) with ``task: "denoise"`` in ``training.json``. The builders are
`galaxies.networks.models.denoisers`; the experiment (training on v1a, the two-stage estimators) is
`galaxies.evaluation.experiments.denoise`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from galaxies.conventions import IMAGE_SIZE
from galaxies.runtime.console import show_progress
from galaxies.runtime.errors import InputError
from galaxies.runtime.profiles import TESTSETS
from galaxies.storage import files

from .config import NOISE, check_budget
from .loop import RecordedFit, even_batch, image_pairs, pair_fields, split_pair
from .saved import SavedModel, check_model_dir, predict_in_batches
from .scaling import Standardizer
from .stream import split_rows, training_batches

__all__ = ["DenoiserConfig", "Denoiser", "stream", "fit", "EVALUATION_SETS"]

#: sets the estimators are evaluated on: a denoiser never trains on them
EVALUATION_SETS = TESTSETS
#: images a batch when denoising (`Denoiser.denoise`; `galaxies.evaluation.estimators.TwoStage` reads blocks of it)
DENOISE_BATCH = 64


@dataclass
class DenoiserConfig:
    """How to train one denoiser. Sizes and epochs normally come from the profile
    (`from_profile`)."""

    model: str = "edsr"
    model_kwargs: dict = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 32
    patience: int = 5
    learning_rate: float = 1e-3
    loss: str = "mae"  # EDSR and RDN are trained with the L1 loss
    validation_fraction: float = 0.1
    seed: int = 0
    limit: int | None = None  # use only the first rows of the training set
    noise: str = "fresh"  # "fresh": new noise at every showing; "fixed": the set's noisy images
    augment: bool = True  # show each pair in one of the eight orientations of the pixel grid

    def __post_init__(self):
        from ..models.denoisers import BUILDERS as builders
        if self.model not in builders:
            raise InputError(f"model = {self.model!r}; choose from {', '.join(builders)}")
        if self.loss not in ("mae", "mse"):
            raise InputError(f"loss = {self.loss!r}; choose 'mae' or 'mse'")
        if self.noise not in NOISE:
            raise InputError(f"noise = {self.noise!r}; choose from {NOISE}")
        check_budget(self)

    @classmethod
    def from_profile(cls, profile, model: str = "edsr", **overrides) -> "DenoiserConfig":
        """The configuration of denoiser ``model`` under ``profile`` (its ``denoiser_*``
        fields), with keyword ``overrides``."""
        from galaxies.runtime import profiles
        profile = profiles.get(profile)
        if model not in profile.denoiser_sizes:
            raise InputError(f"profile {profile.name} has no sizes for denoiser {model!r}; "
                             f"it has {', '.join(profile.denoiser_sizes)}")
        base = dict(model=model, model_kwargs=dict(profile.denoiser_sizes[model]),
                    epochs=profile.denoiser_epochs, batch_size=profile.denoiser_batch_size,
                    patience=profile.denoiser_patience, limit=profile.denoiser_limit)
        return cls(**{**base, **overrides})


class Denoiser:
    """A trained denoiser with its image scaling: maps noisy images in photo-electrons to
    denoised images in photo-electrons."""

    def __init__(self, saved: SavedModel):
        self.saved = saved  # the directory format and the record: a SavedModel's, scaler "image"

    model = property(lambda self: self.saved.model)
    info = property(lambda self: self.saved.info)
    path = property(lambda self: self.saved.path)
    scaler = property(lambda self: self.saved.scalers["image"])

    @property
    def name(self) -> str:
        return self.info.get("name") or (self.path.name if self.path else "denoiser")

    @property
    def kind(self) -> str:
        """``edsr`` or ``rdn``."""
        return self.info["config"]["model"]

    @property
    def config(self) -> DenoiserConfig:
        # a record without these fields predates the stream: fixed noisy images, unturned
        return DenoiserConfig(**{"noise": "fixed", "augment": False, **self.info["config"]})

    @classmethod
    def load(cls, path) -> "Denoiser":
        """Load a denoiser directory written by `fit`."""
        saved = SavedModel.load(path)
        if saved.info.get("task") != "denoise":
            raise InputError(f"{path} holds an estimator, not a denoiser (task "
                             f"{saved.info.get('task', 'estimate')!r})")
        return cls(saved)

    def save(self, path, force: bool = True) -> Path:
        """Write the model directory atomically (the format of `galaxies.networks.training.SavedModel`)."""
        return self.saved.save(path, force=force)

    def summary(self) -> "pd.Series":
        """How it was trained: parameters, rows, epochs, seconds, images per second, loss."""
        import pandas as pd
        keys = ("parameters", "trainset", "train_rows", "validation_rows", "epochs_run",
                "training_seconds", "train_images_per_second", "best_val_loss")
        return pd.Series({k: self.info.get(k) for k in keys}, name=self.name)

    def history(self):
        """The loss per epoch (``history.csv``) as a DataFrame."""
        return self.saved.history()

    def denoise(self, images, batch_size: int = DENOISE_BATCH, progress: bool = True) -> np.ndarray:
        """Denoise (N, 64, 64) images in photo-electrons; returns (N, 64, 64) float32.

        Runs in batches of ``batch_size`` (the last one padded, so the compiled function is
        traced once) with a tqdm progress bar.
        """
        from tqdm import tqdm

        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise InputError(f"images have shape {images.shape}, expected (N, {IMAGE_SIZE}, {IMAGE_SIZE})")
        if batch_size < 1:
            raise InputError(f"batch_size = {batch_size} must be at least 1")
        bar = tqdm(total=len(images), desc=f"denoise ({self.name})", unit="image",
                   disable=not show_progress(progress) or len(images) <= batch_size)

        def predict(batch):
            bar.update(min(len(batch), bar.total - bar.n))
            return self.model.predict_on_batch(batch)

        with bar:
            y = predict_in_batches(predict, [self.scaler.transform(images[..., None])], batch_size)
        return self.scaler.inverse(y)[..., 0].astype(np.float32)

    def throughput(self, images, batch_size: int = 64, repeats: int = 1) -> float:
        """Images denoised per second (after a warm-up batch that builds the compiled
        function), the best of ``repeats`` passes over ``images``."""
        images = np.asarray(images, dtype=np.float32)
        self.denoise(images[:batch_size], batch_size=batch_size, progress=False)
        best = np.inf
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            self.denoise(images, batch_size=batch_size, progress=False)
            best = min(best, time.perf_counter() - start)
        return len(images) / best


def stream(config: DenoiserConfig, ds: files.Dataset, train, val):
    """``(batches, (x_val, y_val), scaler)``: the training batches of (noisy input, noiseless
    target) pairs on the rows ``train`` of a loaded set (`galaxies.networks.training.image_pairs`, fresh
    noise with ``config.noise == "fresh"``, both images of a pair oriented alike), the fixed
    validation pairs and the image scaler of both."""
    images, noise, validation, scalers = image_pairs(ds, train, val, config.noise, config.seed)
    batches = training_batches(images, np.asarray(ds.label[train], np.float32),
                               Standardizer.fit(ds.label[train], axis=0), config.batch_size,
                               config.seed, config.augment,
                               arrange=lambda pair, extras, labels: split_pair(pair), noise=noise)
    return batches, validation, scalers["image"]


def fit(config: DenoiserConfig, data, out_dir=None, verbose="auto", force: bool = True) -> Denoiser:
    """Train a denoiser to map the noisy images of a data set to its noiseless ones and save
    it to ``out_dir`` when given (an existing model replaced only with ``force``).

    ``data`` is a data set path or a loaded `files.Dataset` holding ``img_nonoise`` (and
    ``img`` for fixed noise). A set the estimators are evaluated on (`EVALUATION_SETS`) is
    refused. A random ``validation_fraction`` of the rows (from ``config.seed``) is held out
    for early stopping and the learning-rate schedule; with fresh noise its inputs are one
    fixed, seeded draw. The stream (`stream`) shows full batches only.
    """
    import keras

    from ..models.denoisers import get_denoiser

    if out_dir is not None:
        check_model_dir(out_dir, force)
    ds = data if isinstance(data, files.Dataset) else files.load_dataset(
        data, fields=pair_fields(config.noise), rows=config.limit)
    if ds.name in EVALUATION_SETS:
        raise InputError(f"{ds.path}: the estimators are evaluated on {ds.name!r}; train the "
                         f"denoiser on a separate set")
    pair_fields(config.noise, ds, "a denoiser")
    keras.utils.set_random_seed(config.seed)
    train, val = split_rows(len(ds), config.validation_fraction, config.seed)
    batches, validation, scaler = stream(config, ds, train, val)

    model = get_denoiser(config.model)(input_shape=(IMAGE_SIZE, IMAGE_SIZE, 1), **config.model_kwargs)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=config.loss,
                  metrics=["mse"] if config.loss != "mse" else None)
    recorded = RecordedFit(config.patience, plateau=True)
    recorded.fit(model, batches, validation_data=validation, epochs=config.epochs,
                 validation_batch_size=even_batch(len(val), config.batch_size), verbose=verbose,
                 images_per_epoch=min(len(train), len(batches) * config.batch_size))
    name = Path(out_dir).name if out_dir is not None else None
    info = recorded.record(model, config, ds, train, val, name=name, task="denoise", estimator=config.model)
    trained = Denoiser(SavedModel(model, {"image": scaler}, info, history=recorded.history))
    if out_dir is not None:
        trained.save(out_dir, force=force)
    return trained
