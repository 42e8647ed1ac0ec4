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
    """A parameter's value checked against its range in `RANGES`.

    Parameters
    ----------
    name : str
        A key of `RANGES` (``"flux"``, ``"sersic_n"``, ``"sersic_r"``, ``"psf_fwhm"``, ...).
    value : float
        The value to check.

    Returns
    -------
    float
        ``value`` as a float.

    Raises
    ------
    ParameterRangeError
        When ``value`` is not finite or outside the range; the message names both.

    Examples
    --------
    >>> check_range("sersic_n", 3)
    3.0
    >>> check_range("sersic_r", 2.0)
    Traceback (most recent call last):
    ...
    galaxies.runtime.errors.ParameterRangeError: sersic_r = 2 is outside the allowed range [0.1, 0.6] arcsec (half-light radius)
    """
    allowed = RANGES[name]
    value = float(value)
    if not (math.isfinite(value) and value in allowed):
        units = f" {allowed.units}" if allowed.units else ""
        raise ParameterRangeError(
            f"{name} = {value:g} is outside the allowed range "
            f"[{allowed.low:g}, {allowed.high:g}]{units}")
    return value


def check_shear(g1: float, g2: float) -> tuple[float, float]:
    """A reduced shear checked: both components finite and ``|g| <= 0.67`` (``q >= 0.2``).

    Returns
    -------
    tuple of float
        ``(g1, g2)``.

    Raises
    ------
    ParameterRangeError
        When ``|g|`` is not finite or above the limit.

    Examples
    --------
    >>> check_shear(0.3, -0.4)
    (0.3, -0.4)
    """
    g1, g2 = float(g1), float(g2)
    g = math.hypot(g1, g2)
    limit = RANGES["shear"].high
    if not math.isfinite(g) or g > limit:
        raise ParameterRangeError(
            f"shear (g1, g2) = ({g1:g}, {g2:g}) has |g| = {g:.4g}, outside the allowed range "
            f"[0, {limit:g}] (axis ratio q >= {shear_to_ellipticity(limit, 0.0)[0]:.2f})")
    return g1, g2


def shear_components(g: float | np.ndarray, beta: float | np.ndarray):
    """Reduced shear ``(g1, g2) = (|g| cos 2 beta, |g| sin 2 beta)``.

    Parameters
    ----------
    g : float or ndarray
        The shear's magnitude ``|g|``.
    beta : float or ndarray
        Its orientation, radians.

    Examples
    --------
    >>> [round(float(c), 6) for c in shear_components(0.2, np.pi / 4)]
    [0.0, 0.2]
    """
    return g * np.cos(2 * beta), g * np.sin(2 * beta)


def shear_to_ellipticity(g1, g2):
    """Axis ratio and orientation of the ellipse a reduced shear makes of a circle.

    Parameters
    ----------
    g1, g2 : float or ndarray
        The reduced shear (element-wise on arrays).

    Returns
    -------
    q : float or ndarray
        The axis ratio ``(1 - |g|) / (1 + |g|)``.
    beta : float or ndarray
        The position angle of the major axis, in [0, pi).

    Examples
    --------
    >>> q, beta = shear_to_ellipticity(0.0, 0.5)
    >>> round(float(q), 4), round(float(np.degrees(beta)), 1)
    (0.3333, 45.0)
    """
    g = np.hypot(g1, g2)
    q = (1 - g) / (1 + g)
    beta = np.mod(0.5 * np.arctan2(g2, g1), np.pi)
    return q, beta


def ellipticity_to_shear(q, beta):
    """Reduced shear ``(g1, g2)`` of an ellipse of axis ratio ``q`` at angle ``beta``: the
    inverse of `shear_to_ellipticity`.

    Raises
    ------
    ParameterRangeError
        When ``q`` is outside (0, 1].

    Examples
    --------
    >>> g1, g2 = ellipticity_to_shear(1 / 3, np.pi / 4)
    >>> round(float(g1), 6), round(float(g2), 6)
    (0.0, 0.5)
    """
    q = np.asarray(q, dtype=float)
    if np.any((q <= 0) | (q > 1)):
        raise ParameterRangeError(f"axis ratio q = {q} is outside the allowed range (0, 1]")
    g = (1 - q) / (1 + q)
    return shear_components(g, beta)


def snr(clean: np.ndarray, sigma) -> np.ndarray | float:
    """Signal-to-noise ratio ``sqrt(sum(clean**2)) / sigma`` of one image or a stack.

    Parameters
    ----------
    clean : ndarray
        A noiseless image (ny, nx) or a stack (N, ny, nx), photo-electrons.
    sigma : float or ndarray
        The read noise, photo-electrons per pixel (one per image of a stack).

    Examples
    --------
    >>> float(snr(np.full((4, 4), 50.0), 10.0))
    20.0
    """
    clean = np.asarray(clean, dtype=np.float64)
    return np.sqrt(np.sum(clean**2, axis=(-2, -1))) / sigma


def check_parameters(flux, sersic_n, sersic_r, g1, g2, psf_fwhm=None, sigma=None) -> None:
    """Raise `ParameterRangeError` for the first parameter outside the simulated ranges.

    Examples
    --------
    >>> check_parameters(1e5, 3.0, 0.3, -0.069, 0.15, psf_fwhm=0.5, sigma=200.0)
    >>> check_parameters(1e5, 3.0, 0.3, 0.0, 0.0, psf_fwhm=2.0)
    Traceback (most recent call last):
    ...
    galaxies.runtime.errors.ParameterRangeError: psf_fwhm = 2 is outside the allowed range [0.5, 1] arcsec
    """
    check_range("flux", flux)
    check_range("sersic_n", sersic_n)
    check_range("sersic_r", sersic_r)
    check_shear(g1, g2)
    if psf_fwhm is not None:
        check_range("psf_fwhm", psf_fwhm)
    if sigma is not None:
        check_range("sigma", sigma)
