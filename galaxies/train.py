"""Training neural estimators, saving them with their scalers, and predicting with them.

A trained estimator is a directory (``models/<profile>/<estimator>_<dataset>/``) holding

* ``model.keras``: the Keras model (loads with plain ``keras.saving.load_model``),
* ``scalers.json``: the input and label standardization, fitted on the training split only,
* ``training.json``: what it was trained on and how (data set, recipe, sizes, epochs, time),
* ``history.csv``: the loss and learning rate per epoch.

`SavedModel.load` brings one back; `SavedModel.predict` takes images in photo-electrons and
returns labels in their original units, so callers never see scaled values.

Labels are standardized per column. Images are standardized by one mean and standard deviation
per channel (channel 0: the image; an optional channel 1: the PSF image). Known per-galaxy
numbers (PSF FWHM, noise sigma) can enter as a second, standardized input (``conditioning``).

Training shows each image in one of the eight orientations of the square pixel grid (rotations
by multiples of 90 degrees and mirror images), chosen at random per image and epoch, with the
shear transformed to match (see `dihedral`): the simulation has exactly this symmetry (round
PSF, white noise, the galaxy centred on the stamp's centre), so the training set is in effect
eight times larger at no cost. The learning rate warms up linearly for one epoch and then
follows a cosine decay to 1% of its peak (``schedule="cosine"``), or is halved on plateaus
(``schedule="plateau"``). Early stopping restores the weights of the best validation epoch.

With ``uncertainty=True`` the network also predicts the log standard deviation of each label.
By default (``uncertainty_loss="decoupled"``) the means are trained by the mean squared error
exactly as without uncertainty, and the log standard deviations by the Gaussian negative
log-likelihood of the residuals with the means held fixed (gradients of the means stopped), so
asking for an uncertainty does not trade away accuracy; ``uncertainty_loss="nll"`` trains
both by the plain Gaussian negative log-likelihood.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from . import io
from .simulate import LABEL_COLUMNS

MODEL_FILE, SCALERS_FILE, TRAINING_FILE, HISTORY_FILE = (
    "model.keras", "scalers.json", "training.json", "history.csv")
CONDITIONING = ("psf_fwhm", "sigma")  # scalar inputs a model may take
INPUTS = ("noisy", "noiseless")  # which images of a data set a model reads
SCHEDULES = ("cosine", "plateau")
UNCERTAINTY_LOSSES = ("decoupled", "nll")
N_LABELS = len(LABEL_COLUMNS)
_G1, _G2 = LABEL_COLUMNS.index("g1"), LABEL_COLUMNS.index("g2")


# ------------------------------------------------------------------------------- scalers

@dataclass
class Standardizer:
    """``(x - mean) / std`` per feature (last axis), JSON-serializable."""

    mean: list
    std: list

    @classmethod
    def fit(cls, x: np.ndarray, axis) -> "Standardizer":
        x = np.asarray(x, dtype=np.float64)
        mean, std = x.mean(axis=axis), x.std(axis=axis)
        std = np.where(std > 0, std, 1.0)  # a constant feature (e.g. fixed PSF) passes through
        return cls(np.atleast_1d(mean).tolist(), np.atleast_1d(std).tolist())

    def transform(self, x):
        return ((np.asarray(x, np.float32) - np.float32(self.mean)) / np.float32(self.std)).astype(np.float32)

    def inverse(self, y):
        return np.asarray(y, np.float64) * np.asarray(self.std) + np.asarray(self.mean)


# -------------------------------------------------------------------------------- config

@dataclass
class TrainingConfig:
    """How to train one estimator. Sizes and epochs normally come from the profile.

    Attributes:
        model:          builder name (`galaxies.models.BUILDERS`).
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
    model_kwargs: dict = field(default_factory=dict)
    schedule: str = "cosine"
    augment: bool = True
    uncertainty_loss: str = "decoupled"

    def __post_init__(self):
        if self.inputs not in INPUTS:
            raise ValueError(f"inputs = {self.inputs!r}; choose from {INPUTS}")
        self.conditioning = tuple(self.conditioning)
        bad = [c for c in self.conditioning if c not in CONDITIONING]
        if bad:
            raise ValueError(f"conditioning {bad} not understood; choose from {CONDITIONING}")
        if len(set(self.conditioning)) != len(self.conditioning):
            raise ValueError(f"conditioning {self.conditioning} names an input twice")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction = {self.validation_fraction} must be in (0, 1)")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} = {getattr(self, name)} must be at least 1")
        if self.patience < 0:
            raise ValueError(f"patience = {self.patience} must be at least 0")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate = {self.learning_rate} must be a positive number")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule = {self.schedule!r}; choose from {SCHEDULES}")
        if self.uncertainty_loss not in UNCERTAINTY_LOSSES:
            raise ValueError(f"uncertainty_loss = {self.uncertainty_loss!r}; choose from "
                             f"{UNCERTAINTY_LOSSES}")
        if self.limit is not None and self.limit < 2:
            raise ValueError(f"limit = {self.limit} must be at least 2 (or None for all rows)")

    @classmethod
    def from_profile(cls, profile, **overrides) -> "TrainingConfig":
        """The profile's Xception settings (epochs, batch size, patience, learning rate,
        rows, architecture); keyword arguments replace fields."""
        from . import profiles
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


# ---------------------------------------------------------------------------- arrays

def model_inputs(images: np.ndarray, psf_img=None, conditioning: dict | None = None,
                 scalers: dict | None = None) -> tuple[list, dict]:
    """Network inputs from raw arrays; fits scalers when ``scalers`` is None.

    ``images`` (N, 64, 64) in photo-electrons; ``psf_img`` (N, 64, 64) or None;
    ``conditioning`` maps names of `CONDITIONING` to (N,) arrays. Returns the list of inputs
    and the scalers used.
    """
    fit = scalers is None
    scalers = {} if fit else scalers
    channels = [np.asarray(images, np.float32)]
    if psf_img is not None:
        channels.append(np.broadcast_to(np.asarray(psf_img, np.float32), channels[0].shape))
    x = np.stack(channels, axis=-1)
    if fit:
        scalers["image"] = Standardizer.fit(x, axis=(0, 1, 2))
    inputs = [scalers["image"].transform(x)]
    if conditioning:
        c = np.stack([np.asarray(conditioning[k], np.float32) for k in conditioning], axis=-1)
        if fit:
            scalers["conditioning"] = Standardizer.fit(c, axis=0)
        inputs.append(scalers["conditioning"].transform(c))
    return inputs, scalers


def input_fields(config: TrainingConfig, images: np.ndarray | None = None) -> tuple[str, ...]:
    """The fields of a data set a model of ``config`` reads (no image field when ``images``
    replace the set's own, e.g. denoised ones)."""
    image = () if images is not None else ("img",) if config.inputs == "noisy" else ("img_nonoise",)
    return image + (("psf_img",) if config.psf_channel else ())


def dataset_arrays(ds: io.Dataset, config: TrainingConfig, images: np.ndarray | None = None):
    """``(images, psf_img, conditioning)`` of a data set as a model of ``config`` reads them."""
    if images is None:
        images = ds.img if config.inputs == "noisy" else ds.img_nonoise
        if images is None:
            raise ValueError(f"{ds.path}: the {config.inputs} images were not loaded")
    elif len(images) != len(ds):
        raise ValueError(f"images has {len(images)} rows but {ds.path} has {len(ds)}")
    psf = ds.psf_images() if config.psf_channel else None
    conditioning = {name: getattr(ds, name) for name in config.conditioning}
    return images, psf, conditioning


def split_rows(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, validation)`` sorted row numbers: a seeded permutation whose first
    ``round(fraction * n)`` rows (at least one) are held out for validation."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(validation_fraction * n)))
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    if len(train) < 1:
        raise ValueError(f"{n} rows leave nothing to train on")
    return train, val


# ------------------------------------------------------------------------ augmentation

def dihedral(images: np.ndarray, labels: np.ndarray, element: int):
    """One of the 8 symmetries of the square pixel grid applied to images and labels.

    ``images`` (N, H, W[, C]) with the galaxy centred on the stamp (GalSim draws it at the
    true centre, between the four central pixels of an even-sized stamp, so the symmetries map
    the centre onto itself); ``labels`` (N, 5) in original units. ``element`` in 0..7: bit 0
    transposes (swaps x and y), bit 1 mirrors the rows, bit 2 mirrors the columns. The shear
    is a spin-2 quantity: swapping x and y negates g1 (elongation along x becomes along y) and
    keeps g2; each mirror negates g2 and keeps g1. Flux, Sérsic index and radius are unchanged.
    Returns new arrays.
    """
    if not 0 <= element < 8:
        raise ValueError(f"element = {element} must be in 0..7")
    images = np.asarray(images)
    if element & 1:
        images = np.swapaxes(images, 1, 2)
    if element & 2:
        images = images[:, ::-1]
    if element & 4:
        images = images[:, :, ::-1]
    labels = np.array(labels, copy=True)
    if element & 1:
        labels[..., _G1] *= -1
    if (element >> 1 & 1) ^ (element >> 2 & 1):
        labels[..., _G2] *= -1
    return np.ascontiguousarray(images), labels


def training_batches(images: np.ndarray, labels: np.ndarray, label_scaler: Standardizer,
                     batch_size: int, seed: int, augment: bool, extras: tuple = (),
                     arrange=None):
    """A Keras ``PyDataset`` of shuffled training batches of ``batch_size`` rows (fewer only
    when the set is smaller).

    With ``augment``, each galaxy appears in one of the eight orientations of the pixel grid:
    every channel of ``images`` (N, H, W, C) turned alike, its shear labels transformed to
    match (`dihedral`); labels are then standardized. ``extras`` are further per-row inputs
    passed through unchanged. ``arrange(images, extras, labels) -> (inputs, targets)`` shapes a
    batch for the model (default: the images, then the extras, as inputs; the labels as target).
    """
    import keras

    def default_arrange(batch, more, y):
        inputs = (batch,) + more
        return (inputs if len(inputs) > 1 else inputs[0]), y

    arrange = arrange or default_arrange

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = 0
            self.order = np.random.default_rng([seed, 0]).permutation(len(labels))

        def __len__(self):
            # full batches only (the rest is reshuffled into the next epochs): a batch of
            # another size would make TensorFlow trace the training step a second time,
            # which costs seconds of CPU per model
            return max(1, len(labels) // batch_size)

        def __getitem__(self, k):
            rows = np.sort(self.order[k * batch_size:(k + 1) * batch_size])
            batch, y = images[rows], labels[rows]
            if augment:
                which = np.random.default_rng([seed, self.epoch, k]).integers(0, 8, len(rows))
                for element in np.unique(which):
                    sel = which == element
                    batch[sel], y[sel] = dihedral(batch[sel], y[sel], int(element))
            return arrange(batch, tuple(a[rows] for a in extras), label_scaler.transform(y))

        def on_epoch_end(self):
            self.epoch += 1
            self.order = np.random.default_rng([seed, self.epoch]).permutation(len(labels))

    return Batches()


# ------------------------------------------------------------------------------ losses

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


# --------------------------------------------------------------------------- the model

class SavedModel:
    """A trained estimator with its scalers: predicts labels in original units."""

    def __init__(self, model, scalers: dict, info: dict, path: Path | None = None):
        self.model, self.scalers, self.info, self.path = model, scalers, info, path

    @property
    def config(self) -> TrainingConfig:
        return TrainingConfig(**self.info["config"])

    @property
    def name(self) -> str:
        return self.info.get("name") or (self.path.name if self.path else "model")

    @property
    def estimator(self) -> str:
        return self.info.get("estimator", self.config.model)

    @property
    def uncertainty(self) -> bool:
        """Whether the model predicts a standard deviation per label."""
        return int(self.model.outputs[0].shape[-1]) == 2 * N_LABELS

    @classmethod
    def load(cls, path) -> "SavedModel":
        """Load a model directory written by `fit` (or `save`)."""
        import keras
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such model directory")
        missing = [f for f in (MODEL_FILE, SCALERS_FILE, TRAINING_FILE) if not (path / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{path} is not a saved model: missing {', '.join(missing)}")
        model = keras.saving.load_model(path / MODEL_FILE, compile=False)
        scalers = {k: Standardizer(**v) for k, v in json.loads((path / SCALERS_FILE).read_text()).items()}
        info = json.loads((path / TRAINING_FILE).read_text())
        return cls(model, scalers, info, path)

    def save(self, path) -> Path:
        """Write the model directory atomically (a temporary folder renamed when complete)."""
        path = Path(path)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            self.model.save(tmp / MODEL_FILE)
            (tmp / SCALERS_FILE).write_text(json.dumps({k: asdict(v) for k, v in self.scalers.items()}, indent=1))
            (tmp / TRAINING_FILE).write_text(json.dumps(self.info, indent=1, default=str))
            if self.path is not None and (self.path / HISTORY_FILE).is_file():
                shutil.copy(self.path / HISTORY_FILE, tmp / HISTORY_FILE)
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.path = path
        return path

    def history(self):
        """The training history (``history.csv``) as a pandas DataFrame, one row per epoch."""
        import pandas as pd
        if self.path is None or not (self.path / HISTORY_FILE).is_file():
            raise FileNotFoundError(f"{self.path}: no {HISTORY_FILE} (the model was not trained by fit)")
        return pd.read_csv(self.path / HISTORY_FILE)

    def inputs(self, images, psf_fwhm=None, sigma=None, psf_img=None) -> list:
        """Scaled network inputs for raw images and known per-galaxy numbers."""
        config = self.config
        images = np.asarray(images, np.float32)
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3 or images.shape[1:] != (64, 64):
            raise ValueError(f"images have shape {images.shape}, expected (N, 64, 64)")
        known = {"psf_fwhm": psf_fwhm, "sigma": sigma}
        conditioning = {}
        for name in config.conditioning:
            if known[name] is None:
                raise ValueError(f"model {self.name} needs {name} for each image")
            conditioning[name] = np.broadcast_to(np.asarray(known[name], np.float32), (len(images),))
        if config.psf_channel and psf_img is None:
            raise ValueError(f"model {self.name} needs the PSF image (psf_img)")
        x, _ = model_inputs(images, psf_img if config.psf_channel else None, conditioning, self.scalers)
        return x

    def forward(self, x: list, batch_size: int = 256) -> np.ndarray:
        """Raw network outputs for scaled inputs, batch by batch.

        Calls the model's compiled predict function directly (``predict_on_batch``):
        ``model.predict`` rebuilds a data pipeline and its callbacks on every call, which
        costs more than the network itself for a few images.
        """
        n = len(x[0])
        out = []
        for start in range(0, n, batch_size):
            chunk = [a[start:start + batch_size] for a in x]
            rows = len(chunk[0])
            if rows < batch_size < n:
                # pad the last batch: a new batch shape would be traced again (~0.5 s)
                chunk = [np.concatenate([a, np.zeros((batch_size - rows,) + a.shape[1:], a.dtype)])
                         for a in chunk]
            result = self.model.predict_on_batch(chunk if len(chunk) > 1 else chunk[0])
            out.append(np.asarray(result)[:rows])
        if not out:
            return np.zeros((0, int(self.model.outputs[0].shape[-1])), np.float32)
        return np.concatenate(out)

    def predict(self, images, psf_fwhm=None, sigma=None, psf_img=None, batch_size: int = 256):
        """``(pred, pred_std)`` in label units for (N, 64, 64) images in photo-electrons;
        ``pred_std`` is None unless the model was trained with uncertainty."""
        out = self.forward(self.inputs(images, psf_fwhm, sigma, psf_img), batch_size)
        labels = self.scalers["label"]
        pred = labels.inverse(out[:, :N_LABELS])
        std = None
        if out.shape[1] == 2 * N_LABELS:
            std = np.exp(np.clip(out[:, N_LABELS:], -7.0, 7.0)) * np.asarray(labels.std)
        return pred, std

    def predict_dataset(self, ds: io.Dataset, images=None, batch_size: int = 256):
        """Predict every row of a loaded data set (its noisy images unless ``images`` is given)."""
        images, psf, _ = dataset_arrays(ds, self.config, images)
        return self.predict(images, ds.psf_fwhm, ds.sigma, psf, batch_size=batch_size)


class _LearningRateLog:
    """Adds the optimizer's current learning rate to each epoch's logs (for history.csv)."""

    @staticmethod
    def callback():
        import keras

        class LearningRateLog(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if logs is not None:
                    lr = self.model.optimizer.learning_rate
                    logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))
        return LearningRateLog()


def learning_rate(config: TrainingConfig, steps: int):
    """The learning rate of ``config.schedule``: ``cosine`` (one epoch of linear warm-up from
    a tenth of the peak, then a cosine decay to 1% over the remaining ``steps`` per epoch), or
    a constant (``plateau``: `RecordedFit` halves it when the validation loss stalls)."""
    import keras
    if config.schedule != "cosine":
        return config.learning_rate
    warmup = steps if config.epochs > 1 else 0
    return keras.optimizers.schedules.CosineDecay(
        config.learning_rate / 10 if warmup else config.learning_rate,
        decay_steps=max(1, steps * config.epochs - warmup), alpha=0.01,
        warmup_target=config.learning_rate if warmup else None, warmup_steps=warmup)


class RecordedFit:
    """What every trained network of the project records, whatever it learns.

    Gives the callbacks (early stopping that restores the best weights, an optional
    learning-rate plateau schedule, the learning rate and every loss per epoch as CSV), times
    ``keras.Model.fit``, builds the ``training.json`` record, and saves the model directory
    with its ``history.csv``. Used by `fit`, the autoencoder and the denoisers.

    ::

        recorded = RecordedFit(out_dir, patience, plateau=False)
        history = recorded.fit(model, batches, validation_data=..., epochs=...)
        info = recorded.record(model, config, ds, train, val, name=..., estimator=...)
        recorded.save(SavedModel(model, scalers, info))
    """

    def __init__(self, out_dir, patience: int, plateau: bool = False):
        import keras
        self.out_dir = Path(out_dir)
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.history_csv = self.out_dir.with_name(f".tmp-{os.getpid()}-{self.out_dir.name}.csv")
        self.callbacks = [keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)]
        if plateau:
            self.callbacks.append(keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=max(1, patience // 2)))
        self.callbacks += [_LearningRateLog.callback(), keras.callbacks.CSVLogger(str(self.history_csv))]
        self.history, self.seconds, self.images_per_epoch = None, None, None

    def fit(self, model, x, y=None, images_per_epoch: int | None = None, **kwargs):
        """``model.fit`` with the callbacks, timed; the temporary CSV is removed on failure.
        ``images_per_epoch`` (default: the training rows) gives the training throughput."""
        start = time.perf_counter()
        try:
            self.history = model.fit(x, y, callbacks=self.callbacks, **kwargs).history
        except BaseException:
            self.history_csv.unlink(missing_ok=True)
            raise
        self.seconds = time.perf_counter() - start
        self.images_per_epoch = images_per_epoch
        return self.history

    def record(self, model, config, ds: io.Dataset, train, val, **extra) -> dict:
        """The ``training.json`` record: what was trained on, how, how long and how well."""
        import keras
        losses = self.history["val_loss"]
        epochs_run = len(self.history["loss"])
        images = self.images_per_epoch or len(train)
        return {
            "name": self.out_dir.name, "config": asdict(config),
            "dataset": str(ds.path), "dataset_name": ds.name, "recipe": ds.recipe,
            "train_rows": int(len(train)), "validation_rows": int(len(val)),
            "epochs_run": epochs_run, "training_seconds": round(self.seconds, 2),
            "train_images_per_second": round(images * epochs_run / self.seconds, 1),
            "best_val_loss": float(min(losses)), "best_epoch": int(np.argmin(losses)) + 1,
            "parameters": int(model.count_params()),
            "backend": keras.backend.backend(), "keras_version": keras.__version__,
            "trained": time.strftime("%Y-%m-%d %H:%M:%S"),
            **{k: v for k, v in extra.items() if v is not None},
        }

    def save(self, saveable):
        """Save the model directory (``saveable.save(out_dir)``) and move the history into it."""
        try:
            saveable.save(self.out_dir)
            shutil.move(self.history_csv, self.out_dir / HISTORY_FILE)
        finally:
            self.history_csv.unlink(missing_ok=True)
        return saveable


def fit(config: TrainingConfig, data, out_dir, images: np.ndarray | None = None,
        name: str | None = None, estimator: str | None = None, verbose="auto") -> SavedModel:
    """Train an estimator on a data set and save it to ``out_dir``.

    Parameters:
        config:    what to train (model, inputs, sizes, epochs ...).
        data:      a data set path or a loaded `io.Dataset`.
        out_dir:   the model directory to write (replaced if it exists).
        images:    optional replacement for the set's images (e.g. denoised images), one per row.
        name:      the model's name (default: the directory's).
        estimator: the estimator name written to predictions (default: ``config.model``).
        verbose:   Keras' ``verbose``: "auto", 0, 1 (progress bar) or 2 (a line an epoch).

    The validation split, scalers, augmentation and schedule are described in the module's
    docstring. Returns the saved model.
    """
    import keras

    from .models import get_builder

    keras.utils.set_random_seed(config.seed)
    if isinstance(data, io.Dataset):
        ds = data if config.limit is None else replace(data, **_rows(data, slice(0, config.limit)))
    else:
        ds = io.load_dataset(data, fields=input_fields(config, images), rows=config.limit)
    if images is not None and config.limit is not None:
        images = images[:config.limit]
    if config.psf_channel and ds.psf_img is None:
        ds = io.load_dataset(ds.path, rows=config.limit)
    raw_images, psf, conditioning = dataset_arrays(ds, config, images)
    train, val = split_rows(len(raw_images), config.validation_fraction, config.seed)

    def take(rows, scalers):
        return model_inputs(raw_images[rows], None if psf is None else psf[rows],
                            {k: v[rows] for k, v in conditioning.items()}, scalers)

    x_train, scalers = take(train, None)
    x_val, _ = take(val, scalers)
    scalers["label"] = Standardizer.fit(ds.label[train], axis=0)
    y_val = scalers["label"].transform(ds.label[val])
    batches = training_batches(x_train[0], np.asarray(ds.label[train], np.float32), scalers["label"],
                               config.batch_size, config.seed, config.augment, extras=tuple(x_train[1:]))

    n_out = 2 * N_LABELS if config.uncertainty else N_LABELS
    try:
        model = get_builder(config.model)(input_shape=x_train[0].shape[1:],
                                          n_conditioning=len(config.conditioning),
                                          n_outputs=n_out, **config.model_kwargs)
    except TypeError as err:  # an unknown size keyword: a user error, not a crash
        raise ValueError(f"model {config.model!r} with sizes {config.model_kwargs}: {err}") from None
    steps = len(batches)
    loss = ({"decoupled": decoupled_nll, "nll": gaussian_nll}[config.uncertainty_loss]
            if config.uncertainty else "mse")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate(config, steps)), loss=loss,
                  metrics=[mean_mse] if config.uncertainty else None)
    recorded = RecordedFit(out_dir, config.patience, plateau=config.schedule == "plateau")
    recorded.fit(model, batches, validation_data=(x_val if len(x_val) > 1 else x_val[0], y_val),
                 validation_batch_size=_even_batch(len(val)), epochs=config.epochs,
                 verbose=verbose, images_per_epoch=min(len(train), steps * config.batch_size))
    info = recorded.record(model, config, ds, train, val, name=name,
                           estimator=estimator or config.model)
    return recorded.save(SavedModel(model, scalers, info))


def _even_batch(n: int, largest: int = 1024) -> int:
    """A batch size of at most ``largest`` that splits ``n`` rows into near-equal batches
    (one batch for up to ``largest`` rows, so the validation step is traced once)."""
    return math.ceil(n / math.ceil(n / largest))


def predict_file(model_dir, data_path, out_path, estimator: str | None = None,
                 trained_on: str | None = None, limit: int | None = None,
                 images: np.ndarray | None = None, batch_size: int = 256) -> Path:
    """Predict every row of a data set with a saved model and write the predictions file.

    ``model_dir`` is a model directory or a loaded `SavedModel`; ``data_path`` any data set
    that follows the contract (a file that does not raises `galaxies.io.FileFormatError`
    naming the problem). ``images`` replaces the set's images (e.g. denoised ones).
    ``seconds_per_image`` is the wall time of the prediction (scaling included) divided by
    the number of images, after one warm-up batch (which builds the compiled function) that
    is not counted.
    """
    model = model_dir if isinstance(model_dir, SavedModel) else SavedModel.load(model_dir)
    ds = io.load_dataset(data_path, fields=input_fields(model.config, images), rows=limit)
    if images is not None and len(images) != len(ds):
        raise ValueError(f"images has {len(images)} rows but {ds.path} has {len(ds)}")
    if len(ds) == 0:
        raise ValueError(f"{ds.path}: no rows to predict")
    warm = replace(ds, **_rows(ds, slice(0, min(len(ds), batch_size))))
    model.predict_dataset(warm, images=None if images is None else images[:batch_size],
                          batch_size=batch_size)
    start = time.perf_counter()
    pred, std = model.predict_dataset(ds, images=images, batch_size=batch_size)
    seconds = (time.perf_counter() - start) / len(ds)
    return io.write_predictions(
        out_path, pred, ds.rows, estimator=estimator or model.estimator, dataset=ds.name,
        seconds_per_image=seconds, pred_std=std,
        attrs={"model": str(model.path), "trained_on": trained_on or model.info.get("dataset_name", ""),
               "batch_size": batch_size})


def _rows(ds: io.Dataset, sel) -> dict:
    """The per-row arrays of a data set restricted to ``sel`` (for a warm-up batch)."""
    out = {}
    for name in ("img", "img_nonoise", "label", "psf_fwhm", "sigma", "snr"):
        value = getattr(ds, name)
        out[name] = None if value is None else value[sel]
    if ds.psf_img is not None and len(ds.psf_img) > 1:
        out["psf_img"] = ds.psf_img[sel]
    out["index"] = ds.rows[sel]
    return out
