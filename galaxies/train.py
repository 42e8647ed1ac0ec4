"""Training neural estimators, saving them with their scalers, and predicting with them.

A trained estimator is a directory (``models/<profile>/<estimator>_<dataset>/``) holding

* ``model.keras``: the Keras model (loads with plain ``keras.saving.load_model``),
* ``scalers.json``: the input and label standardization, fitted on the training split only,
* ``training.json``: what it was trained on and how (data set, recipe, sizes, epochs, time),
* ``history.csv``: the loss per epoch.

`SavedModel.load` brings one back; `SavedModel.predict` takes images in photo-electrons and
returns labels in their original units, so callers never see scaled values.

Labels are standardized per column. Images are standardized by one mean and standard deviation
per channel (channel 0: the image; an optional channel 1: the PSF image). Known per-galaxy
numbers (PSF FWHM, noise sigma) can enter as a second, standardized input (``conditioning``).
With ``uncertainty=True`` the network also predicts the log standard deviation of each label
and is trained with the Gaussian negative log-likelihood.
"""
from __future__ import annotations

import json
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
    """How to train one estimator. Sizes and epochs normally come from the profile."""

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

    def __post_init__(self):
        if self.inputs not in INPUTS:
            raise ValueError(f"inputs = {self.inputs!r}; choose from {INPUTS}")
        self.conditioning = tuple(self.conditioning)
        bad = [c for c in self.conditioning if c not in CONDITIONING]
        if bad:
            raise ValueError(f"conditioning {bad} not understood; choose from {CONDITIONING}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction = {self.validation_fraction} must be in (0, 1)")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} = {getattr(self, name)} must be at least 1")

    @classmethod
    def from_profile(cls, profile, **overrides) -> "TrainingConfig":
        from . import profiles
        profile = profiles.get(profile)
        base = dict(epochs=profile.epochs, batch_size=profile.batch_size, patience=profile.patience)
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


def dataset_arrays(ds: io.Dataset, config: TrainingConfig, images: np.ndarray | None = None):
    """``(images, psf_img, conditioning)`` of a data set as a model of ``config`` reads them."""
    if images is None:
        images = ds.img if config.inputs == "noisy" else ds.img_nonoise
        if images is None:
            raise ValueError(f"{ds.path}: the {config.inputs} images were not loaded")
    psf = ds.psf_images() if config.psf_channel else None
    conditioning = {name: getattr(ds, name) for name in config.conditioning}
    return images, psf, conditioning


# ------------------------------------------------------------------------------ losses

def gaussian_nll(y_true, y_pred):
    """Gaussian negative log-likelihood; ``y_pred`` holds 5 means then 5 log standard deviations."""
    import keras
    from keras import ops
    mean, log_std = y_pred[..., :5], ops.clip(y_pred[..., 5:], -7.0, 7.0)
    return ops.mean(0.5 * ops.square((y_true - mean) * ops.exp(-log_std)) + log_std, axis=-1)


def mean_mse(y_true, y_pred):
    """Mean squared error of the first five outputs (the labels) only."""
    from keras import ops
    return ops.mean(ops.square(y_true - y_pred[..., :5]), axis=-1)


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

    @classmethod
    def load(cls, path) -> "SavedModel":
        """Load a model directory written by `fit` (or `save`)."""
        import keras
        path = Path(path)
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

    def inputs(self, images, psf_fwhm=None, sigma=None, psf_img=None) -> list:
        """Scaled network inputs for raw images and known per-galaxy numbers."""
        config = self.config
        images = np.asarray(images, np.float32)
        if images.ndim == 2:
            images = images[None]
        if images.shape[1:] != (64, 64):
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

    def predict(self, images, psf_fwhm=None, sigma=None, psf_img=None, batch_size: int = 256):
        """``(pred, pred_std)`` in label units for (N, 64, 64) images in photo-electrons;
        ``pred_std`` is None unless the model was trained with uncertainty."""
        x = self.inputs(images, psf_fwhm, sigma, psf_img)
        out = np.asarray(self.model.predict(x if len(x) > 1 else x[0], batch_size=batch_size, verbose=0))
        labels = self.scalers["label"]
        pred = labels.inverse(out[:, :5])
        std = None
        if out.shape[1] == 10:
            std = np.exp(np.clip(out[:, 5:], -7.0, 7.0)) * np.asarray(labels.std)
        return pred, std

    def predict_dataset(self, ds: io.Dataset, images=None, batch_size: int = 256):
        """Predict every row of a loaded data set (its noisy images unless ``images`` is given)."""
        config = self.config
        if images is None:
            images = ds.img if config.inputs == "noisy" else ds.img_nonoise
        psf = ds.psf_images() if config.psf_channel else None
        return self.predict(images, ds.psf_fwhm, ds.sigma, psf, batch_size=batch_size)


def fit(config: TrainingConfig, data, out_dir, images: np.ndarray | None = None,
        name: str | None = None, estimator: str | None = None, verbose="auto") -> SavedModel:
    """Train an estimator on a data set and save it to ``out_dir``.

    Parameters:
        config:    what to train (model, inputs, sizes, epochs ...).
        data:      a data set path or a loaded `io.Dataset`.
        out_dir:   the model directory to write (replaced if it exists).
        images:    optional replacement for the set's images (e.g. denoised images).
        estimator: the estimator name written to predictions (default: ``config.model``).
    """
    import keras

    from .models import get_builder

    keras.utils.set_random_seed(config.seed)
    ds = data if isinstance(data, io.Dataset) else io.load_dataset(
        data, fields=("img",) if config.inputs == "noisy" else ("img_nonoise",), rows=config.limit)
    if config.psf_channel and ds.psf_img is None:
        ds = io.load_dataset(ds.path, rows=config.limit)
    raw_images, psf, conditioning = dataset_arrays(ds, config, images)
    n = len(raw_images)
    order = np.random.default_rng(config.seed).permutation(n)
    n_val = max(1, int(round(config.validation_fraction * n)))
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    if len(train) < 1:
        raise ValueError(f"{ds.path}: {n} rows leave nothing to train on")

    def take(rows, scalers):
        return model_inputs(raw_images[rows], None if psf is None else psf[rows],
                            {k: v[rows] for k, v in conditioning.items()}, scalers)

    x_train, scalers = take(train, None)
    x_val, _ = take(val, scalers)
    scalers["label"] = Standardizer.fit(ds.label[train], axis=0)
    y_train, y_val = scalers["label"].transform(ds.label[train]), scalers["label"].transform(ds.label[val])

    n_out = 10 if config.uncertainty else 5
    model = get_builder(config.model)(input_shape=x_train[0].shape[1:],
                                      n_conditioning=len(config.conditioning),
                                      n_outputs=n_out, **config.model_kwargs)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss=gaussian_nll if config.uncertainty else "mse",
                  metrics=[mean_mse] if config.uncertainty else None)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    history_path = out_dir.with_name(f".tmp-{os.getpid()}-{out_dir.name}.csv")
    callbacks = [
        keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=max(1, config.patience // 2)),
        keras.callbacks.CSVLogger(str(history_path)),
    ]
    start = time.perf_counter()
    history = model.fit(x_train if len(x_train) > 1 else x_train[0], y_train,
                        validation_data=(x_val if len(x_val) > 1 else x_val[0], y_val),
                        epochs=config.epochs, batch_size=config.batch_size, callbacks=callbacks,
                        verbose=verbose, shuffle=True)
    seconds = time.perf_counter() - start
    epochs_run = len(history.history["loss"])
    info = {
        "name": name or out_dir.name,
        "estimator": estimator or config.model,
        "config": asdict(config),
        "dataset": str(ds.path), "dataset_name": ds.name, "recipe": ds.recipe,
        "train_rows": int(len(train)), "validation_rows": int(len(val)),
        "epochs_run": epochs_run, "training_seconds": round(seconds, 2),
        "train_images_per_second": round(len(train) * epochs_run / seconds, 1),
        "best_val_loss": float(min(history.history["val_loss"])),
        "parameters": int(model.count_params()),
        "backend": keras.backend.backend(), "keras_version": keras.__version__,
        "trained": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    saved = SavedModel(model, scalers, info)
    try:
        saved.save(out_dir)
        shutil.move(history_path, out_dir / HISTORY_FILE)
    finally:
        history_path.unlink(missing_ok=True)
    return saved


def predict_file(model_dir, data_path, out_path, estimator: str | None = None,
                 trained_on: str | None = None, limit: int | None = None,
                 images: np.ndarray | None = None, batch_size: int = 256) -> Path:
    """Predict every row of a data set with a saved model and write the predictions file.

    ``seconds_per_image`` is the wall time of the prediction divided by the number of images,
    after one warm-up batch (which builds the compiled function) that is not counted.
    """
    model = model_dir if isinstance(model_dir, SavedModel) else SavedModel.load(model_dir)
    config = model.config
    fields = ("img",) if config.inputs == "noisy" else ("img_nonoise",)
    ds = io.load_dataset(data_path, fields=fields + (("psf_img",) if config.psf_channel else ()),
                         rows=limit)
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
