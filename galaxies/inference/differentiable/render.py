"""GalSim's image of a sheared Sérsic galaxy, drawn in JAX: differentiable and batched.

The image is drawn the way GalSim draws it (`galsim.GSObject.drawFFT`), on the same grids
(`galaxies.inference.differentiable.grid`):

1. on a k-grid of spacing ``dk = 2 pi / (N * pixel_scale)`` and ``(Nk + 1)^2`` points, the
   product of the galaxy's transform ``flux * F_n(r |A k|)`` (``A`` the shear matrix, ``F_n``
   the unit Sérsic of `galaxies.inference.differentiable.tables`, interpolated in n and in ``x = k r``),
   the PSF's (a Moffat of any FWHM from its table, or a fixed PSF's k-image from GalSim), the
   pixel's ``sinc(kx s / 2 pi) sinc(ky s / 2 pi)`` and the phase of the centre's offset;
2. folded onto the ``N x N`` grid (the aliasing GalSim applies when ``Nk > N``);
3. inverse FFT; the stamp is cut around GalSim's centre pixel.

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

from galaxies.conventions import GALSIM_SERSIC_N

from .grid import Geometry
from .tables import N_STEP, U_STEP, X_SCALE, ProfileTables, profile_tables

#: The first Sérsic-index node of the tables.
N_NODE0 = GALSIM_SERSIC_N[0]

__all__ = ["catmull_rom_weights", "cubic_coefficients", "lookup", "sersic_coefficients", "k_grid",
           "k_values", "moffat_k_image", "to_image", "unit_image", "k_values_and_tangents",
           "unit_image_and_jacobian",
           "device_tables", "render_fn", "moffat_fn"]


def catmull_rom_weights(t):
    """Weights of the four nodes around ``t`` in [0, 1) (Catmull-Rom, continuous slope)."""
    t2, t3 = t * t, t * t * t
    return 0.5 * jnp.stack([-t3 + 2 * t2 - t, 3 * t3 - 5 * t2 + 2, -3 * t3 + 4 * t2 + t, t3 - t2])


def cubic_coefficients(values: np.ndarray) -> np.ndarray:
    """Catmull-Rom polynomial coefficients ``c0..c3`` of each interval of a table (..., L + 3).

    ``values`` hold the nodes j = -1 .. L + 1 (`galaxies.inference.differentiable.tables.x_nodes`); on
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


def lookup(coefficients, x):
    """The interpolant of a table (`cubic_coefficients` on the nodes of
    `galaxies.inference.differentiable.tables.x_nodes`) at ``x >= 0``; 0 past the table. Plain JAX, so
    autodiff differentiates it (`k_values_and_tangents` reads the slope at the same interval)."""
    c, t, u = _segment(coefficients, x)
    return jnp.where(u < coefficients.shape[0], _horner(c, t), 0.0)


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


def _sources(targets: int, positions: np.ndarray, dummy: int) -> np.ndarray:
    """(reps, targets) indices of the positions that land on each target (``dummy`` pads)."""
    lists = [[] for _ in range(targets)]
    for index, target in enumerate(positions):
        if target >= 0:
            lists[target].append(index)
    reps = max(1, max(len(v) for v in lists))
    return np.array([[v[j] if j < len(v) else dummy for v in lists] for j in range(reps)])


@functools.lru_cache(maxsize=64)
def _fold_plan(size: int, half: int):
    """Static gather indices of `_fold` for an N = ``size`` grid and a k-grid of ``half``."""
    my = np.arange(-half, half + 1)
    rows = _sources(size, my % size, dummy=2 * half + 1)
    mx = np.arange(0, half + 1)
    columns = size // 2 + 1
    direct = np.where(mx % size < columns, mx % size, -1)
    mirror = np.where((mx > 0) & ((-mx) % size < columns), (-mx) % size, -1)
    return (rows, (-np.arange(size)) % size, _sources(columns, direct, dummy=half + 1),
            _sources(columns, mirror, dummy=half + 1))


def _fold(values, geometry: Geometry):
    """Sum half-plane k-values (..., Nk+1 rows ky, Nk/2+1 columns kx >= 0) onto the
    (..., N, N/2+1) grid that irfft reads, by index modulo N (GalSim's wrap); the values at
    kx < 0 are the complex conjugates of those at -k (the image is real)."""
    size, half = geometry.fft_size, geometry.k_size // 2
    rows, flip, direct, mirror = _fold_plan(size, half)
    lead = values.shape[:-2]
    padded = jnp.concatenate([values, jnp.zeros(lead + (1, values.shape[-1]), values.dtype)], -2)
    folded = padded[..., rows, :].sum(axis=-3)  # (..., N, Nk/2+1)
    partner = jnp.conj(folded[..., flip, :])  # the value at -k, for the columns of kx < 0
    zero = jnp.zeros(lead + (size, 1), values.dtype)
    folded = jnp.concatenate([folded, zero], axis=-1)
    partner = jnp.concatenate([partner, zero], axis=-1)
    return folded[..., direct].sum(axis=-2) + partner[..., mirror].sum(axis=-2)


def _pixel_and_phase(m, geometry: Geometry, offset):
    """One axis of the separable factor: the pixel's sinc (if drawn) and the centre's phase."""
    k = m * geometry.dk
    factor = jnp.exp(-1j * k * (offset * geometry.pixel_scale))
    if geometry.pixel:
        factor = factor * np.sinc(k * geometry.pixel_scale / (2 * math.pi))
    return factor


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
    x = _coordinates(jnp.stack([r, g1, g2]), kx, ky)
    values = lookup(sersic_coefficients(tables["sersic"], N_NODE0, N_STEP, n), x) * psf
    inside = (mx[None, :] <= cut) & (np.abs(my)[:, None] <= cut)
    return jnp.where(inside, values, 0.0)


def moffat_k_image(fwhm, geometry: Geometry, tables: dict):
    """The Moffat (beta = 2) PSF of FWHM ``fwhm`` arcsec on the half k-grid (real)."""
    mx, my = k_grid(geometry)
    kabs = geometry.dk * np.sqrt(mx[None, :] ** 2 + my[:, None] ** 2)
    return lookup(tables["moffat"], kabs * fwhm)


def to_image(values, offset, geometry: Geometry):
    """Stamps (..., ny, nx) of half-plane k-values (..., Nk+1, Nk/2+1): times the pixel's
    transform and the phase of the centre's ``offset`` (x, y pixels from GalSim's centre
    pixel), folded onto GalSim's N x N grid, inverse FFT, cut around the centre pixel."""
    mx, my = k_grid(geometry)
    values = (values * _pixel_and_phase(my, geometry, offset[1])[:, None]
              * _pixel_and_phase(mx, geometry, offset[0])[None, :])
    size = geometry.fft_size
    full = jnp.fft.irfft2(_fold(values, geometry), s=(size, size))
    y0, x0 = geometry.stamp_origin()
    ny, nx = geometry.shape
    rows, columns = (np.arange(ny) + y0) % size, (np.arange(nx) + x0) % size
    return full[..., rows, :][..., columns]


def unit_image(params, psf, cut, offset, geometry: Geometry, tables: dict):
    """One unit-flux image (ny, nx) at ``params = (n, r, g1, g2)`` (see `k_values`)."""
    return to_image(k_values(params, psf, cut, geometry, tables), offset, geometry)


def _coordinates(shape_params, kx, ky):
    """``x = r |A k|`` at every k-grid point for ``shape_params = (r, g1, g2)``."""
    r, g1, g2 = shape_params
    norm = 1.0 / jnp.sqrt(1.0 - g1 * g1 - g2 * g2)
    ax = ((1 + g1) * kx + g2 * ky) * norm
    ay = (g2 * kx + (1 - g1) * ky) * norm
    squared = ax * ax + ay * ay
    safe = jnp.where(squared > 0, squared, 1.0)  # no 0 * inf in the derivative at k = 0
    return jnp.where(squared > 0, r * jnp.sqrt(safe), 0.0)


def k_values_and_tangents(params, psf, cut, geometry: Geometry, tables: dict):
    """`k_values` and its derivatives in n, r, g1, g2, stacked (5, Nk+1, Nk/2+1).

    Forward-mode autodiff, arranged so that the table is read once per point: the derivative
    in n is the table of the derivative of the Catmull-Rom weights (``jax.jvp`` of
    `sersic_coefficients`), read at the same interval; those in r, g1, g2 are the profile's
    slope times the derivatives of ``x = r |A k|`` (``jax.jvp`` of the coordinates).
    """
    n, r, g1, g2 = params
    mx, my = k_grid(geometry)
    kx, ky = (mx * geometry.dk)[None, :], (my * geometry.dk)[:, None]
    x, tangent = jax.linearize(lambda q: _coordinates(q, kx, ky), jnp.stack([r, g1, g2]))
    dx = jax.vmap(tangent)(jnp.eye(3, dtype=x.dtype))
    coefficients, d_coefficients = jax.jvp(
        lambda m: sersic_coefficients(tables["sersic"], N_NODE0, N_STEP, m), (n,),
        (jnp.ones_like(n),))
    c, t, u = _segment(coefficients, x)
    dc, _, _ = _segment(d_coefficients, x)
    slope = _horner_dt(c, t) / (U_STEP * (X_SCALE + x))
    inside = (mx[None, :] <= cut) & (np.abs(my)[:, None] <= cut) & (u < coefficients.shape[0])
    factor = jnp.where(inside, psf, 0.0)
    return jnp.concatenate([jnp.stack([_horner(c, t), _horner(dc, t)]) * factor,
                            slope * dx * factor])


def unit_image_and_jacobian(params, psf, cut, offset, geometry: Geometry, tables: dict):
    """The unit image (ny, nx) and its derivatives in n, r, g1, g2 (4, ny, nx): the k-space
    tangents of `k_values_and_tangents`, mapped to images by the (linear) fold and FFT."""
    stack = k_values_and_tangents(params, psf, cut, geometry, tables)
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
