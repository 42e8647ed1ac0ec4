"""Each galaxy's posterior under the training prior, by importance sampling on the fast model.

For one noisy image the posterior of the labels under the random recipes' prior
(`galaxies.inference.posterior.log_prior`: the generator's box, the shear's ``1 / |g|`` density, the SNR
window) is reached from the Laplace approximation at the maximum-likelihood estimate: the
proposal is `galaxies.inference.posterior.Proposal`, a mixture of Gaussians around the fit with its
Fisher covariance inflated (`INFLATE`), and each draw weighs
``likelihood x prior / proposal`` with the project's likelihood (a Gaussian of variance
``sigma^2 + mu`` per pixel, its ``log V`` term included). Every draw is one image of the
differentiable model, drawn in batches: a few thousand draws cost about a second, so the
posterior mean and width of hundreds of galaxies are within reach. More draws are added, up to
``max_samples``, until the effective sample size reaches ``min_ess``.

The posterior mean is the estimator a network trained with the squared error converges to, so
it is the reference the networks are judged against. On the per-galaxy normalized metric (each
error over the bound at the truth, ``c(theta)``) the best estimator is another one: the minimizer
of ``E[(t - theta)^2 / c(theta)^2 | image]``, the posterior mean of theta weighted by
``1 / c(theta)^2``. With ``bound_draws`` it is estimated as well (``weighted_mean``): that
many draws are resampled by their weights and the bound computed at each (one Jacobian each);
``log(1 / c^2)``, smooth across a posterior a few bounds wide, is fitted linear in theta on
them, and every draw's importance weight is multiplied by that fit: every draw counts, not
only the resampled few, whose own ratio ``mean(theta u) / mean(u)`` would carry their
resampling noise into each galaxy's estimate. For a Gaussian posterior whose ``log c`` is
linear the fit is exact (the mean moves by the covariance times the slope).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from galaxies.runtime.errors import InputError

from ..posterior import Proposal, log_prior
from .model import DifferentiableModel

__all__ = ["INFLATE", "Posterior", "posterior_moments"]

#: Scales of the proposal's Gaussians, in units of the Fisher covariance at the fit.
INFLATE = (1.2, 2.0)


@dataclass
class Posterior:
    """Per galaxy: posterior ``mean`` and ``std`` (B, 5) in label order, the effective sample
    size ``ess`` and the draws used (B,), the CPU seconds per galaxy, and the posterior mean
    weighted by the inverse squared bound, ``weighted_mean`` (B, 5; NaN unless asked for)."""

    mean: np.ndarray
    std: np.ndarray
    ess: np.ndarray
    draws: np.ndarray
    seconds: np.ndarray
    weighted_mean: np.ndarray


def _log_weights(image, sigma, theta, log_q, mu, shear_density) -> np.ndarray:
    flat = mu.reshape(len(mu), -1)
    variance = sigma**2 + np.maximum(flat, 0.0)
    residual = image.ravel()[None, :] - flat
    log_like = -0.5 * np.sum(residual**2 / variance + np.log(variance), axis=1)
    snr = np.sqrt(np.sum(flat**2, axis=1)) / sigma
    return log_like + log_prior(theta, snr, shear_density) - log_q


def _bound_weighted_shift(theta, w, draws, rng, psf, sigma, model) -> np.ndarray:
    """The bound-weighted posterior mean less the posterior mean (5,): the bound at ``draws``
    of ``theta`` resampled by the weights ``w``, ``log(1 / c^2)`` fitted linear in theta on
    them, and that fit's weights on every draw (module)."""
    from .bound import cramer_rao_bounds

    picked = theta[rng.choice(len(theta), size=draws, p=w)]
    bound = cramer_rao_bounds(picked, None if psf is None else np.full(draws, psf), sigma,
                              model=model)
    ok = np.isfinite(bound).all(axis=1) & (bound > 0).all(axis=1)
    if ok.sum() < 2 * (theta.shape[1] + 1):
        return np.full(5, np.nan)
    centre = w @ theta
    scale = np.sqrt(np.maximum(w @ (theta - centre) ** 2, 1e-300))

    def design(t):
        return np.column_stack([np.ones(len(t)), (t - centre) / scale])

    coef = np.linalg.lstsq(design(picked[ok]), -2.0 * np.log(bound[ok]), rcond=None)[0]
    log_u = design(theta) @ coef
    tilted = w[:, None] * np.exp(log_u - log_u.max(axis=0))
    tilted /= tilted.sum(axis=0)
    return np.einsum("nj,nj->j", tilted, theta) - centre


def posterior_moments(images, psf_fwhm, sigma, centre, covariance, samples: int = 1024,
                      max_samples: int = 8192, min_ess: float = 200.0, seed: int = 0,
                      shear_density: bool = True, bound_draws: int = 0,
                      model: DifferentiableModel | None = None) -> Posterior:
    """Posterior mean and standard deviation of each of ``images`` (B, ny, nx).

    Parameters
    ----------
    images
        noisy images, photo-electrons.
    psf_fwhm
        (B,) Moffat FWHMs, arcsec (ignored with a model's shared PSF).
    sigma
        (B,) read noise, photo-electrons per pixel.
    centre
        (B, 5) the proposal's centres (the fit's estimates).
    covariance
        (B, 5, 5) the proposal's covariances (the inverse Fisher at the fit).
    samples
        draws per round; rounds are added until ``min_ess`` or ``max_samples``.
    seed
        the draws' seed (galaxy b uses ``seed + b``).
    shear_density
        the prior's ``1 / |g|`` (False: uniform in the shear's box).
    bound_draws
        draws resampled to estimate the bound-weighted mean (0: not estimated; module).
    """
    images = np.asarray(images, dtype=np.float64)
    rows = len(images)
    centre = np.asarray(centre, dtype=np.float64).reshape(rows, 5)
    covariance = np.asarray(covariance, dtype=np.float64).reshape(rows, 5, 5)
    if bound_draws < 0 or bound_draws == 1:
        raise InputError(f"bound_draws = {bound_draws}: need 0 (none) or at least 2")
    if samples < 10 or max_samples < samples:
        raise InputError(f"samples = {samples}, max_samples = {max_samples}: need "
                         f"10 <= samples <= max_samples")
    model = model or DifferentiableModel()
    psf = None if model.psf is not None else np.broadcast_to(
        np.asarray(psf_fwhm, dtype=np.float64), (rows,))
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (rows,))
    out = Posterior(*(np.full((rows, 5), np.nan) for _ in range(2)),
                    *(np.zeros(rows) for _ in range(3)), np.full((rows, 5), np.nan))
    for b in range(rows):
        clock = time.process_time()
        rng = np.random.default_rng(seed + b)
        proposal = Proposal(centre[b], covariance[b], inflate=INFLATE)
        thetas, logs, w = [], [], None
        for _ in range(max_samples // samples):
            theta = proposal.draw(samples, rng)
            theta = theta[np.isfinite(log_prior(theta, np.full(len(theta), 50.0), False))]
            mu = model.images(theta, None if psf is None else np.full(len(theta), psf[b]))
            thetas.append(theta)
            logs.append(_log_weights(images[b], sigma[b], theta, proposal.log_density(theta),
                                     mu, shear_density))
            log_w = np.concatenate(logs)
            if not (len(log_w) and np.isfinite(log_w.max())):
                w = None
                if len(logs) >= 2:  # the likelihood's region lies outside the prior's support
                    break
                continue
            w = np.exp(log_w - log_w.max())
            w /= w.sum()
            if 1.0 / np.sum(w**2) >= min_ess:
                break
        if w is not None:
            theta = np.concatenate(thetas)
            out.mean[b] = w @ theta
            out.std[b] = np.sqrt(np.maximum(w @ theta**2 - out.mean[b] ** 2, 0.0))
            out.ess[b] = 1.0 / np.sum(w**2)
            out.draws[b] = len(theta)
            if bound_draws:
                out.weighted_mean[b] = out.mean[b] + _bound_weighted_shift(
                    theta, w, bound_draws, rng, None if psf is None else psf[b], sigma[b], model)
        out.seconds[b] = time.process_time() - clock
    return out
