"""GalSim's image of one galaxy: a sheared Sérsic profile seen through a Moffat PSF, with noise,
drawn under the project's conventions (`galaxies.conventions`).

Rendering is the costly part of everything downstream (data generation, the maximum-likelihood
fit, the Cramér–Rao bound), so `GalaxyRenderer` keeps what GalSim would otherwise rebuild for
every image, without changing a single pixel of the result (see its docstring).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import galsim
import numpy as np

from galaxies.conventions import IMAGE_SIZE, MOFFAT_BETA, PIXEL_SCALE, check_parameters, snr
from galaxies.runtime.errors import InputError


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

    Parameters
    ----------
    max_sersics
        how many Sérsic indices to keep (each table is tens of kB).
    max_psfs
        how many PSF FWHMs to keep.
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

    Parameters
    ----------
    flux : float
        Total flux, photo-electrons.
    sersic_n : float
        Sérsic index.
    sersic_r : float
        Half-light radius, arcsec.
    g1, g2 : float
        Reduced shear.
    psf_fwhm : float
        Moffat (beta = 2) FWHM, arcsec.
    sigma : float
        Gaussian read noise, photo-electrons per pixel.
    seed : int
        A positive integer fixing the noise realization.

    Returns
    -------
    Galaxy
        The noiseless and noisy images (64 x 64, photo-electrons), the PSF's image and the SNR.

    Raises
    ------
    ParameterRangeError
        For the first parameter outside the simulated ranges.

    Examples
    --------
    >>> galaxy = simulate(1e5, 3.0, 0.3, -0.069, 0.15, psf_fwhm=0.5, sigma=200.0, seed=7)
    >>> galaxy.noisy.shape, round(galaxy.snr)
    ((64, 64), 60)
    """
    check_parameters(flux, sersic_n, sersic_r, g1, g2, psf_fwhm, sigma)
    renderer = renderer or default_renderer()
    clean = renderer.draw(flux, sersic_n, sersic_r, g1, g2, psf_fwhm)
    return Galaxy(clean=clean, noisy=add_noise(clean, sigma, seed),
                  psf=renderer.draw_psf(psf_fwhm), snr=float(snr(clean, sigma)))
