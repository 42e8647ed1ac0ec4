"""Maximum-likelihood fit and refinement of a batch of galaxies on the differentiable model.

The likelihood is the project's (`galaxies.inference.galsim_fit`): a Gaussian of variance
``V = sigma^2 + max(mu, 0) / gain`` per pixel, V held at the model of the starting point
(iteratively reweighted least squares, one pass). With exact Jacobians of every image of a
batch in one call, the natural minimizer is Levenberg–Marquardt on all five parameters:

* the normal matrix ``H = J^T W J`` is the Fisher matrix, the gradient ``J^T W (d - mu)``;
* the step solves ``(H + lambda diag(H)) delta = gradient`` (Marquardt's scaling: the same
  damping means the same thing for the flux, ~1e5, and the shear, ~0.1), then is projected
  into the box of the generator's ranges; a parameter on the box's edge whose gradient points
  out of the box is held there (an active set, as L-BFGS-B's projected gradient does), so a
  galaxy whose optimum lies on the edge (n = 6 or r = 0.6 at low SNR) converges there;
* a step is kept when the NLL falls, and lambda shrinks by `SHRINK`; else lambda grows by
  `GROW` and the same derivatives are reused (a trial after a kept step is drawn with its
  derivatives at once, since most steps are kept; after a rejection, its image alone first);
* a galaxy stops when no parameter would move by more than ``stop`` of its standard deviation
  (the square root of the diagonal of ``H^-1``; the undamped step of the free parameters), or
  after ``max_steps`` accepted steps.

Why not L-BFGS-B, as the GalSim path uses: it builds curvature from gradients over many
iterations, each of which needs derivatives; with the Fisher matrix exact and cheap here,
Gauss–Newton converges in a handful of steps (quadratically near the optimum, as the residuals
are noise), and every galaxy of a batch takes the same few steps in lock-step.

The refinement of a network's estimate is the same minimizer from that estimate with at most a
few steps and no damping at first (``lambda0 = 0``): Fisher scoring, as `galaxies.inference.refine` does on
GalSim renders. A fit without a start begins at `start_points` (adaptive moments of the image
corrected for the PSF, then the best of a few indices and sizes by likelihood).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from galaxies.conventions import RANGES
from galaxies.runtime.errors import InputError

from ..galsim_fit import moffat_moments_sigma, moments_start
from .bound import covariances, fisher_matrices
from .model import DifferentiableModel

__all__ = ["BOX", "FitResults", "fit", "refine", "start_points"]

#: The box of (flux, n, r, g1, g2): the generator's ranges.
BOX = np.array([[RANGES["flux"].low, RANGES["flux"].high],
                [RANGES["sersic_n"].low, RANGES["sersic_n"].high],
                [RANGES["sersic_r"].low, RANGES["sersic_r"].high],
                [-RANGES["shear"].high, RANGES["shear"].high],
                [-RANGES["shear"].high, RANGES["shear"].high]])
#: Factors applied to the damping after a kept and after a rejected step.
SHRINK, GROW = 0.3, 4.0
#: Damping after the first rejected step of an undamped start.
LAMBDA_FIRST = 0.1
#: Stop when no parameter would move by more than this fraction of its standard deviation.
STOP = 0.01


@dataclass
class FitResults:
    """Estimates (B, k) in the model's parameter order (k = 5: the labels), their
    standard deviations (the bound at the estimate) and the Fisher matrix there (B, k, k), the
    NLL at the start and the end, accepted steps, evaluations of the model and its Jacobian (the
    start's and every trial's), whether each galaxy stopped by the ``stop`` rule, whether the
    box cut a step, and the CPU seconds of the whole batch."""

    params: np.ndarray
    std: np.ndarray
    fisher: np.ndarray
    nll_start: np.ndarray
    nll: np.ndarray
    steps: np.ndarray
    evaluations: np.ndarray
    converged: np.ndarray
    hit_box: np.ndarray
    seconds: float


def _nll(data, mu, weight) -> np.ndarray:
    residual = (data - mu).reshape(len(data), -1)
    return 0.5 * np.einsum("bp,bp,bp->b", residual, weight, residual)


def _weights(mu, sigma, gain) -> np.ndarray:
    flat = mu.reshape(len(mu), -1)
    variance = sigma.reshape(len(mu), -1) ** 2
    if gain is not None:
        variance = variance + np.maximum(flat, 0.0) / gain
    return 1.0 / variance


def _checked(images, sigma, start, model, width: int = 5):
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or images.shape[1:] != model.shape:
        raise InputError(f"images have shape {images.shape}, expected (B, {model.shape[0]}, "
                         f"{model.shape[1]})")
    if not np.all(np.isfinite(images)):
        raise InputError("images have non-finite pixels")
    sigma = np.asarray(sigma, dtype=np.float64)
    if sigma.ndim <= 1:
        sigma = np.broadcast_to(sigma.reshape(-1, 1, 1), images.shape)
    if start is not None:
        start = np.atleast_2d(np.asarray(start, dtype=np.float64))
        if start.shape != (len(images), width) or not np.all(np.isfinite(start)):
            raise InputError(f"start has shape {start.shape} or non-finite values; expected "
                             f"({len(images)}, {width}) finite parameters")
    return images, np.broadcast_to(sigma, images.shape), start


def fit(images, psf_fwhm, sigma, start=None, max_steps: int = 30, stop: float = STOP,
        lambda0: float = 1e-3, model: DifferentiableModel | None = None,
        gain: float | None = 1.0, box: np.ndarray = BOX) -> FitResults:
    """Fit (or, from ``start`` with few ``max_steps``, refine) a batch of images.

    Parameters
    ----------
    images
        (B, ny, nx) noisy images, photo-electrons.
    psf_fwhm
        (B,) Moffat FWHMs, arcsec (ignored when ``model`` has a shared PSF).
    sigma
        read noise per galaxy (B,), one number, or maps (B, ny, nx) (``inf`` masks).
    start
        (B, k) starting parameters, or None for `start_points` (five labels only).
    max_steps
        accepted steps at most (2 for a refinement, 30 for a fit).
    stop
        end a galaxy when no parameter would move by more than this fraction of its standard
        deviation.
    lambda0
        the damping at the start (0: a Gauss–Newton step first).
    model
        the `DifferentiableModel` (its stamp, pixel scale, PSF); default the simulation's; or
        a model of other parameters with its interface (`galaxies.inference.differentiable.sky`,
        `galaxies.inference.differentiable.bulge_disc`), then with a ``start``.
    gain
        photo-electrons per count of the Poisson term (None: read noise only).
    box
        (k, 2) bounds of the parameters.
    """
    clock = time.process_time()
    model = model or DifferentiableModel()
    box = np.asarray(box, dtype=np.float64)
    images, sigma, start = _checked(images, sigma, start, model, len(box))
    rows = len(images)
    psf_fwhm = None if model.psf is not None else np.broadcast_to(
        np.asarray(psf_fwhm, dtype=np.float64), (rows,))
    if start is None:
        if len(box) != 5:
            raise InputError(f"a model of {len(box)} parameters needs a start")
        start = start_points(images, psf_fwhm, sigma, model, gain, box)
    theta = np.clip(start, box[:, 0], box[:, 1])
    hit_box = np.any(theta != start, axis=1)
    plan = model.plan(theta, psf_fwhm)
    mu, jac = model.images_and_jacobians(theta, psf_fwhm, plan)
    weight = _weights(mu, sigma, gain)
    nll = _nll(images, mu, weight)
    nll_start = nll.copy()
    damping = np.full(rows, float(lambda0))
    steps = np.zeros(rows, int)
    evaluations = np.ones(rows, int)
    converged = np.zeros(rows, bool)
    active = np.ones(rows, bool)
    eager = np.ones(rows, bool)  # draw the next trial with its derivatives (the last was kept)
    flat_d = (images - mu).reshape(rows, -1)
    for _ in range(4 * max_steps + 8):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        flat_j = jac[idx].reshape(len(idx), jac.shape[1], -1)
        hessian = np.matmul(flat_j * weight[idx][:, None, :], flat_j.transpose(0, 2, 1))
        gradient = np.einsum("bip,bp,bp->bi", flat_j, weight[idx], flat_d[idx])
        std = np.sqrt(np.abs(np.einsum("bii->bi", covariances(hessian))))
        # a parameter on the box's edge whose gradient points out of the box is held there
        held = (((theta[idx] <= box[:, 0]) & (gradient < 0))
                | ((theta[idx] >= box[:, 1]) & (gradient > 0)))
        newton = _solve(hessian, gradient, held, 0.0)
        done = (np.max(np.abs(newton) / std, axis=1) < stop) | (steps[idx] >= max_steps)
        converged[idx[done]] = np.max(np.abs(newton[done]) / std[done], axis=1) < stop
        active[idx[done]] = False
        keep = ~done
        idx, hessian, gradient, held = idx[keep], hessian[keep], gradient[keep], held[keep]
        if not len(idx):
            break
        delta = _solve(hessian, gradient, held, damping[idx])
        trial = np.clip(theta[idx] + delta, box[:, 0], box[:, 1])
        cut = np.any(trial != theta[idx] + delta, axis=1)
        psf = None if psf_fwhm is None else psf_fwhm[idx]
        trial_mu, trial_jac = _draw_trials(model, trial, psf, plan.subset(idx), eager[idx])
        evaluations[idx] += 1
        trial_nll = _nll(images[idx], trial_mu, weight[idx])
        better = trial_nll < nll[idx]
        kept = idx[better]
        late = better & ~eager[idx]  # kept after a rejection: its derivatives now
        if late.any():
            evaluations[idx[late]] += 1
            trial_jac[late] = model.images_and_jacobians(
                trial[late], None if psf is None else psf[late], plan.subset(idx[late]))[1]
        eager[idx] = better
        theta[kept], nll[kept] = trial[better], trial_nll[better]
        jac[kept] = trial_jac[better]
        flat_d[kept] = (images[kept] - trial_mu[better]).reshape(len(kept), flat_d.shape[1])
        hit_box[kept] |= cut[better]
        steps[kept] += 1
        damping[kept] *= SHRINK
        worse = idx[~better]
        damping[worse] = np.where(damping[worse] > 0, damping[worse] * GROW, LAMBDA_FIRST)
        stuck = worse[damping[worse] > 1e8]  # no decrease along any damped step: the floor
        converged[stuck], active[stuck] = True, False
    fisher = fisher_matrices(images - flat_d.reshape(images.shape), jac, sigma,
                             gain is not None, gain or 1.0)
    return FitResults(params=theta,
                      std=np.sqrt(np.abs(np.einsum("bii->bi", covariances(fisher)))),
                      fisher=fisher,
                      nll_start=nll_start, nll=nll, steps=steps, evaluations=evaluations,
                      converged=converged,
                      hit_box=hit_box, seconds=time.process_time() - clock)


def refine(images, psf_fwhm, sigma, start, steps: int = 2, stop: float | None = None,
           **options) -> FitResults:
    """The refinement of an estimate ``start`` (B, 5): at most ``steps`` kept steps of `fit`,
    undamped at first (Fisher scoring, as `galaxies.inference.refine` does on GalSim renders), ending
    when no parameter would move by more than ``stop`` (default the GalSim refinement's
    `galaxies.inference.refine.STOP_FRACTION`) of its standard deviation; ``options`` as `fit`'s."""
    from ..refine import STOP_FRACTION
    return fit(images, psf_fwhm, sigma, start=start, max_steps=steps,
               stop=STOP_FRACTION if stop is None else stop, lambda0=0.0, **options)


def _solve(hessian, gradient, held, damping) -> np.ndarray:
    """Steps (B, k) solving ``(H + damping diag(H)) delta = gradient`` with the ``held``
    parameters (B, k) fixed (their rows and columns replaced by the identity's)."""
    free = ~held
    diag = np.einsum("bii->bi", hessian)
    scale = 1.0 / np.sqrt(np.maximum(diag, 1e-300))  # unit diagonal: flux and shear alike
    matrix = hessian * scale[:, :, None] * scale[:, None, :]
    eye = np.eye(hessian.shape[-1])
    matrix = matrix * (1.0 + np.asarray(damping, dtype=float).reshape(-1, 1, 1) * eye)
    mask = free[:, :, None] & free[:, None, :]
    matrix = np.where(mask, matrix, eye)
    rhs = np.where(free, gradient * scale, 0.0)
    return np.linalg.solve(matrix, rhs[..., None])[..., 0] * scale


def _draw_trials(model, trial, psf, plan, eager):
    """Images of the trials, and their derivatives where ``eager`` (elsewhere zero, filled
    if the trial is kept): most trials are kept, and a kept one needs its derivatives, but
    after a rejection the next trial is uncertain and its image alone is drawn first."""
    mu = np.empty((len(trial),) + model.shape)
    jac = np.zeros(trial.shape + model.shape)
    for rows, with_jacobian in ((np.flatnonzero(eager), True), (np.flatnonzero(~eager), False)):
        if not len(rows):
            continue
        part = (trial[rows], None if psf is None else psf[rows], plan.subset(rows))
        if with_jacobian:
            mu[rows], jac[rows] = model.images_and_jacobians(*part)
        else:
            mu[rows] = model.images(*part)
    return mu, jac


#: Sérsic indices and size factors tried from the adaptive-moment start.
START_N = (1.0, 2.5, 4.5)
START_SIZE = (0.8, 1.1, 1.5)


def start_points(images, psf_fwhm, sigma, model: DifferentiableModel, gain=1.0,
                 box: np.ndarray = BOX) -> np.ndarray:
    """Starting labels (B, 5): `galsim.hsm.FindAdaptiveMom` size and shape corrected for the
    PSF's size, then the best of `START_N` x `START_SIZE` by likelihood with the flux at its
    weighted least-squares value (as `galaxies.inference.galsim_fit.start_point` does with GalSim renders);
    the middle of the box where the moments fail."""
    rows = len(images)
    base = np.tile([0.0, 2.5, 0.3, 0.0, 0.0], (rows, 1))
    psf_sigma = _psf_moments(model, psf_fwhm, rows)
    for b, image in enumerate(images):
        moments = moments_start(image, model.pixel_scale, lambda: psf_sigma[b])
        if moments is not None:
            base[b, 2:] = moments
    trials = np.array([[1.0, n, s, 1.0, 1.0] for n in START_N for s in START_SIZE])
    candidates = base[:, None, :].repeat(len(trials), 1)
    candidates[..., 0] = 1.0
    candidates[..., 1] = trials[:, 1]
    candidates[..., 2] = np.clip(base[:, None, 2] * trials[:, 2], *box[2])
    flat = candidates.reshape(-1, 5)
    psf = None if psf_fwhm is None else np.repeat(psf_fwhm, len(trials))
    units = model.images(flat, psf).reshape(rows, len(trials), -1)
    data = images.reshape(rows, 1, -1)
    weight = 1.0 / sigma.reshape(rows, 1, -1) ** 2
    flux = np.clip(np.sum(weight * units * data, -1) / np.sum(weight * units**2, -1), *box[0])
    chi2 = np.sum(weight * (data - flux[..., None] * units) ** 2, -1)
    best = np.argmin(chi2, axis=1)
    out = candidates[np.arange(rows), best]
    out[:, 0] = flux[np.arange(rows), best]
    return out


def _psf_moments(model: DifferentiableModel, psf_fwhm, rows: int) -> np.ndarray:
    """Adaptive-moment size (pixels) of each row's PSF image, once per PSF."""
    if model.psf is None:
        return np.array([moffat_moments_sigma(float(fwhm), model.shape, model.pixel_scale)
                         for fwhm in psf_fwhm])
    if not hasattr(model, "psf_moments_sigma"):  # a cutout's own PSF: once per model
        import galsim
        image = model.psf.drawImage(nx=model.shape[1], ny=model.shape[0],
                                    scale=model.pixel_scale,
                                    method="auto" if model.pixel else "no_pixel")
        model.psf_moments_sigma = galsim.hsm.FindAdaptiveMom(image).moments_sigma
    return np.full(rows, model.psf_moments_sigma)
