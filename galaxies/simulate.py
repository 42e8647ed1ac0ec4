"""Render one galaxy image: a sheared Sérsic profile seen through a Moffat PSF, with noise.

Conventions (shared by every part of the project):

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

Rendering is the costly part of everything downstream (data generation, the maximum-likelihood
fit, the Cramér–Rao bound), so `GalaxyRenderer` keeps what GalSim would otherwise rebuild for
every image, without changing a single pixel of the result (see its docstring).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import galsim
import numpy as np

from .errors import InputError, ParameterRangeError

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


#: Allowed parameter ranges (the seed's). ``shear`` bounds |g|; |g| <= 0.67 means q >= 0.2.
RANGES: dict[str, Range] = {
    "flux": Range(0.3e5, 4e5, "photo-electrons"),
    "sersic_n": Range(0.5, 6.0),
    "sersic_r": Range(0.1, 0.6, "arcsec (half-light radius)"),
    "shear": Range(0.0, 0.67, "(reduced shear |g|)"),
    "psf_fwhm": Range(0.5, 1.0, "arcsec"),
    "sigma": Range(200.0, 400.0, "photo-electrons per pixel"),
}
#: Images kept in training sets have SNR in this range.
#: Width of the simulated range of each label (|g| <= 0.67 lets g1 and g2 span 1.34).
LABEL_WIDTHS = {
    "flux": RANGES["flux"].high - RANGES["flux"].low,
    "sersic_n": RANGES["sersic_n"].high - RANGES["sersic_n"].low,
    "sersic_r": RANGES["sersic_r"].high - RANGES["sersic_r"].low,
    "g1": 2 * RANGES["shear"].high,
    "g2": 2 * RANGES["shear"].high,
}
SNR_RANGE = Range(10.0, 100.0)

#: The fixed galaxy of the snr60 and snr30 test sets (the seed's), PSF included; sigma sets the SNR.
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


class _MemoizedKProfile(galsim.Transformation):
    """A GalSim profile that remembers its k-space images.

    ``drawImage`` (FFT method) multiplies the k-space images of the galaxy, the PSF and the
    pixel on a grid whose size depends only on the FFT size GalSim picks, and a Moffat's
    k-values (Bessel functions) cost as much as the galaxy's. With the PSF fixed, the same few
    grids come back again and again, so we keep them. The values are GalSim's own, copied,
    so the drawn image is bitwise identical to the unwrapped one.
    """

    _MAX_GRIDS = 8

    def __init__(self, profile: galsim.GSObject):
        super().__init__(profile)
        self._kgrids: OrderedDict = OrderedDict()

    def _drawKImage(self, image, jac=None):  # noqa: N802 (GalSim's name)
        b = image.bounds
        key = (b.xmin, b.xmax, b.ymin, b.ymax, image.scale, image.dtype,
               None if jac is None else jac.tobytes())
        cached = self._kgrids.get(key)
        if cached is None:
            super()._drawKImage(image, jac)
            self._kgrids[key] = image.array.copy()
            if len(self._kgrids) > self._MAX_GRIDS:
                self._kgrids.popitem(last=False)
        else:
            self._kgrids.move_to_end(key)
            np.copyto(image.array, cached)


class GalaxyRenderer:
    """Draws noiseless galaxy and PSF images, keeping GalSim's costly tables between calls.

    GalSim builds a Hankel-transform table for every new Sérsic index (tens of ms, against a
    few ms for the image itself) and its own cache holds only 100 indices. We keep one
    unit-radius ``galsim.Sersic`` per index and derive each galaxy from it by ``dilate``, which
    reuses the table; the image differs from a fresh ``galsim.Sersic(n, half_light_radius=r)``
    only by float32 rounding. PSFs are wrapped so their k-space images are reused.

    A renderer is not thread-safe; give each process its own (they are cheap to create).

    Parameters:
        max_sersics:  how many Sérsic indices to keep (each table is tens of kB).
        max_psfs:     how many PSF FWHMs to keep.
    """

    def __init__(self, max_sersics: int = 4096, max_psfs: int = 4):
        self._sersics: OrderedDict[float, galsim.Sersic] = OrderedDict()
        self._psfs: OrderedDict[float, galsim.GSObject] = OrderedDict()
        self.max_sersics = max_sersics
        self.max_psfs = max_psfs

    @staticmethod
    def _remember(cache: OrderedDict, key, make, limit):
        value = cache.get(key)
        if value is None:
            value = cache[key] = make()
            if len(cache) > limit:
                cache.popitem(last=False)
        else:
            cache.move_to_end(key)
        return value

    def psf(self, psf_fwhm: float) -> galsim.GSObject:
        """The Moffat (beta = 2) PSF of FWHM ``psf_fwhm`` arcsec."""
        return self._remember(
            self._psfs, float(psf_fwhm),
            lambda: _MemoizedKProfile(galsim.Moffat(beta=MOFFAT_BETA, fwhm=float(psf_fwhm))),
            self.max_psfs)

    def galaxy(self, flux: float, sersic_n: float, sersic_r: float, g1: float, g2: float):
        """The sheared Sérsic profile (before the PSF), in arcsec and photo-electrons."""
        unit = self._remember(
            self._sersics, float(sersic_n),
            lambda: galsim.Sersic(float(sersic_n), half_light_radius=1.0), self.max_sersics)
        return unit.dilate(float(sersic_r)).withFlux(float(flux)).shear(g1=float(g1), g2=float(g2))

    def draw(self, flux, sersic_n, sersic_r, g1, g2, psf_fwhm) -> np.ndarray:
        """Noiseless image (IMAGE_SIZE x IMAGE_SIZE float32, photo-electrons); no range checks."""
        profile = galsim.Convolve(self.galaxy(flux, sersic_n, sersic_r, g1, g2), self.psf(psf_fwhm))
        return profile.drawImage(nx=IMAGE_SIZE, ny=IMAGE_SIZE, scale=PIXEL_SCALE).array

    def draw_psf(self, psf_fwhm: float) -> np.ndarray:
        """The PSF image (unit flux, pixel response included), float32."""
        return self.psf(psf_fwhm).drawImage(nx=IMAGE_SIZE, ny=IMAGE_SIZE, scale=PIXEL_SCALE).array


@dataclass(frozen=True, eq=False)
class Stamp:
    """Where a model image is drawn: the simulation's stamp (the default) or a cutout's own.

    ``pixel_scale`` arcsec per pixel; ``shape`` (ny, nx) pixels; ``psf`` a GalSim profile (None:
    the Moffat of the caller's ``psf_fwhm``); ``pixel_included``: the PSF already holds the pixel
    response (a PSF image, `galsim.InterpolatedImage`), so GalSim samples it (``no_pixel``)
    instead of convolving with the pixel again; ``offset`` (x, y) pixels of the galaxy's centre
    from the stamp's true centre. The default draws exactly as `GalaxyRenderer.draw` does.
    """

    pixel_scale: float = PIXEL_SCALE
    shape: tuple = (IMAGE_SIZE, IMAGE_SIZE)
    psf: object = None
    pixel_included: bool = False
    offset: tuple = (0.0, 0.0)

    @property
    def is_default(self) -> bool:
        return (self.pixel_scale == PIXEL_SCALE and tuple(self.shape) == (IMAGE_SIZE, IMAGE_SIZE)
                and self.psf is None and not self.pixel_included and not any(self.offset))

    def draw(self, profile) -> np.ndarray:
        """``profile`` drawn on this stamp in double precision (GalSim's default call when
        nothing differs from the simulation's stamp)."""
        image = galsim.ImageD(int(self.shape[1]), int(self.shape[0]), scale=float(self.pixel_scale))
        options = {}
        if self.pixel_included:
            options["method"] = "no_pixel"
        if any(self.offset):
            options["offset"] = galsim.PositionD(*map(float, self.offset))
        profile.drawImage(image=image, **options)
        return image.array


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


def add_noise(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Noisy copy of ``clean``: GalSim's Poisson noise (sky 0), then Gaussian noise ``sigma``.

    ``seed`` (a positive integer) fixes the realization; the same seed gives the same noise.
    """
    if seed <= 0:
        raise InputError(f"noise seed = {seed} must be a positive integer (0 means 'random' in GalSim)")
    image = galsim.ImageF(np.array(clean, dtype=np.float32, copy=True), scale=PIXEL_SCALE)
    rng = galsim.BaseDeviate(int(seed))
    image.addNoise(galsim.PoissonNoise(rng, sky_level=0.0))
    image.addNoise(galsim.GaussianNoise(rng, sigma=float(sigma)))
    return image.array


@dataclass(frozen=True)
class Galaxy:
    """One simulated galaxy: its images and its signal-to-noise ratio."""

    clean: np.ndarray
    noisy: np.ndarray
    psf: np.ndarray
    snr: float

    @property
    def noise(self) -> np.ndarray:
        return self.noisy - self.clean


_default_renderer: GalaxyRenderer | None = None


def default_renderer() -> GalaxyRenderer:
    """A process-wide renderer, for callers that draw one image at a time."""
    global _default_renderer
    if _default_renderer is None:
        _default_renderer = GalaxyRenderer()
    return _default_renderer


def simulate(flux: float, sersic_n: float, sersic_r: float, g1: float, g2: float,
             psf_fwhm: float = 0.5, sigma: float = 200.0, seed: int = 1,
             renderer: GalaxyRenderer | None = None) -> Galaxy:
    """Simulate one galaxy with every parameter checked against `RANGES`.

    Parameters:
        flux:      total flux, photo-electrons.
        sersic_n:  Sérsic index.
        sersic_r:  half-light radius, arcsec.
        g1, g2:    reduced shear.
        psf_fwhm:  Moffat (beta = 2) FWHM, arcsec.
        sigma:     Gaussian read noise, photo-electrons per pixel.
        seed:      positive integer fixing the noise realization.
    """
    check_parameters(flux, sersic_n, sersic_r, g1, g2, psf_fwhm, sigma)
    renderer = renderer or default_renderer()
    clean = renderer.draw(flux, sersic_n, sersic_r, g1, g2, psf_fwhm)
    return Galaxy(clean=clean, noisy=add_noise(clean, sigma, seed),
                  psf=renderer.draw_psf(psf_fwhm), snr=float(snr(clean, sigma)))
