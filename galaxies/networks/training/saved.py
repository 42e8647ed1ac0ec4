"""The model directory: a trained network with its scalers and its record, and predicting with it.

A trained estimator is a directory ``models/<profile>/<estimator>_<trainset>/`` holding

* ``model.keras``: the Keras model (loads with plain ``keras.saving.load_model``),
* ``scalers.json``: the input and label standardization, fitted on the training split only,
* ``training.json``: what it was trained on and how (training set, recipe, sizes, epochs, time),
* ``history.csv``: the losses and learning rate per epoch.

`SavedModel.load` brings one back; `SavedModel.predict` takes images in photo-electrons and
returns labels in their original units, so callers never see scaled values. Directories are
written through `galaxies.storage.atomic.atomic_dir`: whole or absent.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from galaxies.conventions import IMAGE_SIZE, LABEL_COLUMNS
from galaxies.runtime.errors import FileFormatError, InputError
from galaxies.storage import atomic, files

from .config import TrainingConfig, dataset_arrays
from .scaling import Standardizer, model_inputs

__all__ = ["MODEL_FILE", "SCALERS_FILE", "TRAINING_FILE", "HISTORY_FILE", "SavedModel",
           "read_info", "is_model_dir", "check_model_dir", "predict_in_batches", "history_frame"]

MODEL_FILE, SCALERS_FILE, TRAINING_FILE, HISTORY_FILE = (
    "model.keras", "scalers.json", "training.json", "history.csv")
N_LABELS = len(LABEL_COLUMNS)


def read_info(model_dir) -> dict:
    """The ``training.json`` record of a model directory ({} when there is none, or when it is
    not a JSON object: listings skip such a folder; `SavedModel.load` refuses it)."""
    try:
        info = json.loads((Path(model_dir) / TRAINING_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _record(file: Path) -> dict:
    """A JSON object of a model directory, or `FileFormatError` naming the file."""
    try:
        value = json.loads(file.read_text())
    except (UnicodeDecodeError, ValueError) as err:
        raise FileFormatError(f"{file}: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise FileFormatError(f"{file}: expected a JSON object, found a {type(value).__name__}")
    return value


def is_model_dir(path) -> bool:
    """Whether ``path`` is a folder written by `SavedModel.save` (it has a ``training.json``)."""
    return (Path(path) / TRAINING_FILE).is_file()


def check_model_dir(path, force: bool = False) -> Path:
    """Refuse to write a model to ``path`` when something is there, unless ``force`` and it is a
    model directory (so ``--force`` can never erase a folder of data): `galaxies.storage.atomic`'s rule
    for outputs, with ``training.json`` as the mark of a model folder."""
    return atomic.check_writable(path, force, directory=True, marker=TRAINING_FILE)


def history_frame(history: dict):
    """A Keras history (metric -> per-epoch values) as the ``history.csv`` table: ``epoch``,
    then the metrics in alphabetical order (the layout of Keras' CSVLogger)."""
    import pandas as pd
    frame = pd.DataFrame({k: history[k] for k in sorted(history)})
    frame.insert(0, "epoch", np.arange(len(frame)))
    return frame


def predict_in_batches(predict, x: list, batch_size: int, n_outputs: int | None = None) -> np.ndarray:
    """``predict(batch)`` over the rows of the arrays ``x`` (model inputs), ``batch_size`` rows
    at a time, the last batch padded with zeros: a new batch shape would make TensorFlow trace
    the compiled function again. ``n_outputs`` shapes the result of zero rows."""
    n = len(x[0])
    out = []
    for start in range(0, n, batch_size):
        chunk = [a[start:start + batch_size] for a in x]
        rows = len(chunk[0])
        if rows < batch_size < n:
            chunk = [np.concatenate([a, np.zeros((batch_size - rows,) + a.shape[1:], a.dtype)])
                     for a in chunk]
        out.append(np.asarray(predict(chunk if len(chunk) > 1 else chunk[0]))[:rows])
    if not out:
        return np.zeros((0, n_outputs or 0), np.float32)
    return np.concatenate(out)


class SavedModel:
    """A trained estimator with its scalers: predicts labels in original units.

    ``history`` (metric -> per-epoch values) is kept in memory after training and written to
    ``history.csv`` by `save`; a loaded model reads it from there.
    """

    def __init__(self, model, scalers: dict, info: dict, path: Path | None = None,
                 history: dict | None = None):
        self.model, self.scalers, self.info, self.path = model, scalers, info, path
        self._history = history

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
    def trainset(self) -> str:
        return self.info.get("trainset", "")

    @property
    def uncertainty(self) -> bool:
        """Whether the model predicts a standard deviation per label."""
        return int(self.model.outputs[0].shape[-1]) == 2 * N_LABELS

    @classmethod
    def load(cls, path) -> "SavedModel":
        """Load a model directory written by `save`."""
        import keras
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such model directory")
        missing = [f for f in (MODEL_FILE, SCALERS_FILE, TRAINING_FILE) if not (path / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{path} is not a saved model: missing {', '.join(missing)}")
        info = _record(path / TRAINING_FILE)
        if not isinstance(info.get("config"), dict):
            raise FileFormatError(f"{path / TRAINING_FILE}: no 'config' object (the training "
                                  f"configuration); is {path} a model directory?")
        try:
            scalers = {k: Standardizer(**v) for k, v in _record(path / SCALERS_FILE).items()}
        except TypeError as err:
            raise FileFormatError(f"{path / SCALERS_FILE}: not the scalers of a model ({err})") from None
        try:
            model = keras.saving.load_model(path / MODEL_FILE, compile=False)
        except Exception as err:  # noqa: BLE001 - a damaged archive fails in many ways in Keras
            first = (str(err).splitlines() or [""])[0][:200]
            raise FileFormatError(f"{path / MODEL_FILE}: not a Keras model this version can load "
                                  f"({type(err).__name__}: {first})") from None
        return cls(model, scalers, info, path)

    def write_into(self, folder: Path) -> None:
        """Write the model's files into an existing (temporary) folder."""
        self.model.save(folder / MODEL_FILE)
        (folder / SCALERS_FILE).write_text(json.dumps({k: asdict(v) for k, v in self.scalers.items()}, indent=1))
        (folder / TRAINING_FILE).write_text(json.dumps(self.info, indent=1, default=str))
        history = self.history(missing_ok=True)
        if history is not None:
            history.to_csv(folder / HISTORY_FILE, index=False)

    def save(self, path, force: bool = True) -> Path:
        """Write the model directory atomically; an existing model there is replaced only with
        ``force`` (the default: the experiments own their directories; the command line asks)."""
        path = check_model_dir(path, force)
        with atomic.atomic_dir(path, force=True, marker=TRAINING_FILE) as tmp:
            self.write_into(tmp)
        self.path = path
        return path

    def history(self, missing_ok: bool = False):
        """The training history as a pandas DataFrame, one row per epoch (``history.csv``)."""
        import pandas as pd
        if self._history is not None:
            return history_frame(self._history)
        if self.path is not None and (self.path / HISTORY_FILE).is_file():
            return pd.read_csv(self.path / HISTORY_FILE)
        if missing_ok:
            return None
        raise FileNotFoundError(f"{self.path}: no {HISTORY_FILE} (the model was not trained by fit)")

    def inputs(self, images, psf_fwhm=None, sigma=None, psf_img=None) -> list:
        """Scaled network inputs for raw images and known per-galaxy numbers."""
        config = self.config
        images = np.asarray(images, np.float32)
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise InputError(f"images have shape {images.shape}, expected (N, {IMAGE_SIZE}, {IMAGE_SIZE})")
        known = {"psf_fwhm": psf_fwhm, "sigma": sigma}
        conditioning = {}
        for name in config.conditioning:
            if known[name] is None:
                raise InputError(f"model {self.name} needs {name} for each image")
            conditioning[name] = np.broadcast_to(np.asarray(known[name], np.float32), (len(images),))
        if config.psf_channel and psf_img is None:
            raise InputError(f"model {self.name} needs the PSF image (psf_img)")
        x, _ = model_inputs(images, psf_img if config.psf_channel else None, conditioning,
                            self.scalers, config.crop)
        return x

    def forward(self, x: list, batch_size: int = 256) -> np.ndarray:
        """Raw network outputs for scaled inputs, batch by batch.

        Calls the model's compiled predict function directly (``predict_on_batch``):
        ``model.predict`` rebuilds a data pipeline and its callbacks on every call, which
        costs more than the network itself for a few images.
        """
        return predict_in_batches(self.model.predict_on_batch, x, batch_size,
                                  int(self.model.outputs[0].shape[-1]))

    def predict(self, images, psf_fwhm=None, sigma=None, psf_img=None, batch_size: int = 256):
        """``(pred, pred_std)`` in label units for (N, 64, 64) images in photo-electrons;
        ``pred_std`` is None unless the model was trained with uncertainty."""
        out = self.forward(self.inputs(images, psf_fwhm, sigma, psf_img), batch_size)
        labels = self.scalers["label"]
        pred = labels.inverse(out[:, :N_LABELS])
        std = None
        if out.shape[1] == 2 * N_LABELS:  # first order through a logarithmic label
            std = np.exp(np.clip(out[:, N_LABELS:], -7.0, 7.0)) * labels.units_per_step(pred)
        return pred, std

    def predict_dataset(self, ds: files.Dataset, images=None, batch_size: int = 256):
        """Predict every row of a loaded data set (its noisy images unless ``images`` is given)."""
        images, psf, _ = dataset_arrays(ds, self.config, images)
        return self.predict(images, ds.psf_fwhm, ds.sigma, psf, batch_size=batch_size)
