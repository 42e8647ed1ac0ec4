"""Maximum-likelihood fit of the five galaxy parameters with scipy's L-BFGS-B (the baseline).

The likelihood
--------------
A noisy image ``d`` (photo-electrons) is modelled as the noiseless GalSim image
``mu(theta) = flux * u(n, r, g1, g2)`` plus the generator's noise, Poisson counts and Gaussian
read noise ``sigma``, approximated by a Gaussian of variance ``V = sigma^2 + mu`` per pixel (see
`galaxies.inference.crb`). The fit minimizes the negative log-likelihood

    NLL(theta) = 1/2 sum_p (d_p - mu_p(theta))^2 / V_p

with the variance held at ``V_p = sigma^2 + max(mu_p(theta_0), 0)`` of the starting model
``theta_0`` (iteratively reweighted least squares, one pass). Holding V is what makes the fit
recover the exact parameters of a noiseless image, and it costs nothing in accuracy: letting V
follow theta adds only the information of the variance itself (~1e-5 of the total, see
`galaxies.inference.crb`), and a second pass with V from the first fit changed no estimate of 400 snr60
realizations beyond the fourth digit. The model image carries no noise of its own (the original study's
fit added noise to it, which biased the estimates). ``psf_fwhm`` and ``sigma`` are known inputs,
read from the data set.

How it is made fast: see `galaxies.inference.likelihood` (flux profiled, the index on a grid of GalSim
profiles, gradients from image derivatives, FFT sizes under control); and here:

* **Scaled parameters.** L-BFGS-B works in units of each parameter's statistical error at the
  start (1 / sqrt of the diagonal Fisher information), so its tolerances mean the same for
  every galaxy and SNR.
* **A start from adaptive moments.** ``galsim.hsm.FindAdaptiveMom`` gives size and shape,
  corrected for the PSF's size; nine single-profile renders pick the index and size factor.

Where the time goes: objective evaluations of 7 renders each (the four node images, then one
`galsim.Sum` render for each of r, g1, g2), and the renders of the start;
GalSim's k-space evaluation of the Sérsic profiles is most of it, the FFTs and scipy a little.
Large, high-index galaxies need FFTs of 256-768 points (GalSim's choice, needed for accuracy)
and cost several times more. Each process also builds the tables of the nodes it visits once
(at most 60). `benchmarks/baseline.py` measures it (docs/benchmarks.md).

Bounds are the generator's ranges: n in [0.5, 6], r in [0.1, 0.6], flux in [3e4, 4e5], and
|g1|, |g2| <= 0.67 (L-BFGS-B takes boxes; the generator's disk |g| <= 0.67 is not a box).
Each fit reports whether L-BFGS-B converged; `fit_dataset` writes every row, failed fits
included, with a ``converged`` flag.
"""
from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from galaxies.conventions import IMAGE_SIZE, MOFFAT_BETA, PIXEL_SCALE, RANGES, check_range
from galaxies.runtime.errors import InputError
from galaxies.simulation.render import GalaxyRenderer

from .likelihood import BOUNDS, NODE_SPACING, Objective, SersicModel

__all__ = ["FitResult", "fit_image", "moffat_moments_sigma", "moments_start", "start_point",
           "fit_dataset", "describe_fits"]

# ------------------------------------------------------------------------------ the start

@functools.lru_cache(maxsize=1024)
def moffat_moments_sigma(fwhm: float, shape=(IMAGE_SIZE, IMAGE_SIZE),
                         pixel_scale: float = PIXEL_SCALE) -> float:
    """Adaptive-moment size (pixels) of the Moffat PSF image of FWHM ``fwhm`` on a stamp, once
    per PSF and stamp (the starts of the GalSim and the JAX fits)."""
    import galsim
    image = galsim.Moffat(beta=MOFFAT_BETA, fwhm=float(fwhm)).drawImage(
        nx=shape[1], ny=shape[0], scale=pixel_scale)
    return galsim.hsm.FindAdaptiveMom(image).moments_sigma


def _psf_sigma(model: SersicModel) -> float:
    """Adaptive-moment size of the PSF image (pixels), once per PSF."""
    import galsim
    if model.stamp is not None:  # a cutout's own stamp and PSF: once per model
        if not hasattr(model, "psf_moments_sigma"):
            model.psf_moments_sigma = galsim.hsm.FindAdaptiveMom(galsim.Image(
                model.stamp.draw(model.psf), scale=model.pixel_scale)).moments_sigma
        return model.psf_moments_sigma
    return moffat_moments_sigma(model.psf_fwhm)


#: Sérsic indices and size factors tried from the adaptive-moment start (all grid nodes, so
#: each trial is a single-profile render).
_START_N = (1.0, 2.5, 4.5)
_START_SIZE = (0.8, 1.1, 1.5)


def moments_start(image: np.ndarray, pixel_scale: float, psf_sigma) -> np.ndarray | None:
    """Size (arcsec) and shear ``(r, g1, g2)`` of a galaxy from its adaptive moments
    (`galsim.hsm.FindAdaptiveMom`), the PSF's size (``psf_sigma()``, pixels) taken off its
    square and the ellipticity scaled up alike (a rough correction: a fit does the rest); None
    where the moments fail (a very faint or odd image)."""
    import galsim
    try:
        moments = galsim.hsm.FindAdaptiveMom(galsim.Image(
            np.asarray(image, np.float64), scale=pixel_scale), strict=False)
    except (galsim.GalSimError, RuntimeError, ValueError):
        return None
    if moments.moments_status != 0:
        return None
    psf2 = psf_sigma() ** 2
    t_gal = max(moments.moments_sigma**2 - psf2, 0.05 * psf2)
    e1, e2 = (np.array([moments.observed_shape.e1, moments.observed_shape.e2])
              * moments.moments_sigma**2 / t_gal)
    e = math.hypot(e1, e2)
    if e > 0.9:
        e1, e2 = 0.9 * e1 / e, 0.9 * e2 / e
    shear = galsim.Shear(e1=e1, e2=e2)
    return np.array([math.sqrt(t_gal) * pixel_scale, *np.clip([shear.g1, shear.g2], -0.6, 0.6)])


def start_point(image: np.ndarray, objective: Objective) -> np.ndarray:
    """A starting point ``(n, r, g1, g2)`` from adaptive moments and a few trial renders.

    `galsim.hsm.FindAdaptiveMom` gives the galaxy's size and ellipticity, corrected for the
    PSF's size (a rough correction: the fit does the rest); the index and a size factor are
    the best of `_START_N` x `_START_SIZE` by profiled likelihood. Falls back to the middle of
    the ranges when the moments fail (a very faint or odd image).
    """
    theta = np.array([2.5, 0.3, 0.0, 0.0])
    moments = moments_start(image, objective.model.pixel_scale, lambda: _psf_sigma(objective.model))
    if moments is not None:
        theta[1:] = moments
    best = None
    for n in _START_N:
        for factor in _START_SIZE:
            trial = np.array([n, np.clip(theta[1] * factor, *objective.bounds[1]), *theta[2:]])
            nll, _ = objective.nll(trial)
            if best is None or nll < best[0]:
                best = (nll, trial)
    return best[1]


# -------------------------------------------------------------------------------- the fit

@dataclass
class FitResult:
    """Outcome of one maximum-likelihood fit.

    ``params`` are ``flux, sersic_n, sersic_r, g1, g2`` in label units; ``converged`` is
    L-BFGS-B's own verdict; ``seconds`` the CPU time of the fit (one core); ``nfev`` objective
    evaluations (each a few GalSim renders), ``renders`` all renders including the start.
    """

    params: np.ndarray
    converged: bool
    nfev: int
    nit: int
    seconds: float
    message: str
    nll: float
    renders: int = 0
    start: np.ndarray = field(default_factory=lambda: np.full(5, np.nan))


def fit_image(image: np.ndarray, psf_fwhm: float, sigma: float, start=None,
              renderer: GalaxyRenderer | None = None, maxiter: int = 100,
              gtol: float = 3e-3, ftol: float = 1e-6, restarts: int = 2, stamp=None,
              gain: float | None = 1.0, bounds=None, flux_range=None) -> FitResult:
    """Fit one noisy image by maximum likelihood (L-BFGS-B); see the module docstring.

    Parameters
    ----------
    image
        (64, 64) noisy image, photo-electrons.
    psf_fwhm
        Moffat (beta = 2) FWHM in arcsec.
    sigma
        Gaussian read-noise level, photo-electrons per pixel.
    start
        optional starting ``flux, sersic_n, sersic_r, g1, g2`` (the flux is ignored: it is
        profiled); default: from adaptive moments (`start_point`).
    renderer
        the `GalaxyRenderer` whose PSF to use (default: the process-wide one).
    maxiter
        L-BFGS-B iteration limit.
    gtol
        tolerance on the projected gradient, in units of the statistical errors.
    ftol
        tolerance on the relative decrease of the NLL.
    restarts
        how many times to restart L-BFGS-B after a failed line search.
    stamp
        a `galaxies.simulation.render.Stamp`: fit a cutout at its own pixel scale, shape, PSF
        and centre (``psf_fwhm`` may then be None and ``sigma`` a map; no range checks:
        `galaxies.cutouts.measure` flags what lies outside the simulations).
    gain, bounds, flux_range
        the Poisson gain, the box of (n, r, g1, g2) and the flux range
        (`galaxies.inference.likelihood.Objective`; defaults: the simulation's).

    Raises ValueError for an image of the wrong shape or with non-finite pixels, and
    `ParameterRangeError` for a PSF or noise level outside the simulated ranges.
    """
    from scipy.optimize import minimize

    image = np.asarray(image, dtype=np.float64)
    shape = (IMAGE_SIZE, IMAGE_SIZE) if stamp is None else tuple(stamp.shape)
    if image.shape != shape:
        raise InputError(f"image has shape {image.shape}, expected {shape}")
    if not np.all(np.isfinite(image)):
        raise InputError("image has non-finite pixels")
    if stamp is None:
        psf_fwhm = check_range("psf_fwhm", psf_fwhm)
        sigma = check_range("sigma", sigma)
    box = BOUNDS if bounds is None else np.asarray(bounds, dtype=float)
    t0 = time.process_time()
    objective = Objective(SersicModel(psf_fwhm, renderer=renderer, stamp=stamp), image, sigma,
                          gain=gain, bounds=box, **({} if flux_range is None else
                                                    {"flux_range": flux_range}))
    if start is None:
        theta0 = start_point(image, objective)
    else:
        start = np.asarray(start, dtype=float)
        if start.shape != (5,) or not np.all(np.isfinite(start)):
            raise InputError(f"start = {start} must be five finite numbers (flux, n, r, g1, g2)")
        theta0 = np.clip(start[1:], box[:, 0], box[:, 1])
    objective.set_variance(theta0)
    # L-BFGS-B works in units of each parameter's statistical error at the start, so one
    # tolerance fits every galaxy and SNR.
    scale = objective.curvature_scale(theta0)
    objective.scale = scale
    bounds = [(lo / s, hi / s) for (lo, hi), s in zip(box, scale)]
    objective.offset = objective.evaluate(theta0)["nll"]
    x, nfev, nit = theta0 / scale, 0, 0
    for attempt in range(1 + restarts):
        result = minimize(objective, x, jac=True, method="L-BFGS-B", bounds=bounds,
                          options={"maxiter": maxiter - nit, "gtol": gtol, "ftol": ftol,
                                   "maxcor": 10})
        x, nfev, nit = result.x, nfev + int(result.nfev), nit + int(result.nit)
        if result.success or nit >= maxiter:
            break
        # A failed line search is almost always a jump of the FFT size met on the way
        # (the galaxy grew): hold the largest size seen and go on from where it stopped.
        objective.fft_size = max(objective.fft_size, objective.largest_fft)
    theta = np.clip(x * scale, box[:, 0], box[:, 1])
    point = objective.evaluate(theta)
    message = str(result.message) + (f" (after {attempt} restart(s))" if attempt else "")
    return FitResult(params=np.concatenate([[point["flux"]], theta]),
                     converged=bool(result.success), nfev=nfev, nit=nit,
                     seconds=time.process_time() - t0, message=message,
                     nll=float(point["nll"]), renders=objective.model.renders,
                     start=np.concatenate([[np.nan], theta0]))


# ----------------------------------------------------------------------------- data sets

def _fit_rows(images: np.ndarray, psf_fwhm: np.ndarray, sigma: np.ndarray,
              starts: np.ndarray) -> list[tuple]:
    """Fit each image (from its row of ``starts``, or adaptive moments where that row is NaN);
    a fit that raises is returned as failed (NaN parameters), not dropped."""
    out = []
    for image, psf, noise, start in zip(images, psf_fwhm, sigma, starts):
        t0 = time.process_time()
        try:
            r = fit_image(image, float(psf), float(noise),
                          start=None if np.isnan(start).all() else start)
            out.append((r.params, r.converged, r.nfev, r.nit, r.seconds, r.message))
        except Exception as err:  # noqa: BLE001 - reported per row, the run goes on
            out.append((np.full(5, np.nan), False, 0, 0, time.process_time() - t0,
                        f"failed: {type(err).__name__}: {err}"))
    return out


def _checked_noise(psf_fwhm: np.ndarray, sigma: np.ndarray, path) -> tuple[np.ndarray, np.ndarray]:
    """PSF FWHM and sigma per row as float64, within the simulated ranges (float32 rounding
    at the edges allowed), else `ParameterRangeError` naming the row and the file."""
    from galaxies.runtime.errors import ParameterRangeError
    out = []
    for name, values in (("psf_fwhm", psf_fwhm), ("sigma", sigma)):
        values = np.asarray(values, dtype=np.float64)
        low, high = RANGES[name].low, RANGES[name].high
        near = (values >= low * (1 - 1e-6)) & (values <= high * (1 + 1e-6))
        bad = np.flatnonzero(~near)
        if len(bad):
            raise ParameterRangeError(
                f"{path}: row {int(bad[0])}: {name} = {values[bad[0]]:g} is outside the allowed "
                f"range [{low:g}, {high:g}] {RANGES[name].units}")
        out.append(np.clip(values, low, high))
    return out[0], out[1]


def fit_dataset(data_path, out_path, limit: int | None = None, jobs: int | None = None,
                progress: bool = True, force: bool = False, start=None) -> Path:
    """Fit every image of a data set (or the first ``limit``) and write the predictions file.

    Parameters
    ----------
    data_path
        a data set following docs/architecture.md (``img``, ``psf_fwhm`` and ``sigma`` are
        used).
    out_path
        the predictions file to write (atomically; an existing one is replaced only with
        ``force``).
    limit
        fit only the first ``limit`` rows.
    jobs
        worker processes (default: all cores; 1 fits in this process).
    progress
        show a tqdm progress bar.
    force
        replace an existing ``out_path``.
    start
        another estimator's predictions file of this data set to start from instead of adaptive
        moments (its rows, its first ``limit``, are fitted; the estimator is then ``lbfgsb+<its
        name>``).

    The file holds the contract's ``pred``, ``index``, attributes ``estimator`` (``lbfgsb``),
    ``dataset`` and ``seconds_per_image`` (mean CPU time of one fit on one core, including the
    one-off Sérsic tables each worker builds), plus per-row ``converged``, ``nfev``, ``nit``,
    ``seconds`` and ``message``, and attributes saying how it was run. Fits that fail or do not
    converge are kept, flagged (failed ones with NaN parameters).
    """
    from galaxies.runtime.parallel import map_rows
    from galaxies.runtime.resources import resolve_jobs
    from galaxies.storage import files
    from galaxies.storage.atomic import check_destination
    from galaxies.storage.chunked import DatasetReader, RowSource

    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 1):
        raise InputError(f"limit = {limit} must be a positive integer")
    check_destination(out_path, data_path, *([] if start is None else [start]), force=force)
    if start is None:  # the images are read block by block as the fits go
        ds = DatasetReader(data_path, fields=("img",), rows=None if limit is None else int(limit))
        starts = np.full((len(ds), 5), np.nan)
    else:
        start = files.load_predictions(start)
        rows = files.rows_of(start, data_path, limit)
        order = np.argsort(rows)
        ds = DatasetReader(data_path, fields=("img",), rows=rows[order])
        starts = start.pred[:len(rows)][order].astype(np.float64)
    if len(ds) == 0:
        raise InputError(f"{ds.path}: no rows to fit")
    psf_fwhm, sigma = _checked_noise(ds.table.psf_fwhm, ds.table.sigma, ds.path)
    wall = time.perf_counter()
    results, jobs = map_rows(_fit_rows, RowSource(ds, "img", psf_fwhm, sigma, starts),
                             resolve_jobs(jobs), desc=f"fit {ds.name}", progress=progress)
    wall = time.perf_counter() - wall
    params = np.array([r[0] for r in results], dtype=np.float64)
    converged = np.array([r[1] for r in results], dtype=bool)
    seconds = np.array([r[4] for r in results])
    messages = [r[5] for r in results]
    failed = int(sum(m.startswith("failed") for m in messages))
    attrs = {
        "method": "maximum likelihood, scipy L-BFGS-B; flux profiled; Sérsic index interpolated "
                  f"(Catmull-Rom) between GalSim profiles at a {NODE_SPACING} grid",
        "noise_model": "Gaussian, variance sigma^2 + mu (Poisson + read noise), mu of the "
                       "starting model",
        "jobs": jobs, "limit": -1 if limit is None else int(limit),
        "wall_seconds": wall, "timing": "seconds_per_image: mean CPU time of one fit in a "
                                        "single-threaded process (one core)",
        "median_seconds_per_image": float(np.median(seconds)),
        "converged_fraction": float(converged.mean()), "failed": failed,
        "not_converged_messages": json.dumps(sorted({m for m, c in zip(messages, converged)
                                                     if not c})),
    }
    extra = {"converged": converged, "nfev": np.array([r[2] for r in results], dtype=np.int32),
             "nit": np.array([r[3] for r in results], dtype=np.int32), "seconds": seconds,
             "message": np.array(messages, dtype=object).astype("S")}
    name, before = "lbfgsb", 0.0
    if start is not None:  # a two-stage estimator: its time is both stages'
        name, before = f"lbfgsb+{start.estimator}", start.seconds_per_image
        attrs.update(start_estimator=start.estimator, start_predictions=str(start.path),
                     start_seconds_per_image=before, fit_seconds_per_image=float(seconds.mean()))
    return files.write_predictions(out_path, params, ds.rows, estimator=name, dataset=ds.name,
                                   seconds_per_image=before + float(seconds.mean()), extra=extra,
                                   attrs=attrs, force=force)


def describe_fits(paths: dict) -> "pd.DataFrame":
    """How the fits went, one row per predictions file (``{test set: path}``): fits, share
    converged, failures, CPU seconds per image (mean and median, one core), processes and wall
    time."""
    import pandas as pd

    from galaxies.storage import files
    rows = {}
    for name, path in paths.items():
        p = files.load_predictions(path)
        rows[name] = {"fits": len(p), "converged %": 100 * float(np.mean(p.extra["converged"])),
                      "failed": int(p.attrs.get("failed", 0)),
                      "s per image (mean)": p.seconds_per_image,
                      "s per image (median)": float(np.median(p.extra["seconds"])),
                      "evaluations (mean)": float(np.mean(p.extra["nfev"])),
                      "processes": int(p.attrs.get("jobs", 1)),
                      "wall s": float(p.attrs.get("wall_seconds", np.nan))}
    return pd.DataFrame(rows).T
