"""Standardization of a network's inputs and labels, fitted on the training split only.

Labels are standardized per column, optionally after a logarithm (``log``: a positive label
whose posterior is closer to Gaussian in its logarithm, and whose error the network should
resolve in proportion to its value, e.g. the flux over its range of 13). Images are
standardized by one mean and standard deviation per channel (channel 0: the image; an optional
channel 1: the PSF image), after an optional centred crop (`centre_crop`: a cheaper input for
the same galaxy). Known per-galaxy numbers (PSF FWHM, noise sigma) enter as a second,
standardized input (``conditioning``). Scalers are JSON-serializable (``scalers.json`` of a
model directory).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from galaxies.runtime.errors import InputError

__all__ = ["Standardizer", "model_inputs", "centre_crop"]


@dataclass
class Standardizer:
    """``(f(x) - mean) / std`` per feature (last axis), JSON-serializable; ``f`` is the natural
    logarithm on the features flagged in ``log`` (empty: none) and the identity elsewhere."""

    mean: list
    std: list
    log: list = field(default_factory=list)

    @classmethod
    def fit(cls, x: np.ndarray, axis, log=None) -> "Standardizer":
        """Fitted on ``x``; ``log``: one flag per feature (last axis), or None."""
        log = [bool(v) for v in log] if log is not None and any(log) else []
        x = _forward(np.asarray(x, dtype=np.float64), log)
        mean, std = x.mean(axis=axis), x.std(axis=axis)
        std = np.where(std > 0, std, 1.0)  # a constant feature (e.g. fixed PSF) passes through
        return cls(np.atleast_1d(mean).tolist(), np.atleast_1d(std).tolist(), log)

    def transform(self, x):
        x = _forward(np.asarray(x, np.float32), self.log)
        return ((x - np.float32(self.mean)) / np.float32(self.std)).astype(np.float32)

    def inverse(self, y):
        x = np.asarray(y, np.float64) * np.asarray(self.std) + np.asarray(self.mean)
        if self.log:  # the exponential of the flagged features only: a linear flux of 1e5 is no exponent
            flagged = np.asarray(self.log, bool)
            x[..., flagged] = np.exp(x[..., flagged])
        return x

    def units_per_step(self, x) -> np.ndarray:
        """d x / d z at the values ``x`` (original units): how much of a feature one standardized
        unit is there (``std``, times ``x`` on a logarithmic feature); converts a standard
        deviation or a gradient between the two scales (first order)."""
        x = np.asarray(x, np.float64)
        std = np.broadcast_to(np.asarray(self.std, np.float64), x.shape)
        return np.where(self.log, std * x, std) if self.log else np.array(std)


def _forward(x: np.ndarray, log: list) -> np.ndarray:
    """``x`` with the logarithm taken of the flagged features; one error if any is not positive."""
    if not log:
        return x
    flagged = np.asarray(log, bool)
    values = x[..., flagged]
    if np.any(~(values > 0)):
        raise InputError(f"a label standardized by its logarithm is {values[~(values > 0)].flat[0]}; "
                         "it must be positive")
    out = np.array(x, copy=True)
    out[..., flagged] = np.log(values)
    return out


def centre_crop(images: np.ndarray, size: int | None) -> np.ndarray:
    """The central ``size`` x ``size`` pixels of images (..., H, W) (None: unchanged). The
    margins are equal on both sides, so a galaxy centred on the stamp stays centred and the
    pixel grid's symmetries (`galaxies.networks.training.stream.dihedral`) still hold."""
    if size is None:
        return images
    height, width = images.shape[-2:]
    if size > min(height, width) or (height - size) % 2 or (width - size) % 2:
        raise InputError(f"crop = {size} must be at most {min(height, width)} and leave equal "
                         f"margins on a {height} x {width} image")
    top, left = (height - size) // 2, (width - size) // 2
    return images[..., top:top + size, left:left + size]


def model_inputs(images: np.ndarray, psf_img=None, conditioning: dict | None = None,
                 scalers: dict | None = None, crop: int | None = None) -> tuple[list, dict]:
    """Network inputs from raw arrays; fits scalers when ``scalers`` is None.

    ``images`` (N, 64, 64) in photo-electrons; ``psf_img`` (N, 64, 64) or None;
    ``conditioning`` maps names of `CONDITIONING` to (N,) arrays; ``crop``: keep the central
    ``crop`` x ``crop`` pixels of both (`centre_crop`). Returns the list of inputs and the
    scalers used.
    """
    fit = scalers is None
    scalers = {} if fit else scalers
    channels = [centre_crop(np.asarray(images, np.float32), crop)]
    if psf_img is not None:
        psf = centre_crop(np.asarray(psf_img, np.float32), crop)
        channels.append(np.broadcast_to(psf, channels[0].shape))
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
