"""GalSim's image of a sheared Sérsic galaxy, drawn in JAX: differentiable and batched.

The image is drawn the way GalSim draws it (`galsim.GSObject.drawFFT`), on the same grids
(`galaxies.differentiable.grid`):

1. on a k-grid of spacing ``dk = 2 pi / (N * pixel_scale)`` and ``(Nk + 1)^2`` points, the
   product of the galaxy's transform ``flux * F_n(r |A k|)`` (``A`` the shear matrix, ``F_n``
   the unit Sérsic of `galaxies.differentiable.tables`, interpolated in n and in ``x = k r``),
   the PSF's (a Moffat of any FWHM from its table, or a fixed PSF's k-image from GalSim), the
   pixel's ``sinc(kx s / 2 pi) sinc(ky s / 2 pi)`` and the phase of the centre's offset;
2. transformed back to the stamp's pixels only, by a matrix product per axis: at pixel centres
   the inverse transform is periodic in k with GalSim's period, so this one sum is GalSim's
   fold onto its ``N x N`` grid (aliasing), its inverse FFT and its cut of the stamp.

Every step is a JAX array operation, so ``jax.vmap`` batches galaxies, ``jax.jit`` compiles
one function per geometry and ``jax.jvp`` / ``jax.jacfwd`` give exact derivatives in every
parameter. Interpolation is Catmull-Rom (C1) in n and in ``x``: the derivative in n is
continuous, as a gradient-based fit and HMC want.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .grid import Geometry
from ..simulate import GALSIM_SERSIC_N
from .tables import N_STEP, U_STEP, X_SCALE, ProfileTables, profile_tables

#: The first Sérsic-index node of the tables.
N_NODE0 = GALSIM_SERSIC_N[0]

__all__ = ["catmull_rom_weights", "cubic_coefficients", "lookup", "sersic_coefficients", "k_grid",
           "k_values", "moffat_k_image", "to_image", "unit_image", "unit_image_and_jacobian",
           "device_tables", "render_fn", "moffat_fn"]


def catmull_rom_weights(t):
    """Weights of the four nodes around ``t`` in [0, 1) (Catmull-Rom, continuous slope)."""
    t2, t3 = t * t, t * t * t
    return 0.5 * jnp.stack([-t3 + 2 * t2 - t, 3 * t3 - 5 * t2 + 2, -3 * t3 + 4 * t2 + t, t3 - t2])


def cubic_coefficients(values: np.ndarray) -> np.ndarray:
    """Catmull-Rom polynomial coefficients ``c0..c3`` of each interval of a table (..., L + 3).

    ``values`` hold the nodes j = -1 .. L + 1 (`galaxies.differentiable.tables.x_nodes`); on
    interval j (nodes j and j + 1) the interpolant is ``c0 + c1 t + c2 t^2 + c3 t^3``, t in
    [0, 1]. Returns (..., L, 4).
    """
    v = np.asarray(values, dtype=np.float64)
    before, p0, p1, after = v[..., :-3], v[..., 1:-2], v[..., 2:-1], v[..., 3:]
    c1 = 0.5 * (p1 - before)
    c2 = before - 2.5 * p0 + 2 * p1 - 0.5 * after
    c3 = 0.5 * (-before + 3 * p0 - 3 * p1 + after)
    return np.stack([p0, c1, c2, c3], axis=-1)


def _horner(c, t):
    return ((c[..., 3] * t + c[..., 2]) * t + c[..., 1]) * t + c[..., 0]


def _horner_dt(c, t):
    return (3 * c[..., 3] * t + 2 * c[..., 2]) * t + c[..., 1]


def _segment(coefficients, x):
    u = jnp.log1p(x / X_SCALE) / U_STEP
    i = jnp.clip(jnp.floor(u).astype(jnp.int32), 0, coefficients.shape[0] - 1)
    return coefficients[i], jnp.clip(u - i, 0.0, 1.0), u


@jax.custom_jvp
def lookup(coefficients, x):
    """The interpolant of a table (`cubic_coefficients` on the nodes of
    `galaxies.differentiable.tables.x_nodes`) at ``x >= 0``; 0 past the table."""
    c, t, u = _segment(coefficients, x)
    return jnp.where(u < coefficients.shape[0], _horner(c, t), 0.0)


@lookup.defjvp
def _lookup_jvp(primals, tangents):
    coefficients, x = primals
    d_coefficients, dx = tangents
    c, t, u = _segment(coefficients, x)
    dc, _, _ = _segment(d_coefficients, x)
    du_dx = 1.0 / (U_STEP * (X_SCALE + x))
    inside = u < coefficients.shape[0]
    value = jnp.where(inside, _horner(c, t), 0.0)
    return value, jnp.where(inside, _horner(dc, t) + _horner_dt(c, t) * du_dx * dx, 0.0)


def sersic_coefficients(table: jnp.ndarray, n_nodes0: float, n_step: float, n):
    """Coefficients (L, 4) of the unit Sérsic's Fourier profile at index ``n``: the Catmull-Rom
    combination in n of the nodes' tables (``table`` (nodes, L, 4))."""
    u = (n - n_nodes0) / n_step
    i = jnp.clip(jnp.floor(u).astype(jnp.int32), 1, table.shape[0] - 3)
    w = catmull_rom_weights(u - i)
    rows = jax.lax.dynamic_slice_in_dim(table, i - 1, 4, axis=0)
    return jnp.tensordot(w, rows, 1)


def k_grid(geometry: Geometry):
    """Indices of the k-grid's points: ``mx`` (0 .. Nk/2, the half plane GalSim stores) and
    ``my`` (-Nk/2 .. Nk/2); k = m * dk."""
    half = geometry.k_size // 2
    return np.arange(0, half + 1), np.arange(-half, half + 1)


def _axis_matrices(m, pixels: int, origin: int, geometry: Geometry, offset):
    """The inverse transform along one axis, from the k-grid's indices ``m`` to the stamp's
    ``pixels``: the real and imaginary parts of ``exp(i k (x - offset)) / N`` times the pixel's
    sinc, each (len(m), pixels).

    Pixel positions ``x = (j + origin) * scale`` make ``exp(i k x)`` periodic in m with period
    N, so the sum over an (Nk+1)-point grid is GalSim's fold (aliasing) and inverse FFT at once.
    """
    k = m * geometry.dk
    weight = np.full(k.shape, 1.0 / geometry.fft_size)
    if geometry.pixel:
        weight = weight * np.sinc(k * geometry.pixel_scale / (2 * math.pi))
    x = (np.arange(pixels) + origin - offset) * geometry.pixel_scale
    angle = k[:, None] * x[None, :]
    return jnp.cos(angle) * weight[:, None], jnp.sin(angle) * weight[:, None]


def k_values(params, psf, cut, geometry: Geometry, tables: dict):
    """The unit-flux galaxy times the PSF on GalSim's half k-grid ((Nk+1, Nk/2+1), real): the
    nonlinear part of the model, the one autodiff goes through.

    ``params = (n, r, g1, g2)``; ``psf`` the PSF's transform on the same grid (`moffat_k_image`,
    or a fixed PSF's from GalSim); ``cut`` the galaxy's own ``Nk / 2`` (k-values beyond are
    dropped: GalSim does not draw them). The pixel and the centre's offset are separable
    factors, applied by `to_image`.
    """
    n, r, g1, g2 = params
    mx, my = k_grid(geometry)
    kx, ky = (mx * geometry.dk)[None, :], (my * geometry.dk)[:, None]
    norm = 1.0 / jnp.sqrt(1.0 - g1 * g1 - g2 * g2)
    ax = ((1 + g1) * kx + g2 * ky) * norm
    ay = (g2 * kx + (1 - g1) * ky) * norm
    x = r * jnp.sqrt(ax * ax + ay * ay)
    values = lookup(sersic_coefficients(tables["sersic"], N_NODE0, N_STEP, n), x) * psf
    inside = (mx[None, :] <= cut) & (np.abs(my)[:, None] <= cut)
    return jnp.where(inside, values, 0.0)


def moffat_k_image(fwhm, geometry: Geometry, tables: dict):
    """The Moffat (beta = 2) PSF of FWHM ``fwhm`` arcsec on the half k-grid (real)."""
    mx, my = k_grid(geometry)
    kabs = geometry.dk * np.sqrt(mx[None, :] ** 2 + my[:, None] ** 2)
    return lookup(tables["moffat"], kabs * fwhm)


def to_image(values, offset, geometry: Geometry):
    """The stamps (..., ny, nx) of half-plane k-values (..., Nk+1, Nk/2+1): the PSF-convolved
    profile times the pixel's transform, shifted by ``offset`` (x, y) pixels from GalSim's
    centre pixel, folded and inverse-transformed as GalSim does, as matrix products per axis.

    The values at kx < 0 are the conjugates of those at -k (the image is real): the columns
    kx > 0 count twice and the real part is kept.
    """
    mx, my = k_grid(geometry)
    y0, x0 = geometry.stamp_origin()
    ny, nx = geometry.shape
    cy, sy = _axis_matrices(my, ny, y0, geometry, offset[1])
    cx, sx = _axis_matrices(mx, nx, x0, geometry, offset[0])
    twice = np.where(mx > 0, 2.0, 1.0)[:, None]
    cx, sx = cx * twice, sx * twice

    def product(left, v, right):
        return jnp.einsum("ay,...ab,bx->...yx", left, v, right)

    if jnp.iscomplexobj(values):  # a PSF image's transform need not be real
        re, im = jnp.real(values), jnp.imag(values)
        return (product(cy, re, cx) - product(sy, re, sx)
                - product(cy, im, sx) - product(sy, im, cx))
    return product(cy, values, cx) - product(sy, values, sx)


def unit_image(params, psf, cut, offset, geometry: Geometry, tables: dict):
    """One unit-flux image (ny, nx) at ``params = (n, r, g1, g2)`` (see `k_values`)."""
    return to_image(k_values(params, psf, cut, geometry, tables), offset, geometry)


def unit_image_and_jacobian(params, psf, cut, offset, geometry: Geometry, tables: dict):
    """The unit image (ny, nx) and its derivatives in n, r, g1, g2 (4, ny, nx).

    Forward-mode autodiff through the nonlinear k-space model (`k_values`); the inverse
    transform is linear, so it maps the four tangents to images exactly, in one batch.
    """
    values, tangent = jax.linearize(lambda p: k_values(p, psf, cut, geometry, tables), params)
    stack = jnp.concatenate([values[None], jax.vmap(tangent)(jnp.eye(4, dtype=params.dtype))])
    images = to_image(stack, offset, geometry)
    return images[0], images[1:]


def device_tables(tables: ProfileTables | None = None, dtype=jnp.float32) -> dict:
    """The tables as device arrays of polynomial coefficients, as `unit_image` reads them."""
    tables = tables or profile_tables()
    return {"sersic": jnp.asarray(cubic_coefficients(tables.sersic), dtype),
            "moffat": jnp.asarray(cubic_coefficients(tables.moffat), dtype)}


@functools.lru_cache(maxsize=64)
def render_fn(geometry: Geometry, shared_psf: bool, jacobian: bool):
    """A compiled batched render for one geometry.

    The function takes ``(params (B, 4), psf, cut (B,), offset (2,), tables)`` with ``psf`` the
    PSFs' k-images (B, Nk+1, Nk/2+1) or, with ``shared_psf``, one for the whole batch; it
    returns the unit images (B, ny, nx) and, with ``jacobian``, their derivatives in n, r, g1,
    g2 (B, 4, ny, nx).
    """
    one = unit_image_and_jacobian if jacobian else unit_image
    psf_axis = None if shared_psf else 0
    def draw(params, psf, cut, offset, tables):
        return one(params, psf, cut, offset, geometry, tables)

    return jax.jit(jax.vmap(draw, in_axes=(0, psf_axis, 0, None, None)))


@functools.lru_cache(maxsize=64)
def moffat_fn(geometry: Geometry):
    """A compiled batched `moffat_k_image`: ``(fwhm (B,), tables) -> (B, Nk+1, Nk/2+1)``."""
    return jax.jit(jax.vmap(lambda fwhm, tables: moffat_k_image(fwhm, geometry, tables),
                            in_axes=(0, None)))
