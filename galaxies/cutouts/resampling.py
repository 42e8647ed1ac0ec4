"""Bringing a cutout to the simulation's stamp (64 x 64 pixels of 0.23") with GalSim, and the
noise level that results.

`resample` makes the cutout a `galsim.InterpolatedImage` (quintic interpolant, flux per pixel
kept), shifts the galaxy to the centre, pads it with white noise of the cutout's level where
the new stamp reaches past the cutout, and samples it in real space at 0.23"; when the new
pixels are larger than the old, it samples k x k points of each and adds them up, which
integrates the light over the new pixel (the simulations' pixel response). The result's noise
is correlated and its level changed: `resampled_sigma` measures it by resampling pure-noise
fields of the cutout's noise the same way (a Monte Carlo; tests/cutouts/test_measure.py checks it
against the interpolant's kernel, ``sigma (0.23/s)^2 sqrt(sum K^2 sum K^2)`` when sampling).

A network trained on white noise is told the noise and the PSF in its training's terms:
`equivalent_sigma` is the white noise of 0.23" pixels that carries the same information per
area as the cutout's (``sigma 0.23 / s``: the noise of the flux in any region is kept; the
correlated pixels' own standard deviation is lower when upsampling, higher when integrating),
and `stamp_fwhm` the FWHM of the Moffat whose 0.23" stamp has the adaptive-moments size of the
resampled PSF (the cutout's pixel response and the interpolant are in it). Both matter:
given the pixels' standard deviation and the cutout PSF's own FWHM, a network's flux on 0.3"
cutouts was 1.6 x its native RMSE, and its radius biased low by 20%
(`benchmarks/measure.py --model`).
"""
from __future__ import annotations

import math

import numpy as np

from galaxies.conventions import IMAGE_SIZE, PIXEL_SCALE

__all__ = ["psf_profile", "resample", "resampled_sigma", "equivalent_sigma", "stamp_fwhm"]


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


def equivalent_sigma(noise, pixel_scale: float) -> float:
    """The white noise per 0.23" pixel with the information of the cutout's (a number or a
    map; its median): ``sigma 0.23 / pixel_scale``, which keeps the variance of the flux in any
    region of many pixels."""
    return float(np.median(np.asarray(noise, np.float64))) * PIXEL_SCALE / float(pixel_scale)


def _moments_sigma(image: np.ndarray) -> float:
    import galsim
    return galsim.hsm.FindAdaptiveMom(galsim.Image(np.asarray(image, np.float64),
                                                   scale=PIXEL_SCALE)).moments_sigma


def stamp_fwhm(psf_stamp: np.ndarray) -> float:
    """The FWHM (arcsec) of the Moffat (beta 2, 0.23" pixel response, as the simulations draw
    it) whose 64 x 64 stamp has the adaptive-moments size of ``psf_stamp`` (a PSF on the
    simulation's stamp, e.g. a cutout's resampled); NaN when adaptive moments fail or no Moffat
    of 0.05" to 4" matches."""
    import galsim
    from scipy.optimize import brentq

    from galaxies.conventions import MOFFAT_BETA
    try:
        target = _moments_sigma(psf_stamp)
    except (galsim.GalSimError, RuntimeError, ValueError):
        return math.nan

    def gap(fwhm: float) -> float:
        drawn = galsim.Moffat(beta=MOFFAT_BETA, fwhm=fwhm).drawImage(
            nx=IMAGE_SIZE, ny=IMAGE_SIZE, scale=PIXEL_SCALE).array
        return _moments_sigma(drawn) - target
    try:
        return float(brentq(gap, 0.05, 4.0, xtol=1e-4))
    except (galsim.GalSimError, RuntimeError, ValueError):  # sizes no Moffat of 0.05-4" has
        return math.nan
