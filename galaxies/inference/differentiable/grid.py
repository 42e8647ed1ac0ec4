"""The Fourier grid GalSim would use to draw a galaxy, chosen the way GalSim chooses it.

GalSim draws a convolved profile by FFT (`galsim.GSObject.drawFFT`): an ``N x N`` image,
``N`` from the profile's ``stepk`` (the box must hold all but 0.5% of the flux), the stamp's
size and the 128-point minimum, rounded up to a good FFT size; and a k-image of
``(Nk + 1)^2`` points, ``Nk / 2 = ceil(maxk / dk)``, that is folded onto the ``N x N`` grid
(aliasing) before the inverse transform. The differentiable model draws on the same grids, so
that it reproduces GalSim's image, wrap-around of the wings and aliasing included.

``stepk`` and ``maxk`` of the parts follow GalSim's rules: a transformed profile's ``stepk`` is
the original's over the major-axis scale and its ``maxk`` over the minor-axis scale (shear
and dilation), a convolution's ``stepk`` is ``(sum stepk_i^-2)^-1/2`` and its ``maxk`` the
smallest, a shift by ``s`` makes ``stepk = pi / (pi / stepk + |s|)``. The pixel is a box of the
pixel scale. The unit Sérsic's and Moffat's values come from `galaxies.inference.differentiable.tables`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .tables import ProfileTables

__all__ = ["MINIMUM_FFT_SIZE", "MAXK_THRESHOLD", "Geometry", "stamp_offset",
           "sersic_stepk_maxk", "fft_sizes"]

#: GalSim's defaults (`galsim.GSParams`): the smallest FFT and the k-value threshold of maxk.
MINIMUM_FFT_SIZE = 128
MAXK_THRESHOLD = 1e-3


@dataclass(frozen=True)
class Geometry:
    """Where and how the model is drawn (hashable: a compiled render exists per geometry).

    ``shape`` (ny, nx) of the stamp; ``pixel_scale`` arcsec; ``fft_size`` the ``N`` of GalSim's
    real-space grid; ``k_size`` the ``Nk`` of the k-grid (even; every galaxy of a batch is
    drawn on the largest, each cut to its own extent); ``pixel``: multiply by the pixel's
    transform (False for a PSF image that already holds the pixel response).
    """

    shape: tuple[int, int]
    pixel_scale: float
    fft_size: int
    k_size: int
    pixel: bool = True

    @property
    def dk(self) -> float:
        return 2 * math.pi / (self.fft_size * self.pixel_scale)

    def stamp_origin(self) -> tuple[int, int]:
        """(y, x) of the stamp's first pixel relative to GalSim's centre pixel."""
        return stamp_origin(self.shape)


def stamp_origin(shape) -> tuple[int, int]:
    """(y, x) of a stamp's first pixel relative to GalSim's centre pixel (the pixel
    ``(n + 2) // 2`` of a side of n, counted from 1)."""
    ny, nx = shape
    return 1 - (ny + 2) // 2, 1 - (nx + 2) // 2


def stamp_offset(shape, offset=(0.0, 0.0)) -> tuple[float, float]:
    """(x, y) pixels of the profile's centre from GalSim's centre pixel: half a pixel down and
    left on an even side (GalSim centres a profile on the stamp's true centre), plus
    ``offset``."""
    ny, nx = shape
    return ((1 + nx) / 2 - (nx + 2) // 2 + offset[0], (1 + ny) / 2 - (ny + 2) // 2 + offset[1])


def sersic_stepk_maxk(tables: ProfileTables, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The unit Sérsic's ``stepk`` and ``maxk`` at indices ``n`` (linear between nodes)."""
    return (np.interp(n, tables.n_nodes, tables.sersic_stepk),
            np.interp(n, tables.n_nodes, tables.sersic_maxk))


def fft_sizes(tables: ProfileTables, n, r, g1, g2, psf_stepk, psf_maxk, shape, pixel_scale,
              offset=(0.0, 0.0), pixel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """GalSim's ``N`` and ``Nk`` for each galaxy (arrays of the broadcast shape of the inputs).

    ``psf_stepk`` and ``psf_maxk`` are the PSF's (1 / arcsec); ``offset`` (x, y) pixels from the
    stamp's centre.
    """
    n, r, g1, g2 = (np.asarray(a, dtype=float) for a in (n, r, g1, g2))
    g = np.minimum(np.hypot(g1, g2), 0.999)
    stretch = np.sqrt((1 + g) / (1 - g))  # major / minor axis scale of the shear, det 1
    unit_stepk, unit_maxk = sersic_stepk_maxk(tables, n)
    gal_stepk = unit_stepk / (r * stretch)
    gal_maxk = unit_maxk * stretch / r
    inverse = gal_stepk ** -2.0 + np.asarray(psf_stepk, float) ** -2.0
    maxk = np.minimum(gal_maxk, psf_maxk)
    if pixel:
        inverse = inverse + (math.pi / pixel_scale) ** -2.0
        maxk = np.minimum(maxk, 2.0 / (MAXK_THRESHOLD * pixel_scale))
    stepk = inverse ** -0.5
    sx, sy = stamp_offset(shape, offset)
    shift = math.hypot(sx, sy) * pixel_scale
    if shift:
        stepk = math.pi / (math.pi / stepk + shift)
    ny, nx = shape
    origin_y, origin_x = stamp_origin(shape)
    image_n = max(2 * max(abs(origin_x), abs(origin_x + nx - 1), abs(origin_y),
                          abs(origin_y + ny - 1)), nx, ny)
    good = np.ceil(2 * math.pi / (pixel_scale * stepk) * (1 - 1e-12)).astype(int)
    good = 2 * ((good + 1) // 2)
    import galsim
    sizes = np.array([max(galsim.Image.good_fft_size(max(int(v), image_n)), MINIMUM_FFT_SIZE)
                      for v in np.ravel(good)]).reshape(np.shape(good))
    dk = 2 * math.pi / (sizes * pixel_scale)
    k_sizes = np.where(sizes * dk / 2 > maxk, sizes, 2 * np.ceil(maxk / dk).astype(int))
    return sizes, k_sizes
