"""Bringing a cutout to the simulation's stamp (64 x 64 pixels of 0.23") with GalSim, and the
noise level that results.

`resample` makes the cutout a `galsim.InterpolatedImage` (quintic interpolant, flux per pixel
kept), shifts the galaxy to the centre, pads it with white noise of the cutout's level where
the new stamp reaches past the cutout, and samples it in real space at 0.23"; when the new
pixels are larger than the old, it samples k x k points of each and adds them up, which
integrates the light over the new pixel (the simulations' pixel response). The result's noise
is correlated and its level changed: `resampled_sigma` measures it by resampling pure-noise
fields of the cutout's noise the same way (a Monte Carlo; tests/test_measure.py checks it
against the interpolant's kernel, ``sigma (0.23/s)^2 sqrt(sum K^2 sum K^2)`` when sampling).
"""
from __future__ import annotations

import math

import numpy as np

from .simulate import IMAGE_SIZE, PIXEL_SCALE

__all__ = ["psf_profile", "resample", "resampled_sigma"]


def psf_profile(psf_image: np.ndarray, pixel_scale: float):
    """A PSF image (unit sum, pixel response included) as a unit-flux GalSim profile."""
    import galsim
    return galsim.InterpolatedImage(galsim.Image(np.asarray(psf_image, np.float64),
                                                 scale=float(pixel_scale)), flux=1.0)


def _resampler(image, pixel_scale, offset, pad_sigma, seed):
    import galsim
    profile = galsim.InterpolatedImage(
        galsim.Image(np.asarray(image, np.float64), scale=float(pixel_scale)), x_interpolant="quintic",
        noise_pad_size=IMAGE_SIZE * PIXEL_SCALE * 1.5 if pad_sigma else 0,
        noise_pad=float(pad_sigma) ** 2 if pad_sigma else 0.0, rng=galsim.BaseDeviate(int(seed)),
        calculate_stepk=False, calculate_maxk=False)
    return profile.shift(-offset[0] * pixel_scale, -offset[1] * pixel_scale)


def resample(image: np.ndarray, pixel_scale: float, offset=(0.0, 0.0), pad_sigma: float = 0.0,
             seed: int = 1) -> np.ndarray:
    """``image`` (counts per pixel of ``pixel_scale`` arcsec, galaxy ``offset`` pixels from
    its centre) on the simulation's 64 x 64 stamp of 0.23" pixels, centred, in counts per new
    pixel; outside the cutout, white noise of ``pad_sigma`` (per original pixel)."""
    profile = _resampler(image, pixel_scale, offset, pad_sigma, seed)
    # larger new pixels: sample k x k points of each (real space, GalSim's interpolant) and
    # add them up, which integrates the light over the new pixel
    k = max(1, math.ceil(PIXEL_SCALE / pixel_scale - 1e-6))
    fine = profile.drawImage(nx=IMAGE_SIZE * k, ny=IMAGE_SIZE * k, scale=PIXEL_SCALE / k,
                             method="no_pixel").array.astype(np.float64)
    return fine.reshape(IMAGE_SIZE, k, IMAGE_SIZE, k).sum(axis=(1, 3))


def resampled_sigma(shape, pixel_scale: float, noise, offset=(0.0, 0.0),
                    realizations: int = 6, seed: int = 7) -> float:
    """The pixel noise sigma of `resample`'s output: pure white-noise fields of the cutout's
    noise (a number or a map) resampled the same way, their pixels' standard deviation."""
    rng = np.random.default_rng(seed)
    noise = np.broadcast_to(np.asarray(noise, np.float64), tuple(shape))
    pad = float(np.median(noise))
    fields = [resample(rng.standard_normal(noise.shape) * noise, pixel_scale, offset, pad,
                       seed + k + 1) for k in range(realizations)]
    return float(np.std(fields))
