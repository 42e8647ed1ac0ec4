"""The autoencoder experiment (``Project/autoencoder.ipynb``): its settings under a profile,
its losses on a data set, and where its reconstruction errors sit.

The autoencoder itself (directory format, training) is `galaxies.networks.training.autoencoder`; its
builders are `galaxies.networks.models.autoencoder`.
"""
from __future__ import annotations

import numpy as np

from galaxies.networks.training import TrainingConfig
from galaxies.networks.training.autoencoder import Autoencoder, fit, loss_terms  # noqa: F401 - the notebook's API
from galaxies.runtime import profiles
from galaxies.runtime.errors import InputError
from galaxies.storage import files

__all__ = ["config_from_profile", "fit", "Autoencoder", "loss_terms", "losses_on",
           "reconstruction_errors", "reconstruction_panels"]


def config_from_profile(profile=None, **overrides):
    """A `galaxies.networks.training.TrainingConfig` (``model="autoencoder"``) from the profile's
    ``autoencoder_*`` settings, on the fresh-noise stream (``noise="fresh"``; ``noise="fixed"``
    is the original study's way, the set's noisy images); keyword arguments replace fields, and the
    entries of a ``model_kwargs`` override (``image_weight``, ``encoder``, ``decoder_filters``)
    are merged."""
    profile = profiles.get(profile)
    model_kwargs = {"image_weight": profile.autoencoder_image_weight,
                    "encoder": dict(profile.autoencoder_encoder),
                    "decoder_filters": profile.autoencoder_decoder_filters}
    model_kwargs.update(overrides.pop("model_kwargs", {}))
    base = dict(model="autoencoder", inputs="noisy", noise="fresh",
                epochs=profile.autoencoder_epochs, batch_size=profile.autoencoder_batch_size,
                patience=profile.patience, limit=profile.autoencoder_limit)
    return TrainingConfig(**{**base, **overrides, "model_kwargs": model_kwargs})


def losses_on(model: Autoencoder, ds: files.Dataset, batch_size: int = 256) -> dict[str, float]:
    """The unweighted label and image MSEs (standardized units) of a trained autoencoder on a
    loaded data set with ``img`` and ``img_nonoise``."""
    x = model.encoder.inputs(ds.img)[0]
    latent = model.encoder.model.predict(x, batch_size=batch_size, verbose=0)
    image = model.decoder.predict(latent, batch_size=batch_size, verbose=0)
    labels = model.encoder.scalers["label"].transform(ds.label)
    target = model.encoder.scalers["target_image"].transform(ds.img_nonoise[..., None])
    return {"labels": float(np.mean((latent - labels) ** 2)),
            "image": float(np.mean((image - target) ** 2))}


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
        raise InputError(f"shapes {noisy.shape}, {clean.shape}, {recon.shape}: expected three "
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


def reconstruction_panels(model: Autoencoder, ds: files.Dataset, rows) -> tuple[list, list]:
    """Images and titles for `galaxies.interfaces.plots.image_grid` (four columns): for each row of a
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
