"""Standardization of a network's inputs and labels, fitted on the training split only.

Labels are standardized per column. Images are standardized by one mean and standard deviation
per channel (channel 0: the image; an optional channel 1: the PSF image). Known per-galaxy
numbers (PSF FWHM, noise sigma) enter as a second, standardized input (``conditioning``).
Scalers are JSON-serializable (``scalers.json`` of a model directory).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Standardizer", "model_inputs"]


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
