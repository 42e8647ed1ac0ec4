"""The Cramér–Rao bound of a batch of galaxies from the differentiable model's exact Jacobians.

The same Fisher matrix as `galaxies.inference.crb` (a Gaussian of variance ``V = sigma^2 + mu / gain``
per pixel, the information of the variance included), with ``d mu / d theta`` from forward-mode
autodiff instead of central differences of GalSim renders: no step to choose, and one batched
call for a whole data set.
"""
from __future__ import annotations

import numpy as np

from galaxies.runtime.errors import InputError

from .model import DifferentiableModel

__all__ = ["fisher_matrices", "covariances", "cramer_rao_bounds"]


def fisher_matrices(mu: np.ndarray, jac: np.ndarray, sigma, poisson: bool = True,
                    gain: float = 1.0) -> np.ndarray:
    """Fisher matrices (B, 5, 5) of images ``mu`` (B, ny, nx) with derivatives ``jac``
    (B, 5, ny, nx); ``sigma`` per galaxy (B,) or one number, or maps (B, ny, nx) with ``inf``
    for masked pixels."""
    sigma = np.asarray(sigma, dtype=np.float64)
    if sigma.ndim == 1:
        sigma = sigma[:, None, None]
    if poisson:
        variance = sigma**2 + np.maximum(mu, 0.0) / gain
        weight = 1.0 / variance + 1.0 / (2.0 * gain**2 * variance**2)
    else:
        weight = np.broadcast_to(1.0 / sigma**2, mu.shape)
    flat = jac.reshape(jac.shape[0], jac.shape[1], -1)
    return np.matmul(flat * weight.reshape(len(mu), 1, -1), flat.transpose(0, 2, 1))


def covariances(fisher: np.ndarray) -> np.ndarray:
    """Inverses of Fisher matrices (B, k, k), scaled to unit diagonal first (flux ~1e5 and
    shear ~0.1 differ by 1e6); NaN where a matrix is singular."""
    diag = np.sqrt(np.maximum(np.einsum("bii->bi", fisher), 1e-300))
    scale = 1.0 / diag
    scaled = fisher * scale[:, :, None] * scale[:, None, :]
    out = np.full_like(fisher, np.nan)
    for b, matrix in enumerate(scaled):
        try:
            out[b] = np.linalg.inv(matrix) * np.outer(scale[b], scale[b])
        except np.linalg.LinAlgError:
            pass
    return out


def cramer_rao_bounds(theta, psf_fwhm, sigma, model: DifferentiableModel | None = None,
                      poisson: bool = True, gain: float = 1.0) -> np.ndarray:
    """The bound (B, 5) on ``flux, sersic_n, sersic_r, g1, g2`` of galaxies ``theta`` (B, 5)
    with PSFs ``psf_fwhm`` and read noise ``sigma`` (per galaxy or one number)."""
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    if theta.shape[1] != 5 or not np.all(np.isfinite(theta)):
        raise InputError(f"theta has shape {theta.shape} or non-finite values; expected (B, 5) "
                         f"finite labels (flux, sersic_n, sersic_r, g1, g2)")
    model = model or DifferentiableModel()
    mu, jac = model.images_and_jacobians(theta, psf_fwhm)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (len(theta),))
    cov = covariances(fisher_matrices(mu, jac, sigma, poisson, gain))
    return np.sqrt(np.einsum("bii->bi", cov))
