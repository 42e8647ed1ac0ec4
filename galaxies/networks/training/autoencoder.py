"""An autoencoder whose latent vector *is* the five galaxy parameters.

The encoder maps a noisy image to five numbers trained to equal the standardized labels
(flux, Sérsic n, Sérsic r, g1, g2); the decoder maps those five numbers back to the *noiseless*
image. The network therefore learns from both the labels and the noiseless images, and the
encoder-decoder pair is a denoiser: a noisy image goes in, a clean galaxy comes out.

Loss (both terms mean squared errors on standardized quantities, so each starts near 1)::

    loss = MSE(labels) + image_weight * MSE(noiseless image)

Scaling. Input images are standardized as every estimator's (`galaxies.networks.training.model_inputs`,
one mean and standard deviation fitted on the training split); labels per column; the decoder's
target, the noiseless image, by its own mean and standard deviation (scaler ``target_image``),
so that ``image_weight = 1`` weighs the two terms alike at the start of training. With fresh
noise the input scaler is fitted on one noisy draw of the training images.

Noise. The project's way (``noise="fresh"``, `galaxies.evaluation.experiments.autoencoder.config_from_profile`)
is the fresh-noise stream (`galaxies.networks.training.noise`): at every showing the encoder reads a new
noisy draw (Poisson counts plus the row's own read noise) of the galaxy's noiseless image, and
the decoder's target is that noiseless image in the same orientation. ``noise="fixed"`` trains
on the set's noisy images (the original study's way).

A trained autoencoder is a directory in the `galaxies.networks.training.SavedModel` layout whose
``model.keras`` is the encoder (noisy image -> scaled labels), so `galaxies.evaluation.estimators`, `galaxies
evaluate` and the app use it like any estimator, plus ``decoder.keras`` (scaled labels -> scaled
noiseless image). `Autoencoder.load` brings both back.

The builders are in `galaxies.networks.models.autoencoder`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from galaxies.runtime.errors import InputError
from galaxies.storage import atomic, files

from .loop import RecordedFit, image_pairs, learning_rate, pair_fields, split_pair
from .saved import TRAINING_FILE, SavedModel, check_model_dir
from .scaling import Standardizer
from .stream import split_rows, training_batches

__all__ = ["Autoencoder", "fit", "stream", "loss_terms", "DECODER_FILE"]

DECODER_FILE = "decoder.keras"


def _model_kwargs(config) -> tuple[float, dict, int]:
    kwargs = dict(config.model_kwargs)
    weight = float(kwargs.pop("image_weight", 1.0))
    encoder = dict(kwargs.pop("encoder", {}))
    filters = int(kwargs.pop("decoder_filters", 32))
    if kwargs:
        raise InputError(f"model_kwargs {sorted(kwargs)} not understood by the autoencoder; "
                         "use image_weight, encoder, decoder_filters")
    if not (np.isfinite(weight) and weight >= 0):
        raise InputError(f"image_weight = {weight} must be a finite number >= 0")
    return weight, encoder, filters


class Autoencoder:
    """A trained autoencoder: the encoder as a `galaxies.networks.training.SavedModel` plus the decoder.

    ``predict`` gives labels in their units (as every estimator); ``reconstruct`` gives the
    denoised image in photo-electrons; ``decode`` renders labels into an image.
    """

    def __init__(self, encoder, decoder):
        self.encoder, self.decoder = encoder, decoder  # SavedModel, keras.Model

    @property
    def path(self) -> Path | None:
        return self.encoder.path

    @property
    def info(self) -> dict:
        return self.encoder.info

    @property
    def image_weight(self) -> float:
        return _model_kwargs(self.encoder.config)[0]

    @classmethod
    def load(cls, path) -> "Autoencoder":
        import keras
        path = Path(path)
        encoder = SavedModel.load(path)
        if not (path / DECODER_FILE).is_file():
            raise FileNotFoundError(f"{path} is not a saved autoencoder: missing {DECODER_FILE}")
        decoder = keras.saving.load_model(path / DECODER_FILE, compile=False)
        return cls(encoder, decoder)

    def save(self, path, force: bool = True) -> Path:
        """Write the directory atomically: the encoder's files and ``decoder.keras``."""
        path = check_model_dir(path, force)
        with atomic.atomic_dir(path, force=True, marker=TRAINING_FILE) as tmp:
            self.encoder.write_into(tmp)
            self.decoder.save(tmp / DECODER_FILE)
        self.encoder.path = path
        return path

    def predict(self, images, batch_size: int = 256) -> np.ndarray:
        """Labels (N, 5) in their units for noisy images (N, 64, 64) in photo-electrons."""
        return self.encoder.predict(images, batch_size=batch_size)[0]

    def decode(self, labels, batch_size: int = 256) -> np.ndarray:
        """Noiseless images (N, 64, 64) in photo-electrons rendered by the decoder from labels
        (N, 5) in their units."""
        scaled = self.encoder.scalers["label"].transform(np.atleast_2d(labels))
        return self._images(self.decoder.predict(scaled, batch_size=batch_size, verbose=0))

    def reconstruct(self, images, batch_size: int = 256) -> np.ndarray:
        """Denoised images (N, 64, 64) in photo-electrons: decoder(encoder(noisy image))."""
        x = self.encoder.inputs(images)[0]
        latent = self.encoder.model.predict(x, batch_size=batch_size, verbose=0)
        return self._images(self.decoder.predict(latent, batch_size=batch_size, verbose=0))

    def _images(self, scaled) -> np.ndarray:
        return self.encoder.scalers["target_image"].inverse(np.asarray(scaled)[..., 0]).astype(np.float32)


def _noisy_in_both_out(pair, extras, labels):
    """Split a training batch of (noisy, noiseless) channels into the autoencoder's input and
    its two targets (the channels were oriented together by `galaxies.networks.training.training_batches`)."""
    noisy, clean = split_pair(pair)
    return noisy, {"labels": labels, "image": clean}


def stream(config, ds: files.Dataset, train, val):
    """``(batches, (x_val, y_val), scalers)``: the training batches of the autoencoder on the
    rows ``train`` of a loaded set (`galaxies.networks.training.image_pairs`: a noisy input, fresh at
    every showing with ``config.noise == "fresh"``, and the noiseless image as the decoder's
    target, oriented alike; the labels as the encoder's) and the fixed validation data."""
    images, noise, (x_val, image_val), scalers = image_pairs(
        ds, train, val, config.noise, config.seed, own_target_scaler=True)
    scalers["label"] = Standardizer.fit(ds.label[train], axis=0)
    y_val = {"labels": scalers["label"].transform(ds.label[val]), "image": image_val}
    batches = training_batches(images, np.asarray(ds.label[train], np.float32), scalers["label"],
                               config.batch_size, config.seed, config.augment,
                               arrange=_noisy_in_both_out, noise=noise)
    return batches, (x_val, y_val), scalers


def fit(config, data, out_dir=None, name: str | None = None, verbose="auto",
        force: bool = True) -> Autoencoder:
    """Train an autoencoder on a data set's noisy images, labels and noiseless images; save it.

    Parameters
    ----------
    config
        a `galaxies.networks.training.TrainingConfig` with ``model="autoencoder"`` and
        ``model_kwargs`` ``image_weight`` (the weight of the image term, >= 0), ``encoder``
        (Xception sizes) and ``decoder_filters``; see `config_from_profile`. ``limit`` keeps the
        first rows of the set. ``noise``: ``"fresh"`` (the profile's way, `config_from_profile`)
        draws a new noisy input from each noiseless image at every showing (the read noise each
        row's own); ``"fixed"`` trains on the set's noisy images (the original study's way).
    data
        a data set path or a loaded `files.Dataset` with ``img_nonoise`` (and ``img`` for fixed
        noise).
    out_dir
        the model directory to write (None: in memory only; an existing model is replaced only
        with ``force``).
    verbose
        Keras' ``verbose`` ("auto", 0, 1 or 2).

    As `galaxies.networks.training.fit`: the validation split (`galaxies.networks.training.split_rows`; with
    fresh noise its inputs are one fixed, seeded draw), the augmentation by the symmetries of
    the pixel grid (``config.augment``), the learning-rate schedule (``config.schedule``) and
    early stopping restoring the best weights. The decoder's target is always the noiseless
    image, in the orientation of the input. ``history.csv`` holds the total, label and image
    losses and the learning rate per epoch.
    """
    import keras

    from ..models.autoencoder import build_autoencoder, build_decoder, build_encoder

    if config.inputs != "noisy" or config.conditioning or config.psf_channel or config.uncertainty:
        raise InputError("the autoencoder reads noisy images only (inputs='noisy', no "
                         "conditioning, psf_channel or uncertainty)")
    weight, encoder_kwargs, decoder_filters = _model_kwargs(config)
    keras.utils.set_random_seed(config.seed)
    if isinstance(data, files.Dataset):
        ds = data
        pair_fields(config.noise, ds, "the autoencoder")
    else:
        ds = files.load_dataset(data, fields=pair_fields(config.noise), rows=config.limit)
    n = len(ds) if config.limit is None else min(len(ds), config.limit)
    train, val = split_rows(n, config.validation_fraction, config.seed)
    batches, validation, scalers = stream(config, ds, train, val)

    encoder = build_encoder(validation[0].shape[1:], **encoder_kwargs)
    decoder = build_decoder(decoder_filters, image_size=validation[0].shape[1])
    model = build_autoencoder(encoder, decoder)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate(config, len(batches))),
                  loss={"labels": "mse", "image": "mse"},
                  loss_weights={"labels": 1.0, "image": weight})
    if out_dir is not None:
        check_model_dir(out_dir, force)
    recorded = RecordedFit(config.patience, plateau=config.schedule == "plateau")
    history = recorded.fit(model, batches, validation_data=validation, epochs=config.epochs,
                           validation_batch_size=min(len(val), 256), verbose=verbose,
                           images_per_epoch=min(len(train), len(batches) * config.batch_size))
    losses = loss_terms(history)
    info = recorded.record(
        encoder, config, ds, train, val, name=name or (Path(out_dir).name if out_dir else None),
        estimator="autoencoder",
        best_val_label_loss=float(min(losses["val_labels"])),
        best_val_image_loss=float(min(losses["val_image"])), image_weight=weight,
        decoder_parameters=int(decoder.count_params()))
    trained = Autoencoder(SavedModel(encoder, scalers, info, history=history), decoder)
    if out_dir is not None:
        trained.save(out_dir, force=force)
    return trained


def loss_terms(history: dict) -> dict[str, list[float]]:
    """The label and image terms of a Keras history (training and validation), by the names
    ``labels``, ``image``, ``val_labels``, ``val_image`` (unweighted MSEs)."""
    out = {}
    for prefix in ("", "val_"):
        for term in ("labels", "image"):
            key = f"{prefix}{term}_loss"
            if key not in history:
                raise KeyError(f"history has no {key!r}; keys: {sorted(history)}")
            out[f"{prefix}{term}"] = [float(v) for v in history[key]]
    return out
