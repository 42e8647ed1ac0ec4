"""The conventions every part of the project shares: units, stamp, labels, ranges, shear, SNR.

* Angles on the sky are in arcsec; images are ``IMAGE_SIZE`` x ``IMAGE_SIZE`` pixels of
  ``PIXEL_SCALE`` arcsec, and pixel values are photo-electrons.
* The galaxy is ``galsim.Sersic(n, half_light_radius=r, flux=flux)`` sheared by the reduced
  shear ``(g1, g2)``, convolved with ``galsim.Moffat(beta=2, fwhm=psf_fwhm)`` and drawn with
  GalSim's default method (FFT, including the pixel response), centred on the image.
* Noise is Poisson on the galaxy counts (sky level 0) plus Gaussian read noise of standard
  deviation ``sigma``, so a pixel's variance is ``sigma**2 + mu`` for mean count ``mu``.
* ``SNR = sqrt(sum(clean**2)) / sigma`` of the noiseless image.
* Shear magnitude ``|g|`` and orientation ``beta`` give ``g1 = |g| cos 2 beta``,
  ``g2 = |g| sin 2 beta``; the axis ratio is ``q = (1 - |g|) / (1 + |g|)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from galaxies.runtime.errors import ParameterRangeError

PIXEL_SCALE = 0.23  # arcsec per pixel
IMAGE_SIZE = 64  # pixels on a side
MOFFAT_BETA = 2.0

#: Label columns of every data set and predictions file, in this order.
LABEL_COLUMNS = ("flux", "sersic_n", "sersic_r", "g1", "g2")


@dataclass(frozen=True)
class Range:
    """Closed interval of allowed values of one parameter, with its units."""

    low: float
    high: float
    units: str = ""

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


#: Allowed parameter ranges (the original study's). ``shear`` bounds |g|; |g| <= 0.67 means q >= 0.2.
RANGES: dict[str, Range] = {
    "flux": Range(0.3e5, 4e5, "photo-electrons"),
    "sersic_n": Range(0.5, 6.0),
    "sersic_r": Range(0.1, 0.6, "arcsec (half-light radius)"),
    "shear": Range(0.0, 0.67, "(reduced shear |g|)"),
    "psf_fwhm": Range(0.5, 1.0, "arcsec"),
    "sigma": Range(200.0, 400.0, "photo-electrons per pixel"),
}
#: Width of the simulated range of each label (|g| <= 0.67 lets g1 and g2 span 1.34).
LABEL_WIDTHS = {
    "flux": RANGES["flux"].high - RANGES["flux"].low,
    "sersic_n": RANGES["sersic_n"].high - RANGES["sersic_n"].low,
    "sersic_r": RANGES["sersic_r"].high - RANGES["sersic_r"].low,
    "g1": 2 * RANGES["shear"].high,
    "g2": 2 * RANGES["shear"].high,
}
#: Images kept in training sets have SNR in this range.
SNR_RANGE = Range(10.0, 100.0)

#: The fixed galaxy of the snr60 and snr30 test sets (the original study's), PSF included; sigma sets the SNR.
TEST_GALAXY = dict(flux=1e5, sersic_n=3.0, sersic_r=0.3, g1=-0.069, g2=0.15, psf_fwhm=0.5)
#: Sérsic indices GalSim can draw (`galsim.Sersic`); the prior's range lies inside it.
GALSIM_SERSIC_N = (0.3, 6.2)


def check_range(name: str, value: float) -> float:
    """Return ``value`` as a float, or raise `ParameterRangeError` naming it and its range."""
    allowed = RANGES[name]
    value = float(value)
    if not (math.isfinite(value) and value in allowed):
        units = f" {allowed.units}" if allowed.units else ""
        raise ParameterRangeError(
            f"{name} = {value:g} is outside the allowed range "
            f"[{allowed.low:g}, {allowed.high:g}]{units}")
    return value


def check_shear(g1: float, g2: float) -> tuple[float, float]:
    """Validate a reduced shear: both components finite and ``|g| <= 0.67``."""
    g1, g2 = float(g1), float(g2)
    g = math.hypot(g1, g2)
    limit = RANGES["shear"].high
    if not math.isfinite(g) or g > limit:
        raise ParameterRangeError(
            f"shear (g1, g2) = ({g1:g}, {g2:g}) has |g| = {g:.4g}, outside the allowed range "
            f"[0, {limit:g}] (axis ratio q >= {shear_to_ellipticity(limit, 0.0)[0]:.2f})")
    return g1, g2


def shear_components(g: float | np.ndarray, beta: float | np.ndarray):
    """Reduced shear ``(g1, g2)`` from its magnitude ``g = |g|`` and orientation ``beta`` (rad)."""
    return g * np.cos(2 * beta), g * np.sin(2 * beta)


def shear_to_ellipticity(g1, g2):
    """Axis ratio ``q`` and orientation ``beta`` in [0, pi) of the shear ``(g1, g2)``.

    ``q = (1 - |g|) / (1 + |g|)``; ``beta`` is the position angle of the major axis.
    Works element-wise on arrays.
    """
    g = np.hypot(g1, g2)
    q = (1 - g) / (1 + g)
    beta = np.mod(0.5 * np.arctan2(g2, g1), np.pi)
    return q, beta


def ellipticity_to_shear(q, beta):
    """Reduced shear ``(g1, g2)`` of an ellipse of axis ratio ``q`` in (0, 1] at angle ``beta``."""
    q = np.asarray(q, dtype=float)
    if np.any((q <= 0) | (q > 1)):
        raise ParameterRangeError(f"axis ratio q = {q} is outside the allowed range (0, 1]")
    g = (1 - q) / (1 + q)
    return shear_components(g, beta)


def snr(clean: np.ndarray, sigma) -> np.ndarray | float:
    """Signal-to-noise ratio ``sqrt(sum(clean**2)) / sigma`` of one image or a stack."""
    clean = np.asarray(clean, dtype=np.float64)
    return np.sqrt(np.sum(clean**2, axis=(-2, -1))) / sigma



def check_parameters(flux, sersic_n, sersic_r, g1, g2, psf_fwhm=None, sigma=None) -> None:
    """Raise `ParameterRangeError` for the first parameter outside the simulated ranges."""
    check_range("flux", flux)
    check_range("sersic_n", sersic_n)
    check_range("sersic_r", sersic_r)
    check_shear(g1, g2)
    if psf_fwhm is not None:
        check_range("psf_fwhm", psf_fwhm)
    if sigma is not None:
        check_range("sigma", sigma)
