"""The differentiable model of a batch of galaxy images: ``mu(theta)`` and its Jacobian.

`DifferentiableModel` is what the fit, the refinement, the bound and the posterior call. It
takes label-order parameters ``flux, sersic_n, sersic_r, g1, g2`` (B, 5) and each galaxy's PSF
(a Moffat FWHM, or one GalSim PSF for the whole batch, as `galaxies measure` has from a PSF
image), and returns float64 NumPy images (B, ny, nx) in photo-electrons, GalSim's to float32
rounding, and their derivatives (B, 5, ny, nx) in label units.

Host-side planning: GalSim's FFT grid depends on the galaxy (`galaxies.inference.differentiable.grid`),
and a compiled function has static shapes. Galaxies are grouped by their ``N``, drawn on the
largest ``Nk`` of their group (each cut to its own) rounded up to one of a few sizes, in
chunks of `CHUNK` rows (the last padded to a power of two), so each geometry compiles a few
times at most; compiled
functions are also kept on disk (`enable_compilation_cache`) for the next process. The grid is chosen at ``plan_at``
parameters (the start of a fit, the truth of a validation draw) and held while the parameters
move, as the GalSim path holds its FFT size: the likelihood must not jump when GalSim's choice
of grid would.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from galaxies.conventions import IMAGE_SIZE, PIXEL_SCALE

from . import render
from .grid import Geometry, fft_sizes, stamp_offset
from .tables import profile_tables

__all__ = ["DifferentiableModel", "Plan"]

#: Galaxies per compiled call (a smaller chunk is padded to the next power of two); the cost
#: per galaxy hardly depends on it on a CPU, and each size is a compilation of its own.
CHUNK = 8
#: ``Nk`` of a group is rounded up to a multiple of ``N / K_STEPS`` (few distinct compiled
#: shapes: every subset of a batch that a fit's iterations draw reuses them).
K_STEPS = 8


@dataclass(frozen=True)
class Plan:
    """Which grid each galaxy is drawn on: ``fft_size`` and ``cut`` (its ``Nk / 2``) per row."""

    fft_size: np.ndarray
    cut: np.ndarray

    def subset(self, rows) -> "Plan":
        """The plan of some of the galaxies (``rows``, indices or a mask)."""
        return Plan(fft_size=self.fft_size[rows], cut=self.cut[rows])

    def groups(self):
        """(N, rows) for each FFT size, rows in order."""
        for size in np.unique(self.fft_size):
            yield int(size), np.flatnonzero(self.fft_size == size)


class DifferentiableModel:
    """GalSim's images of sheared Sérsic galaxies, batched and differentiable (see module).

    Parameters
    ----------
    shape
        (ny, nx) of the stamp; default the simulation's 64 x 64.
    pixel_scale
        arcsec per pixel; default the simulation's.
    psf
        a GalSim profile shared by every galaxy (for example a PSF image's
        `galsim.InterpolatedImage`), or None: a Moffat (beta = 2) of each row's ``psf_fwhm``.
    pixel_included
        the PSF already holds the pixel response (a PSF image): the pixel is not convolved again
        (GalSim's ``method="no_pixel"``).
    offset
        (x, y) pixels of the galaxy's centre from the stamp's true centre.
    chunk
        galaxies per compiled call (`CHUNK`; larger on a GPU).
    """

    def __init__(self, shape=(IMAGE_SIZE, IMAGE_SIZE), pixel_scale: float = PIXEL_SCALE,
                 psf=None, pixel_included: bool = False, offset=(0.0, 0.0), chunk: int = CHUNK):
        self.shape = (int(shape[0]), int(shape[1]))
        self.pixel_scale = float(pixel_scale)
        self.psf = psf
        self.pixel = not pixel_included
        self.chunk = int(chunk)
        self.user_offset = (float(offset[0]), float(offset[1]))
        self.offset = stamp_offset(self.shape, self.user_offset)
        enable_compilation_cache()
        self.tables = profile_tables()
        self._device_tables = render.device_tables(self.tables)
        self._psf_images: dict = {}
        self._moffats: dict = {}

    # ------------------------------------------------------------------ planning

    def _psf_scales(self, psf_fwhm):
        if self.psf is not None:
            return self.psf.stepk, self.psf.maxk
        fwhm = np.asarray(psf_fwhm, dtype=float)
        return self.tables.moffat_stepk / fwhm, self.tables.moffat_maxk / fwhm

    def plan(self, theta, psf_fwhm=None) -> Plan:
        """GalSim's grids for galaxies at ``theta`` (B, 5) with PSFs ``psf_fwhm`` (B,)."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        psf_stepk, psf_maxk = self._psf_scales(psf_fwhm)
        sizes, k_sizes = fft_sizes(self.tables, theta[:, 1], theta[:, 2], theta[:, 3],
                                   theta[:, 4], psf_stepk, psf_maxk, self.shape,
                                   self.pixel_scale, self.user_offset, self.pixel)
        return Plan(fft_size=np.asarray(sizes, int), cut=np.asarray(k_sizes, int) // 2)

    def _geometry(self, size: int, cuts: np.ndarray) -> Geometry:
        step = max(2, size // K_STEPS)
        k_size = -(-int(2 * cuts.max()) // step) * step
        return Geometry(self.shape, self.pixel_scale, size, k_size, self.pixel)

    def _shared_psf_image(self, geometry: Geometry):
        """The shared GalSim PSF's transform on the geometry's half k-grid (once each)."""
        import galsim
        cached = self._psf_images.get(geometry)
        if cached is None:
            half = geometry.k_size // 2
            image = galsim.ImageCD(bounds=galsim.BoundsI(0, half, -half, half), scale=geometry.dk)
            self.psf.drawKImage(image=image, recenter=False)
            values = image.array
            if np.allclose(values.imag, 0.0, atol=1e-12 * np.abs(values).max()):
                values = values.real
            cached = self._psf_images[geometry] = jnp.asarray(
                values, jnp.complex64 if np.iscomplexobj(values) else jnp.float32)
        return cached

    def _moffat_images(self, geometry: Geometry, fwhm: np.ndarray):
        """The Moffats' transforms on the geometry's grid; the last few batches are kept (a
        fit draws the same galaxies, so the same PSFs, at every step)."""
        key = (geometry, fwhm.astype(np.float32).tobytes())
        cached = self._moffats.get(key)
        if cached is None:
            cached = render.moffat_fn(geometry)(jnp.asarray(fwhm, jnp.float32),
                                                self._device_tables)
            self._moffats[key] = cached
            if len(self._moffats) > 16:
                self._moffats.pop(next(iter(self._moffats)))
        return cached

    # ------------------------------------------------------------------ drawing

    def _draw(self, theta, psf_fwhm, plan: Plan | None, jacobian: bool):
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        rows = len(theta)
        fwhm = None if self.psf is not None else np.broadcast_to(
            np.asarray(psf_fwhm, dtype=float), (rows,))
        plan = plan or self.plan(theta, fwhm)
        images = np.empty((rows,) + self.shape)
        jac = np.empty((rows, 5) + self.shape) if jacobian else None
        offset = jnp.asarray(self.offset, jnp.float32)
        for size, members in plan.groups():
            geometry = self._geometry(size, plan.cut[members])
            function = render.render_fn(geometry, self.psf is not None, jacobian)
            for start in range(0, len(members), self.chunk):
                chunk = members[start:start + self.chunk]
                rows = min(self.chunk, 1 << (len(chunk) - 1).bit_length())  # 1, 2, 4, 8
                padded = np.concatenate([chunk, np.repeat(chunk[:1], rows - len(chunk))])
                params = jnp.asarray(theta[padded, 1:], jnp.float32)
                if self.psf is not None:
                    psf = self._shared_psf_image(geometry)
                else:
                    psf = self._moffat_images(geometry, fwhm[padded])
                out = function(params, psf, jnp.asarray(plan.cut[padded], jnp.int32), offset,
                               self._device_tables)
                flux = theta[chunk, 0]
                if jacobian:
                    unit, d_unit = (np.asarray(a[:len(chunk)], np.float64) for a in out)
                    jac[chunk, 0] = unit
                    jac[chunk, 1:] = flux[:, None, None, None] * d_unit
                else:
                    unit = np.asarray(out[:len(chunk)], np.float64)
                images[chunk] = flux[:, None, None] * unit
        return images, jac

    def images(self, theta, psf_fwhm=None, plan: Plan | None = None) -> np.ndarray:
        """Noiseless images (B, ny, nx) of ``theta`` (B, 5), photo-electrons."""
        return self._draw(theta, psf_fwhm, plan, jacobian=False)[0]

    def images_and_jacobians(self, theta, psf_fwhm=None, plan: Plan | None = None):
        """Images (B, ny, nx) and their derivatives in flux, n, r, g1, g2 (B, 5, ny, nx)."""
        return self._draw(theta, psf_fwhm, plan, jacobian=True)


def enable_compilation_cache() -> None:
    """Keep JAX's compiled functions on disk between processes, beside the tables (unless the
    process chose a cache of its own)."""
    from .tables import cache_path
    if jax.config.jax_compilation_cache_dir is None:
        jax.config.update("jax_compilation_cache_dir", str(cache_path().parent / "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
