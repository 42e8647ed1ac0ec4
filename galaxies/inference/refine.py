"""Likelihood refinement: a few bounded Gauss-Newton steps from another estimator's estimate.

A network estimates ``flux, sersic_n, sersic_r, g1, g2`` a thousand times faster than the fit
(`galaxies.inference.galsim_fit`), short of its accuracy. Refinement takes K steps of Fisher scoring from its
estimate on the very likelihood the fit minimizes (`galaxies.inference.likelihood`): the same GalSim model
(`SersicModel`), the flux profiled, the same image derivatives (`Objective.evaluate`) and box.

What is held. The pixel variance ``V = sigma^2 + mu`` is held at the model of the start (its
profiled flux), as the fit holds it at its own start. Updating V at the first step's point moved
no estimate by more than 0.0017 of its Cramér–Rao bound (200 images of snr60 and of snr30, K = 1
to 3), so it is not done. ``psf_fwhm`` and ``sigma`` are known inputs.

The step. With ``A = [u, flux du/dtheta]`` (the derivatives of ``mu`` in the five parameters)
and ``W = 1 / V``, the Fisher matrix of the held likelihood is ``F = A W A^T``. At the profiled
flux the NLL's gradient in the flux is zero, so the shape part of the five-parameter step
``-F^-1 grad`` is the profiled (variable-projection) Gauss-Newton step. A step that would leave
the box is not clipped: the same quadratic model is minimized inside the box (scipy's bounded
least squares, in units of the standard deviations).

Step control. Armijo backtracking on the profiled NLL: the likelihood never rises. The full
step's point is evaluated at once (the next step needs its derivatives); a shorter trial and the
last step's point cost one render. Scaled by the standard deviations, Gauss-Newton is well
conditioned here (from a network's estimate 99% of the images never backtrack): no
Levenberg-Marquardt damping, which would only shorten good steps. The refinement ends early when
no parameter would move by more than ``stop`` (default 0.05) of its standard deviation.

Cost: an evaluation is 7 renders (four node profiles, then a `galsim.Sum` for each of r, g1 and
g2), a trial 1 render: K steps take at most 7 K + 1 renders, plus each process's one-off Sérsic
tables. `benchmarks/refine.py` measures the time and how many steps reach the fit's accuracy
(docs/benchmarks.md).

The standard deviation. ``std`` is the square root of the diagonal of the inverse of the full
5 x 5 Fisher matrix (flux included, not profiled; `galaxies.inference.crb.fisher_from_jacobian`, variance
of the refined model) at the estimate: the Cramér–Rao bound evaluated there, from ``u`` and the
flux of the final point and the derivatives of the last evaluated one, at most a step back.
Where the likelihood is close to Gaussian over its width it is the estimate's error. It fails at
low SNR for n and r: the bound grows with n and r, so an estimate too large in both gets a std
too large (z-scores too narrow) and one too small a std too small (n at snr30: the estimates
near n = 1 have z ~ -4); at the box's edge the error is constrained, which Fisher ignores.

Flags (`FLAGS` bits): ``bound``, a step or the start met the box; ``nll_rose``, the final NLL
is above the start's (a check: the line search prevents it); ``not_converged``, the steps ended
with a step above ``stop`` (after the K-th step, the step the last derivatives predict from the
final point, about half the true one); ``failed``, no estimate (a NaN row).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from galaxies.conventions import IMAGE_SIZE, LABEL_COLUMNS, check_range
from galaxies.runtime.errors import InputError

from .crb import fisher_from_jacobian
from .likelihood import BOUNDS, Objective, SersicModel, weighted_flux

__all__ = ["FLAGS", "STOP_FRACTION", "RefineResult", "refine_image", "refine_dataset"]

#: Stop when no parameter would move by more than this fraction of its standard deviation.
STOP_FRACTION = 0.05
#: Halvings of a step the line search tries before it stops the refinement.
HALVINGS = 6
#: Armijo's sufficient-decrease constant.
ARMIJO = 1e-4
#: Bits of the ``flags`` field of `refine_dataset`'s file.
FLAGS = {"bound": 1, "nll_rose": 2, "not_converged": 4, "failed": 8}


@dataclass
class RefineResult:
    """Outcome of refining one image.

    ``params`` and ``std`` are ``flux, sersic_n, sersic_r, g1, g2`` in label units, ``covariance``
    the 5 x 5 inverse Fisher matrix; ``steps`` the Gauss-Newton steps taken, ``renders`` GalSim
    renders, ``seconds`` CPU time (one core); ``nll`` the profiled NLL after each step (the
    start's first); ``last_step`` the largest ratio step / std of the last step computed.
    """

    params: np.ndarray
    std: np.ndarray
    covariance: np.ndarray
    steps: int
    renders: int
    seconds: float
    nll: list = field(default_factory=list)
    last_step: float = np.nan
    halvings: int = 0
    converged: bool = False
    hit_bound: bool = False
    nll_rose: bool = False

    @property
    def flags(self) -> int:  # the `FLAGS` bits
        return (FLAGS["bound"] * self.hit_bound + FLAGS["nll_rose"] * self.nll_rose
                + FLAGS["not_converged"] * (not self.converged))


def _inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a positive-definite matrix, scaled to unit diagonal first (flux ~1e5 and
    shear ~0.1 differ by 1e6)."""
    scale = 1.0 / np.sqrt(np.diag(matrix))
    return np.linalg.inv(matrix * np.outer(scale, scale)) * np.outer(scale, scale)


def _design(point: dict) -> np.ndarray:
    """Derivatives of ``mu`` in ``flux, n, r, g1, g2``: (5, pixels)."""
    return np.vstack([point["u"], point["flux"] * point["jac"]])


def _at(objective: Objective, point: dict, u: np.ndarray) -> dict:
    """The point with unit image ``u`` (flux, NLL and gradient recomputed under the objective's
    weights, no render) and the derivatives of ``point``."""
    flux, nll, g_mu = weighted_flux(u, objective.d, objective.weight, objective.flux_range)
    return dict(point, u=u, flux=flux, nll=nll, grad=flux * (point["jac"] @ g_mu))


def _trial(objective: Objective, point: dict, theta: np.ndarray) -> dict:
    """The profiled NLL at ``theta`` (one render, the fit's FFT-size rule), with the
    derivatives of ``point``."""
    model = objective.model
    model.fft_size = max(objective.fft_size, model.galsim_fft_size(*theta))
    return _at(objective, point, model.image(*theta).ravel())


def _step(point: dict, weight: np.ndarray, theta: np.ndarray, box: np.ndarray = BOUNDS):
    """Gauss-Newton step of the shape parameters kept in the box, their standard deviations
    under the held likelihood, and whether the box cut the step."""
    design = _design(point)
    covariance = _inverse((design * weight) @ design.T)[1:, 1:]
    std = np.sqrt(np.diag(covariance))
    step = -covariance @ point["grad"]
    low, high = box[:, 0] - theta, box[:, 1] - theta
    if np.all((step >= low) & (step <= high)):
        return step, std, False
    from scipy.optimize import lsq_linear

    # minimize the quadratic model 1/2 x^T C x + (std * grad)^T x in units x = step / std,
    # C = the correlation matrix's inverse, as || R x - b ||^2 with C = R^T R
    upper = np.linalg.cholesky(np.linalg.inv(covariance / np.outer(std, std))).T
    target = -np.linalg.solve(upper.T, std * point["grad"])
    x = lsq_linear(upper, target, bounds=(np.minimum(low / std, 0), np.maximum(high / std, 0)),
                   method="bvls").x
    return x * std, std, True


def _check(steps, stop) -> None:
    """InputError naming ``steps`` unless a positive integer, ``stop`` unless in (0, 1)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InputError(f"steps = {steps!r} must be a positive integer")
    if not 0 < stop < 1:
        raise InputError(f"stop = {stop!r} must be in (0, 1)")


def refine_image(image, psf_fwhm, sigma, start, steps: int = 2, stop: float = STOP_FRACTION,
                 renderer=None, stamp=None, gain: float | None = 1.0, bounds=None,
                 flux_range=None) -> RefineResult:
    """Refine the estimate ``start`` of one image by at most ``steps`` bounded Gauss-Newton
    steps of the fit's likelihood (see the module docstring).

    Parameters
    ----------
    image
        (64, 64) noisy image, photo-electrons.
    psf_fwhm
        Moffat (beta = 2) FWHM, arcsec.
    sigma
        Gaussian read noise, photo-electrons per pixel.
    start
        ``flux, sersic_n, sersic_r, g1, g2`` to start from (the flux only sets the variance: it
        is profiled); outside the box it is moved onto it (flagged).
    steps
        the most Gauss-Newton steps to take (K >= 1).
    stop
        end early when no parameter would move by more than this fraction of its std.
    renderer
        the `GalaxyRenderer` whose PSF to use (default: the process-wide one).
    stamp, gain, bounds, flux_range
        a cutout's own stamp, Poisson gain, box and flux range, as in
        `galaxies.inference.galsim_fit.fit_image` (no range checks with a stamp).

    Raises `galaxies.runtime.errors.InputError` naming the value for an image of the wrong shape or with non-finite
    pixels, a start that is not five finite numbers, ``steps`` < 1 or a ``stop`` outside (0, 1),
    and `ParameterRangeError` for a PSF or noise level outside the simulated ranges.
    """
    image = np.asarray(image, dtype=np.float64)
    shape = (IMAGE_SIZE, IMAGE_SIZE) if stamp is None else tuple(stamp.shape)
    if image.shape != shape or not np.all(np.isfinite(image)):
        raise InputError(f"image has shape {image.shape} and {np.sum(~np.isfinite(image))} "
                         f"non-finite pixels, expected {shape} and none")
    start = np.asarray(start, dtype=np.float64)
    if start.shape != (5,) or not np.all(np.isfinite(start)):
        raise InputError(f"start = {start} must be five finite numbers "
                         f"({', '.join(LABEL_COLUMNS)})")
    _check(steps, stop)
    if stamp is None:
        psf_fwhm, sigma = check_range("psf_fwhm", psf_fwhm), check_range("sigma", sigma)
    box = BOUNDS if bounds is None else np.asarray(bounds, dtype=float)
    t0 = time.process_time()
    objective = Objective(SersicModel(psf_fwhm, renderer=renderer, stamp=stamp), image, sigma,
                          gain=gain, bounds=box, **({} if flux_range is None else
                                                    {"flux_range": flux_range}))
    theta = np.clip(start[1:], box[:, 0], box[:, 1])
    hit = bool(np.any(theta != start[1:]))
    point = objective.evaluate(theta)
    objective.hold_variance(point["u"], point["flux"])  # V at the start's model, no new render
    point = _at(objective, point, point["u"])
    nlls, taken, halvings, converged = [point["nll"]], 0, 0, False
    while True:
        step, std, cut = _step(point, objective.weight, theta, box)
        size = float(np.max(np.abs(step) / std))
        if size < stop or taken == steps:
            converged = size < stop
            break
        # the last step's point needs no derivatives: one render; the others are evaluated
        evaluate = taken < steps - 1
        slope, alpha, new = float(point["grad"] @ step), 1.0, None
        for halving in range(HALVINGS + 1):
            trial = theta + alpha * step
            new = objective.evaluate(trial) if evaluate and halving == 0 else _trial(
                objective, point, trial)
            if new["nll"] <= point["nll"] + ARMIJO * alpha * slope:
                break
            alpha, new = alpha / 2, None
        halvings += halving
        if new is None:  # no decrease along a descent direction: the NLL's numerical floor
            break
        hit |= cut
        theta, taken = trial, taken + 1
        point = objective.evaluate(theta) if evaluate and halving else new
        nlls.append(float(point["nll"]))
    mu = point["flux"] * point["u"]
    covariance = _inverse(fisher_from_jacobian(mu, _design(point), np.sqrt(objective.sigma2)
                                               if np.ndim(sigma) else sigma,
                                               poisson=gain is not None, gain=gain or 1.0))
    return RefineResult(params=np.concatenate([[point["flux"]], theta]),
                        std=np.sqrt(np.diag(covariance)), covariance=covariance, steps=taken,
                        renders=objective.model.renders, seconds=time.process_time() - t0,
                        nll=nlls, last_step=size, halvings=halvings, converged=converged,
                        hit_bound=hit, nll_rose=nlls[-1] > nlls[0])


# ----------------------------------------------------------------------------- data sets

def _refine_rows(images, psf_fwhm, sigma, starts, steps: int, stop: float) -> list[tuple]:
    """Refine each image; a start that is not finite or a refinement that raises gives a
    failed row (NaN), never a dropped one."""
    out = []
    for image, psf, noise, start in zip(images, psf_fwhm, sigma, starts):
        t0 = time.process_time()
        try:
            r = refine_image(image, float(psf), float(noise), start, steps=steps, stop=stop)
            out.append((r.params, r.std, r.flags, r.steps, r.renders, r.seconds, ""))
        except Exception as err:  # noqa: BLE001 - reported per row, the run goes on
            out.append((np.full(5, np.nan), np.full(5, np.nan), FLAGS["failed"], 0, 0,
                        time.process_time() - t0, f"failed: {type(err).__name__}: {err}"))
    return out


def refine_dataset(start_predictions_path, data_path, out_path, steps: int = 2,
                   jobs: int | None = None, stop: float = STOP_FRACTION, limit: int | None = None,
                   progress: bool = True, force: bool = False) -> Path:
    """Refine every row of a predictions file on its data set and write the refined predictions.

    Parameters
    ----------
    start_predictions_path
        the start, a predictions file of ``data_path`` (its ``dataset`` attribute must be the
        data set's name and its rows the set's).
    data_path
        the data set (``img``, ``psf_fwhm`` and ``sigma`` are used).
    out_path
        the predictions file to write (atomically; an existing one is replaced only with
        ``force``, and never if it is one of the inputs).
    steps
        Gauss-Newton steps per image (K).
    jobs
        worker processes (default: all cores; 1 refines in this process).
    stop
        the early stop, a fraction of each parameter's standard deviation.
    limit
        refine only the first ``limit`` rows of the start's file.
    progress
        show a tqdm progress bar.

    The file holds ``pred``, ``index`` (the start's), ``pred_std`` (the Fisher std), attributes
    ``estimator`` (``<start estimator>+newton<K>``), ``dataset`` and ``seconds_per_image`` (the
    start's plus the mean CPU time of a refinement on one core, each worker's one-off Sérsic
    tables included), and per row ``flags`` (`FLAGS`), ``converged``, ``steps``, ``renders``,
    ``seconds``, ``message``. Rows whose start is not finite or whose refinement fails are kept,
    NaN, flagged ``failed``. Raises `galaxies.runtime.errors.InputError` when the start is not of this data set.
    """
    from galaxies.runtime.parallel import map_rows
    from galaxies.runtime.resources import resolve_jobs
    from galaxies.storage import files
    from galaxies.storage.atomic import check_destination
    from galaxies.storage.chunked import DatasetReader, RowSource

    _check(steps, stop)
    check_destination(out_path, data_path, start_predictions_path, force=force)
    start = files.load_predictions(start_predictions_path)
    rows = files.rows_of(start, data_path, limit)
    # the start's rows in its order, the images read block by block as the refinements go
    ds = DatasetReader(data_path, fields=("img",), rows=rows)
    psf_fwhm, sigma = ds.table.psf_fwhm, ds.table.sigma
    for name, values in (("psf_fwhm", psf_fwhm), ("sigma", sigma)):
        for value in np.unique(values):
            check_range(name, value)
    starts = start.pred[:len(rows)].astype(np.float64)
    wall = time.perf_counter()
    results, jobs = map_rows(_refine_rows, RowSource(ds, "img", psf_fwhm, sigma, starts),
                             resolve_jobs(jobs), steps, stop, desc=f"refine {ds.name}",
                             progress=progress)
    wall = time.perf_counter() - wall
    flags = np.array([r[2] for r in results], dtype=np.uint8)
    seconds = np.array([r[5] for r in results])
    extra = {"flags": flags, "converged": (flags & (FLAGS["not_converged"] | FLAGS["failed"])) == 0,
             "steps": np.array([r[3] for r in results], dtype=np.int16),
             "renders": np.array([r[4] for r in results], dtype=np.int32), "seconds": seconds,
             "message": np.array([r[6].encode("ascii", "replace") for r in results])}
    attrs = {
        "method": f"{steps} bounded Gauss-Newton (Fisher scoring) steps of the fit's likelihood "
                  f"from {start.estimator}, Armijo backtracking, early stop below {stop} std",
        "noise_model": "Gaussian, variance sigma^2 + mu, mu of the starting model",
        "start_estimator": start.estimator, "start_predictions": str(start.path),
        "start_seconds_per_image": start.seconds_per_image, "steps": int(steps), "stop": stop,
        "refine_seconds_per_image": float(seconds.mean()), "flags": FLAGS, "jobs": jobs,
        "wall_seconds": wall, "limit": -1 if limit is None else int(limit),
        "converged_fraction": float(extra["converged"].mean()),
        "failed": int(np.sum((flags & FLAGS["failed"]) > 0))}
    return files.write_predictions(
        out_path, np.array([r[0] for r in results]), rows,
        estimator=f"{start.estimator}+newton{steps}", dataset=ds.name,
        seconds_per_image=start.seconds_per_image + float(seconds.mean()),
        pred_std=np.array([r[1] for r in results]), extra=extra, attrs=attrs, force=force)
