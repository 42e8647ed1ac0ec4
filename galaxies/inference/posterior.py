"""The posterior mean of a galaxy's labels under the training prior, by importance sampling.

A network trained with the mean squared error approximates ``E[theta | image]`` under the
distribution of its training labels; this module computes that estimator directly, so a
network's bias can be split into what the Bayes estimator itself does (shrinkage by the prior,
the skew of the likelihood) and what the network adds (approximation error).

The prior is the random recipes' draw (`galaxies.simulation.sampler.draw_candidates`): flux, radius and
Sérsic index uniform in `galaxies.conventions.RANGES` (the index on the recipe's grid), the shear's
magnitude |g| uniform in [0, 0.67] and its angle uniform, so the density in ``(g1, g2)`` is
proportional to ``1 / |g|``; and the SNR cut keeps only ``SNR = ||mu|| / sigma`` in
`galaxies.conventions.SNR_RANGE`. The likelihood is the project's (`galaxies.inference.likelihood`): a
Gaussian of variance ``sigma^2 + mu`` per pixel, its ``log V`` term included.

One set of proposal renders serves every noise realization of one galaxy: the proposal is a
defensive mixture of Gaussians around a centre (the truth, or a fit) with the bound's covariance
inflated, drawn once and rendered once with GalSim (`galaxies.simulation.render.GalaxyRenderer`, the
generator's renderer); each image then weighs those draws by likelihood x prior / proposal.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from galaxies.conventions import IMAGE_SIZE, RANGES, SNR_RANGE
from galaxies.runtime.errors import InputError
from galaxies.simulation.render import GalaxyRenderer

__all__ = ["log_prior", "Proposal", "Draws", "PosteriorMeans", "draw_proposal", "render_proposal",
           "posterior_means"]


def log_prior(theta: np.ndarray, snr: np.ndarray, shear_density: bool = True) -> np.ndarray:
    """Log density (up to a constant) of the training recipes' labels ``theta`` (M, 5), whose
    noiseless images have SNR ``snr`` (M,); ``-inf`` outside the box or the SNR window.
    ``shear_density`` False drops the ``1 / |g|`` of the shear (a prior uniform in the box)."""
    theta = np.asarray(theta, dtype=np.float64)
    flux, n, r, g1, g2 = theta.T
    g = np.hypot(g1, g2)
    inside = ((flux >= RANGES["flux"].low) & (flux <= RANGES["flux"].high)
              & (n >= RANGES["sersic_n"].low) & (n <= RANGES["sersic_n"].high)
              & (r >= RANGES["sersic_r"].low) & (r <= RANGES["sersic_r"].high)
              & (g <= RANGES["shear"].high)
              & (snr >= SNR_RANGE.low) & (snr <= SNR_RANGE.high))
    out = np.where(inside, 0.0, -np.inf)
    if shear_density:
        out = out - np.log(np.maximum(g, 1e-12))
    return out


@dataclass(frozen=True)
class Proposal:
    """A mixture, in equal parts, of Gaussians ``N(centre, s^2 cov)`` for each ``s`` of
    ``inflate``: wide enough to hold the posterior of every noise realization of a galaxy."""

    centre: np.ndarray
    cov: np.ndarray
    inflate: tuple = (1.5, 3.0)

    def draw(self, size: int, rng: np.random.Generator) -> np.ndarray:
        chol = np.linalg.cholesky(self.cov)
        which = rng.integers(len(self.inflate), size=size)
        scale = np.asarray(self.inflate, float)[which][:, None]
        return self.centre + scale * (rng.standard_normal((size, 5)) @ chol.T)

    def log_density(self, theta: np.ndarray) -> np.ndarray:
        inverse = np.linalg.inv(self.cov)
        _, logdet = np.linalg.slogdet(self.cov)
        delta = theta - self.centre
        quad = np.einsum("ij,jk,ik->i", delta, inverse, delta)
        parts = [-0.5 * quad / s**2 - 5 * np.log(s) - 0.5 * logdet for s in self.inflate]
        return np.logaddexp.reduce(parts, axis=0) - np.log(len(self.inflate))


@dataclass(frozen=True)
class Draws:
    """Proposal draws ``theta`` (M, 5), their log proposal density ``log_q`` (M,) and their
    unit-flux images ``units`` (M, 64 * 64)."""

    theta: np.ndarray
    log_q: np.ndarray
    units: np.ndarray


@dataclass
class PosteriorMeans:
    """Per image: the posterior ``mean`` and ``std`` (R, 5), the effective sample size ``ess``
    (R,) of its importance weights, and the posterior probability (R,) of each event asked for
    (``events``: name -> a test on the draws' labels)."""

    mean: np.ndarray
    std: np.ndarray
    ess: np.ndarray
    probability: dict


def _snap(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    k = np.clip(np.searchsorted(grid, values), 1, len(grid) - 1)
    left = values - grid[k - 1] < grid[k] - values
    return grid[np.where(left, k - 1, k)]


def draw_proposal(proposal: Proposal, samples: int, seed: int = 0,
                  sersic_grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The draws `render_proposal` renders, ``(theta, log_q)``: its index snapping and its
    box, without the renders."""
    if samples < 10:
        raise InputError(f"samples = {samples}: use at least 10 draws")
    rng = np.random.default_rng(seed)
    theta = proposal.draw(int(samples), rng)
    if sersic_grid is not None:
        # each node takes the draws of its own cell only: a draw beyond the grid's last cell
        # is dropped, not snapped onto the end node (which would weigh the tail as one cell)
        grid = np.asarray(sersic_grid, float)
        half = 0.5 * (grid[1] - grid[0]) if len(grid) > 1 else 0.0
        theta = theta[(theta[:, 1] >= grid[0] - half) & (theta[:, 1] <= grid[-1] + half)]
        theta[:, 1] = _snap(theta[:, 1], grid)
    log_q = proposal.log_density(theta)
    box = np.isfinite(log_prior(theta, np.full(len(theta), SNR_RANGE.low), False))
    theta, log_q = theta[box], log_q[box]
    return theta, log_q


def render_proposal(proposal: Proposal, psf_fwhm: float, samples: int = 4000, seed: int = 0,
                    sersic_grid: np.ndarray | None = None,
                    renderer: GalaxyRenderer | None = None) -> Draws:
    """``samples`` draws of ``proposal`` and their unit-flux images at PSF ``psf_fwhm``,
    rendered once for every image `posterior_means` weighs: in one batch by the differentiable
    model (`galaxies.inference.differentiable`, GalSim's image to float32 rounding), or one by one by
    GalSim when a ``renderer`` (`galaxies.simulation.render.GalaxyRenderer`) is given.

    The Sérsic index of each draw is snapped to ``sersic_grid`` (the recipe's,
    ``RandomSpec.sersic_grid``) when given, whose nodes all weigh alike (the snap moves the
    proposal's density by under a node's spacing, negligible against a bound much wider than
    it); a draw beyond the grid's end cells is dropped. Draws outside the prior's box weigh
    nothing and are not rendered.
    """
    theta, log_q = draw_proposal(proposal, samples, seed, sersic_grid)
    if renderer is None:
        from .differentiable.model import DifferentiableModel
        unit = np.column_stack([np.ones(len(theta)), theta[:, 1:]])
        units = DifferentiableModel().images(unit, np.full(len(theta), float(psf_fwhm)))
        return Draws(theta, log_q, units.reshape(len(theta), -1))
    units = np.empty((len(theta), IMAGE_SIZE * IMAGE_SIZE))
    for i in np.argsort(theta[:, 1], kind="stable"):  # one Hankel table per index
        units[i] = renderer.draw(1.0, *theta[i, 1:], psf_fwhm).ravel()
    return Draws(theta, log_q, units)


def posterior_means(draws: Draws, images: np.ndarray, sigma: float, shear_density: bool = True,
                    events: dict | None = None, block: int = 64) -> PosteriorMeans:
    """The posterior mean of the labels of each of ``images`` (R, 64, 64), noisy images of
    one galaxy at read noise ``sigma`` (photo-electrons), under the training prior
    (`log_prior`), from the rendered proposal ``draws`` (`render_proposal`, at the images' PSF).
    ``events`` (name -> function of the labels (M, 5) returning a boolean (M,)) adds each
    event's posterior probability, e.g. of an index near the prior's edge.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or images.shape[1] * images.shape[2] != draws.units.shape[1]:
        raise InputError(f"images have shape {images.shape}, expected (R, {IMAGE_SIZE}, {IMAGE_SIZE})")
    theta = draws.theta
    mu = theta[:, :1] * draws.units
    snr = np.sqrt(np.sum(mu**2, axis=1)) / sigma
    log_w0 = log_prior(theta, snr, shear_density) - draws.log_q
    # chi2 = sum d^2 W - 2 d . (mu W) + sum mu^2 W with W = 1 / (sigma^2 + mu): two products;
    # the Gaussian's log V term is -sum log W
    weight = 1.0 / (sigma**2 + np.maximum(mu, 0.0))
    const = np.sum(mu**2 * weight, axis=1) - np.sum(np.log(weight), axis=1)
    flat = images.reshape(len(images), -1)
    mean, std = np.empty((len(images), 5)), np.empty((len(images), 5))
    ess = np.empty(len(images))
    tests = {name: np.asarray(test(theta), dtype=np.float64) for name, test in (events or {}).items()}
    probability = {name: np.empty(len(images)) for name in tests}
    for start in range(0, len(images), block):
        d = flat[start:start + block]
        log_w = log_w0 - 0.5 * ((d**2) @ weight.T - 2.0 * d @ (mu * weight).T + const)
        log_w -= log_w.max(axis=1, keepdims=True)
        w = np.exp(log_w)
        w /= w.sum(axis=1, keepdims=True)
        m = w @ theta
        mean[start:start + block] = m
        std[start:start + block] = np.sqrt(np.maximum(w @ theta**2 - m**2, 0.0))
        ess[start:start + block] = 1.0 / np.sum(w**2, axis=1)
        for name, hit in tests.items():
            probability[name][start:start + block] = w @ hit
    return PosteriorMeans(mean, std, ess, probability)
