"""An autoencoder whose latent vector *is* the five galaxy parameters.

The encoder maps a noisy image to five numbers trained to equal the standardized labels
(flux, Sérsic n, Sérsic r, g1, g2); the decoder maps those five numbers back to the *noiseless*
image. The network therefore learns from both the labels and the noiseless images, and the
encoder-decoder pair is a denoiser: a noisy image goes in, a clean galaxy comes out.

Loss (both terms mean squared errors on standardized quantities, so each starts near 1)::

    loss = MSE(labels) + image_weight * MSE(noiseless image)

Scaling. Input images are standardized as every estimator's (`galaxies.train.model_inputs`,
one mean and standard deviation fitted on the training split); labels per column; the decoder's
target, the noiseless image, by its own mean and standard deviation (scaler ``target_image``),
so that ``image_weight = 1`` weighs the two terms alike at the start of training.

A trained autoencoder is a directory in the `galaxies.train.SavedModel` layout whose
``model.keras`` is the encoder (noisy image -> scaled labels), so `train.predict_file`, `galaxies
evaluate` and the app use it like any estimator, plus ``decoder.keras`` (scaled labels -> scaled
noiseless image). `Autoencoder.load` brings both back.

Keras 3 only (``keras.layers``), like every builder of `galaxies.models`.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from .. import io
from ..simulate import IMAGE_SIZE, LABEL_COLUMNS

DECODER_FILE = "decoder.keras"
N_LATENT = len(LABEL_COLUMNS)  # the latent vector is the five labels, nothing more


# ------------------------------------------------------------------------------- builders

def build_encoder(input_shape=(IMAGE_SIZE, IMAGE_SIZE, 1), entry_filters: int = 16,
                  block_filters: int = 64, blocks: int = 8, exit_filters: int = 128,
                  activation: str = "selu"):
    """The encoder: the project's Xception-style CNN with a five-unit linear output.

    Its output (layer ``labels``) is the latent vector: the five standardized labels, in the
    column order of `galaxies.simulate.LABEL_COLUMNS`. Sizes as in `galaxies.models.xception`.
    """
    from .xception import build
    return build(input_shape=tuple(input_shape), n_conditioning=0, n_outputs=N_LATENT,
                 entry_filters=entry_filters, block_filters=block_filters, blocks=blocks,
                 exit_filters=exit_filters, activation=activation, name="encoder")


def build_decoder(filters: int = 32, image_size: int = IMAGE_SIZE, activation: str = "selu"):
    """The decoder: five standardized labels -> a standardized noiseless image (size, size, 1).

    A dense layer spreads the labels over an 8 x 8 grid of ``4 * filters`` channels; three
    upsampling stages (x2 nearest-neighbour, then two 3 x 3 convolutions; channels 4f, 2f, f)
    reach 64 x 64, and a linear 3 x 3 convolution gives the single image channel.
    Upsampling + convolution rather than transposed convolution avoids checkerboard artefacts.
    """
    import keras
    from keras import layers

    if filters < 1:
        raise ValueError(f"decoder filters = {filters} must be at least 1")
    stages = 3
    start = image_size // 2 ** stages
    if start * 2 ** stages != image_size or start < 1:
        raise ValueError(f"image_size = {image_size} must be a multiple of {2 ** stages}")
    latent = keras.Input((N_LATENT,), name="labels")
    x = layers.Dense(start * start * 4 * filters, activation=activation)(latent)
    x = layers.Reshape((start, start, 4 * filters))(x)
    for width in (4 * filters, 2 * filters, filters):
        x = layers.UpSampling2D(2)(x)
        x = layers.Conv2D(width, 3, padding="same", activation=activation)(x)
        x = layers.Conv2D(width, 3, padding="same", activation=activation)(x)
    image = layers.Conv2D(1, 3, padding="same", name="image")(x)
    return keras.Model(latent, image, name="decoder")


def build_autoencoder(encoder, decoder):
    """The trainable pair: image -> ``{"labels": encoder(image), "image": decoder(labels)}``."""
    import keras
    image = keras.Input(encoder.input_shape[1:], name="noisy_image")
    labels = encoder(image)
    return keras.Model(image, {"labels": labels, "image": decoder(labels)}, name="autoencoder")


# -------------------------------------------------------------------------------- config

def config_from_profile(profile=None, **overrides):
    """A `galaxies.train.TrainingConfig` (``model="autoencoder"``) from the profile's
    ``autoencoder_*`` settings; keyword arguments replace fields, and the entries of a
    ``model_kwargs`` override (``image_weight``, ``encoder``, ``decoder_filters``) are merged."""
    from .. import profiles
    from ..train import TrainingConfig

    profile = profiles.get(profile)
    model_kwargs = {"image_weight": profile.autoencoder_image_weight,
                    "encoder": dict(profile.autoencoder_encoder),
                    "decoder_filters": profile.autoencoder_decoder_filters}
    model_kwargs.update(overrides.pop("model_kwargs", {}))
    base = dict(model="autoencoder", inputs="noisy", epochs=profile.autoencoder_epochs,
                batch_size=profile.autoencoder_batch_size, patience=profile.patience,
                limit=profile.autoencoder_limit)
    return TrainingConfig(**{**base, **overrides, "model_kwargs": model_kwargs})


def _model_kwargs(config) -> tuple[float, dict, int]:
    kwargs = dict(config.model_kwargs)
    weight = float(kwargs.pop("image_weight", 1.0))
    encoder = dict(kwargs.pop("encoder", {}))
    filters = int(kwargs.pop("decoder_filters", 32))
    if kwargs:
        raise ValueError(f"model_kwargs {sorted(kwargs)} not understood by the autoencoder; "
                         "use image_weight, encoder, decoder_filters")
    if not (np.isfinite(weight) and weight >= 0):
        raise ValueError(f"image_weight = {weight} must be a finite number >= 0")
    return weight, encoder, filters


# ------------------------------------------------------------------------- the estimator

class Autoencoder:
    """A trained autoencoder: the encoder as a `galaxies.train.SavedModel` plus the decoder.

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

        from ..train import SavedModel
        path = Path(path)
        encoder = SavedModel.load(path)
        if not (path / DECODER_FILE).is_file():
            raise FileNotFoundError(f"{path} is not a saved autoencoder: missing {DECODER_FILE}")
        decoder = keras.saving.load_model(path / DECODER_FILE, compile=False)
        return cls(encoder, decoder)

    def save(self, path) -> Path:
        """Write the directory atomically: staged under a temporary name, then renamed."""
        path = Path(path)
        history = None if self.path is None else self.path / "history.csv"
        stage = path.with_name(f".stage-{os.getpid()}-{path.name}")
        shutil.rmtree(stage, ignore_errors=True)
        try:
            self.encoder.save(stage)
            self.decoder.save(stage / DECODER_FILE)
            if history is not None and history.is_file() and not (stage / history.name).exists():
                shutil.copy(history, stage / history.name)
            if path.exists():
                shutil.rmtree(path)
            os.replace(stage, path)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
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


# ------------------------------------------------------------------------------ training

def _noisy_in_both_out(pair, extras, labels):
    """Split a training batch of (noisy, noiseless) channels into the autoencoder's input and
    its two targets (the channels were augmented together by `galaxies.train.training_batches`)."""
    return pair[..., :1], {"labels": labels, "image": pair[..., 1:]}


def fit(config, data, out_dir, name: str | None = None, verbose="auto") -> Autoencoder:
    """Train an autoencoder on a data set's noisy images, labels and noiseless images; save it.

    Parameters:
        config:   a `galaxies.train.TrainingConfig` with ``model="autoencoder"`` and
                  ``model_kwargs`` ``image_weight`` (the weight of the image term, >= 0),
                  ``encoder`` (Xception sizes) and ``decoder_filters``;
                  see `config_from_profile`. ``limit`` keeps the first rows of the set.
        data:     a data set path or a loaded `io.Dataset` with ``img`` and ``img_nonoise``.
        out_dir:  the model directory to write (replaced if it exists).
        verbose:  Keras' ``verbose`` ("auto", 0, 1 or 2).

    As `galaxies.train.fit`: the validation split (`galaxies.train.split_rows`), the
    augmentation by the symmetries of the pixel grid (``config.augment``), the learning-rate
    schedule (``config.schedule``) and early stopping restoring the best weights.
    ``history.csv`` holds the total, label and image losses and the learning rate per epoch.
    """
    import keras

    from ..train import (RecordedFit, SavedModel, Standardizer, learning_rate, model_inputs,
                         split_rows, training_batches)

    if config.inputs != "noisy" or config.conditioning or config.psf_channel or config.uncertainty:
        raise ValueError("the autoencoder reads noisy images only (inputs='noisy', no "
                         "conditioning, psf_channel or uncertainty)")
    weight, encoder_kwargs, decoder_filters = _model_kwargs(config)
    keras.utils.set_random_seed(config.seed)
    if isinstance(data, io.Dataset):
        ds = data
        if ds.img is None or ds.img_nonoise is None:
            raise ValueError(f"{ds.path}: the autoencoder needs both img and img_nonoise loaded")
    else:
        ds = io.load_dataset(data, fields=("img", "img_nonoise"), rows=config.limit)
    n = len(ds) if config.limit is None else min(len(ds), config.limit)
    train, val = split_rows(n, config.validation_fraction, config.seed)

    (x_train,), scalers = model_inputs(ds.img[train])
    (x_val,), _ = model_inputs(ds.img[val], scalers=scalers)
    scalers["label"] = Standardizer.fit(ds.label[train], axis=0)
    scalers["target_image"] = Standardizer.fit(ds.img_nonoise[train][..., None], axis=(0, 1, 2))
    target_train = scalers["target_image"].transform(ds.img_nonoise[train][..., None])
    y_val = {"labels": scalers["label"].transform(ds.label[val]),
             "image": scalers["target_image"].transform(ds.img_nonoise[val][..., None])}
    batches = training_batches(np.concatenate([x_train, target_train], axis=-1),
                               np.asarray(ds.label[train], np.float32), scalers["label"],
                               config.batch_size, config.seed, config.augment,
                               arrange=_noisy_in_both_out)

    encoder = build_encoder(x_train.shape[1:], **encoder_kwargs)
    decoder = build_decoder(decoder_filters, image_size=x_train.shape[1])
    model = build_autoencoder(encoder, decoder)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate(config, len(batches))),
                  loss={"labels": "mse", "image": "mse"},
                  loss_weights={"labels": 1.0, "image": weight})
    recorded = RecordedFit(out_dir, config.patience, plateau=config.schedule == "plateau")
    history = recorded.fit(model, batches, validation_data=(x_val, y_val), epochs=config.epochs,
                           validation_batch_size=min(len(val), 256), verbose=verbose,
                           images_per_epoch=min(len(train), len(batches) * config.batch_size))
    losses = loss_terms(history)
    info = recorded.record(
        encoder, config, ds, train, val, name=name, estimator="autoencoder",
        best_val_label_loss=float(min(losses["val_labels"])),
        best_val_image_loss=float(min(losses["val_image"])), image_weight=weight,
        decoder_parameters=int(decoder.count_params()))
    return recorded.save(Autoencoder(SavedModel(encoder, scalers, info), decoder))


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


def losses_on(model: Autoencoder, ds: io.Dataset, batch_size: int = 256) -> dict[str, float]:
    """The unweighted label and image MSEs (standardized units) of a trained autoencoder on a
    loaded data set with ``img`` and ``img_nonoise``."""
    x = model.encoder.inputs(ds.img)[0]
    latent = model.encoder.model.predict(x, batch_size=batch_size, verbose=0)
    image = model.decoder.predict(latent, batch_size=batch_size, verbose=0)
    labels = model.encoder.scalers["label"].transform(ds.label)
    target = model.encoder.scalers["target_image"].transform(ds.img_nonoise[..., None])
    return {"labels": float(np.mean((latent - labels) ** 2)),
            "image": float(np.mean((image - target) ** 2))}


# --------------------------------------------------------------------- where errors sit

def reconstruction_errors(noisy: np.ndarray, noiseless: np.ndarray, reconstructed: np.ndarray,
                          sigma) -> dict:
    """Where the reconstruction error concentrates, all in photo-electrons.

    Returns ``rms_map`` (64, 64): the RMS over images of ``reconstructed - noiseless`` per
    pixel; ``noise_rms_map``: the same for ``noisy - noiseless`` (the error of not denoising);
    ``radius`` and ``rms_by_radius``: the RMS residual in one-pixel rings around the image
    centre; ``per_image``: RMS residual per image divided by its noise ``sigma`` (a
    denoiser beats doing nothing where this is below 1).
    """
    noisy, clean, recon = (np.asarray(a, np.float64) for a in (noisy, noiseless, reconstructed))
    if not noisy.shape == clean.shape == recon.shape or noisy.ndim != 3:
        raise ValueError(f"shapes {noisy.shape}, {clean.shape}, {recon.shape}: expected three "
                         "equal (N, 64, 64) stacks")
    residual = recon - clean
    size = residual.shape[-1]
    yy, xx = np.indices(residual.shape[1:])
    centre = (size - 1) / 2
    ring = np.hypot(yy - centre, xx - centre).astype(int)
    per_pixel = np.mean(residual ** 2, axis=0)
    counts = np.bincount(ring.ravel())
    by_radius = np.sqrt(np.bincount(ring.ravel(), per_pixel.ravel()) / np.maximum(counts, 1))
    sigma = np.broadcast_to(np.asarray(sigma, np.float64), (len(residual),))
    return {
        "rms_map": np.sqrt(per_pixel),
        "noise_rms_map": np.sqrt(np.mean((noisy - clean) ** 2, axis=0)),
        "radius": np.arange(len(by_radius)),
        "rms_by_radius": by_radius,
        "per_image": np.sqrt(np.mean(residual ** 2, axis=(1, 2))) / sigma,
    }


def reconstruction_panels(model: Autoencoder, ds: io.Dataset, rows) -> tuple[list, list]:
    """Images and titles for `galaxies.plots.image_grid` (four columns): for each row of a
    loaded data set, the noisy input, the noiseless truth, the reconstruction and the residual
    (reconstruction - noiseless), with the SNR and residual RMS / sigma in the titles."""
    rows = np.asarray(rows, dtype=int)
    recon = model.reconstruct(ds.img[rows])
    images, titles = [], []
    for k, row in enumerate(rows):
        residual = recon[k] - ds.img_nonoise[row]
        rms = float(np.sqrt(np.mean(residual ** 2)) / ds.sigma[row])
        images += [ds.img[row], ds.img_nonoise[row], recon[k], residual]
        titles += [f"noisy, SNR {ds.snr[row]:.0f}", "noiseless", "reconstruction",
                   f"residual, rms {rms:.2f} sigma"]
    return images, titles


__all__ = ["build_encoder", "build_decoder", "build_autoencoder", "config_from_profile", "fit",
           "Autoencoder", "loss_terms", "losses_on", "reconstruction_errors", "reconstruction_panels",
           "DECODER_FILE", "N_LATENT"]
