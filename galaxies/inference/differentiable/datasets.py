"""The differentiable model's fit and refinement of a whole data set, written as predictions.

The same products as the GalSim path (`galaxies.inference.galsim_fit.fit_dataset`,
`galaxies.inference.refine.refine_dataset`): one predictions file (docs/architecture.md) with the same
per-row fields and attributes, so the report, the app and the tables treat both alike. Only the
way there differs: the images are read a block of `galaxies.storage.chunked.BLOCK_ROWS` rows at a time
and each block is one batch of `galaxies.inference.differentiable.fit.fit`, in this process (JAX spreads a
batch over the cores itself; worker processes would each compile the model again).

Names. Every product of the differentiable model carries `SUFFIX` (``-jax``): the fit is
``lm-jax`` (Levenberg–Marquardt, as the GalSim fit is ``lbfgsb`` after its minimizer), the
refinement of an estimator ``<start>+newton<K>-jax`` (K undamped Gauss–Newton steps at most,
as the GalSim refinement is ``<start>+newton<K>``).

Time. ``seconds_per_image`` is the CPU time of the whole run (every thread of this process,
JAX's compilation and the tables included) over its rows: what one image costs on this
machine; a row's ``seconds`` is its batch's CPU time over the batch's rows.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from galaxies.runtime.errors import InputError

__all__ = ["SUFFIX", "FIT_ESTIMATOR", "refined_name", "refinement_flags", "fit_dataset",
           "refine_dataset"]

#: What the differentiable model's estimators add to their names.
SUFFIX = "-jax"
#: The estimator name of the Levenberg–Marquardt fit on the differentiable model.
FIT_ESTIMATOR = f"lm{SUFFIX}"


def refined_name(start: str, steps: int) -> str:
    """The name of ``start``'s estimator refined by ``steps`` steps on the differentiable model."""
    return f"{start}+newton{steps}{SUFFIX}"


def refinement_flags(hit_box, nll_rose, converged, failed) -> np.ndarray:
    """The GalSim refinement's `galaxies.inference.refine.FLAGS` bits per row (uint8) from a fit's
    outcome: the box met, the NLL above the start's, not converged (a failed row is only
    ``failed``)."""
    from ..refine import FLAGS

    hit_box, nll_rose, converged, failed = (np.asarray(a, bool) for a in
                                            (hit_box, nll_rose, converged, failed))
    return (FLAGS["bound"] * hit_box + FLAGS["nll_rose"] * nll_rose
            + FLAGS["not_converged"] * (~converged & ~failed)
            + FLAGS["failed"] * failed).astype(np.uint8)


def _fit_blocks(reader, starts, desc: str, progress: bool, estimate) -> dict:
    """``estimate(images, psf_fwhm, sigma, starts)`` (`galaxies.inference.differentiable.fit.fit` or
    `~galaxies.inference.differentiable.fit.refine`) of each block of ``reader`` (its ``img``), from the
    block's rows of ``starts`` (None: from the images), joined into per-row arrays; rows whose
    start is not finite are left NaN and not estimated."""
    from tqdm.auto import tqdm

    from galaxies.runtime.console import show_progress

    from ..galsim_fit import _checked_noise

    rows = len(reader)
    out = {"params": np.full((rows, 5), np.nan), "std": np.full((rows, 5), np.nan),
           "steps": np.zeros(rows, np.int16), "evaluations": np.zeros(rows, np.int32),
           "converged": np.zeros(rows, bool), "hit_box": np.zeros(rows, bool),
           "nll_rose": np.zeros(rows, bool), "fitted": np.zeros(rows, bool),
           "seconds": np.zeros(rows)}
    psf_fwhm, sigma = _checked_noise(reader.table.psf_fwhm, reader.table.sigma, reader.path)
    at = 0
    with tqdm(total=rows, unit="image", desc=f"{desc} {reader.name}",
              disable=not show_progress(progress)) as bar:
        for block in reader.blocks():
            span = np.arange(at, at + len(block))
            at += len(block)
            ok = np.ones(len(span), bool) if starts is None else np.isfinite(starts[span]).all(1)
            take = span[ok]
            if len(take):
                result = estimate(block.img[ok], psf_fwhm[take], sigma[take],
                                  None if starts is None else starts[take])
                out["params"][take], out["std"][take] = result.params, result.std
                for name in ("steps", "evaluations", "converged", "hit_box"):
                    out[name][take] = getattr(result, name)
                out["nll_rose"][take] = result.nll > result.nll_start
                out["fitted"][take] = True
                out["seconds"][take] = result.seconds / len(take)
            bar.update(len(span))
    return out


def _started(start_path, data_path, limit):
    """The start's predictions, the data set's reader of its rows (its first ``limit``, in its
    order) and the starting labels (rows, 5), after `galaxies.storage.files.rows_of`'s checks."""
    from galaxies.storage import files
    from galaxies.storage.chunked import DatasetReader

    start = files.load_predictions(start_path)
    rows = files.rows_of(start, data_path, limit)
    reader = DatasetReader(data_path, fields=("img",), rows=rows)
    return start, reader, start.pred[:len(rows)].astype(np.float64)


def _run(reader, starts, desc: str, progress: bool, estimate) -> tuple[dict, float, float]:
    """`_fit_blocks`, with the CPU and wall seconds of the whole run."""
    cpu, wall = time.process_time(), time.perf_counter()
    out = _fit_blocks(reader, starts, desc, progress, estimate)
    return out, time.process_time() - cpu, time.perf_counter() - wall


def _timing(cpu: float, wall: float) -> dict:
    return {"jobs": 1, "wall_seconds": wall, "cpu_seconds": cpu,
            "timing": "seconds_per_image: CPU time of the whole run (every thread of one "
                      "process, JAX's compilation included) over its rows"}


def fit_dataset(data_path, out_path, limit: int | None = None, jobs: int | None = None,
                progress: bool = True, force: bool = False, start=None,
                max_steps: int = 30) -> Path:
    """Fit every image of a data set (or the first ``limit``) by Levenberg–Marquardt on the
    differentiable model and write the predictions file.

    The start is adaptive moments (`galaxies.inference.differentiable.fit.start_points`), or ``start``:
    another estimator's predictions file of this data set (its rows, its first ``limit``; the
    estimator is then ``lm-jax+<its name>``, its time both stages'). The file is
    `galaxies.inference.galsim_fit.fit_dataset`'s (``pred``, ``index``, per-row ``converged``, ``nfev``
    (model and Jacobian evaluations), ``nit`` (accepted steps), ``seconds``, ``message``, and
    ``pred_std``: the bound at the estimate), estimator `FIT_ESTIMATOR`. ``jobs`` is taken for
    the GalSim path's signature and unused: the batches run in this process.
    """
    from galaxies.storage import files
    from galaxies.storage.atomic import check_destination
    from galaxies.storage.chunked import DatasetReader

    from .fit import STOP, fit

    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 1):
        raise InputError(f"limit = {limit} must be a positive integer")
    check_destination(out_path, data_path, *([] if start is None else [start]), force=force)
    name, before, starts, attrs = FIT_ESTIMATOR, 0.0, None, {}
    if start is None:
        reader = DatasetReader(data_path, fields=("img",),
                               rows=None if limit is None else int(limit))
    else:  # a two-stage estimator: its time is both stages'
        start, reader, starts = _started(start, data_path, limit)
        name, before = f"{FIT_ESTIMATOR}+{start.estimator}", start.seconds_per_image
        attrs = {"start_estimator": start.estimator, "start_predictions": str(start.path),
                 "start_seconds_per_image": before}
    if len(reader) == 0:
        raise InputError(f"{reader.path}: no rows to fit")
    out, cpu, wall = _run(reader, starts, name, progress, lambda images, psf, sigma, begin: fit(
        images, psf, sigma, start=begin, max_steps=max_steps))
    converged = out["converged"] & out["fitted"]
    messages = np.where(converged, "converged", np.where(
        out["fitted"], f"stopped after {max_steps} steps", "failed: the start is not finite"))
    attrs |= {"method": "maximum likelihood, batched Levenberg–Marquardt (Marquardt's scaling, "
                       "the box of the generator's ranges) on the differentiable model "
                       "(galaxies.inference.differentiable), exact Jacobians by forward-mode autodiff",
             "noise_model": "Gaussian, variance sigma^2 + mu (Poisson + read noise), mu of the "
                            "starting model",
             "limit": -1 if limit is None else int(limit), "max_steps": int(max_steps),
             "stop": STOP, "median_seconds_per_image": float(np.median(out["seconds"])),
             "converged_fraction": float(converged.mean()), "failed": int((~out["fitted"]).sum()),
             "fit_seconds_per_image": cpu / len(reader), **_timing(cpu, wall)}
    extra = {"converged": converged, "nfev": out["evaluations"],
             "nit": out["steps"].astype(np.int32),
             "seconds": out["seconds"], "message": messages.astype("S")}
    return files.write_predictions(out_path, out["params"], reader.rows, estimator=name,
                                   dataset=reader.name,
                                   seconds_per_image=before + cpu / len(reader),
                                   pred_std=out["std"], extra=extra, attrs=attrs, force=force)


def refine_dataset(start_predictions_path, data_path, out_path, steps: int = 2,
                   jobs: int | None = None, stop: float | None = None, limit: int | None = None,
                   progress: bool = True, force: bool = False) -> Path:
    """Refine every row of a predictions file on its data set by at most ``steps`` Gauss–Newton
    steps of the differentiable model's likelihood (`galaxies.inference.differentiable.fit.fit` from the
    start, undamped first), and write the refined predictions.

    The file is `galaxies.inference.refine.refine_dataset`'s (``pred``, ``index``, ``pred_std``, per-row
    ``flags`` of `galaxies.inference.refine.FLAGS`, ``converged``, ``steps``, ``renders`` (model and
    Jacobian evaluations), ``seconds``, ``message``), estimator `refined_name`, its
    ``seconds_per_image`` the start's plus the refinement's. ``stop`` defaults to the GalSim
    refinement's `galaxies.inference.refine.STOP_FRACTION`. Rows whose start is not finite are kept, NaN,
    flagged ``failed``. ``jobs`` is unused, as in `fit_dataset`.
    """
    from galaxies.storage import files
    from galaxies.storage.atomic import check_destination

    from ..refine import FLAGS, STOP_FRACTION, _check
    from .fit import refine

    stop = STOP_FRACTION if stop is None else stop
    _check(steps, stop)
    check_destination(out_path, data_path, start_predictions_path, force=force)
    start, reader, starts = _started(start_predictions_path, data_path, limit)
    name = refined_name(start.estimator, steps)
    out, cpu, wall = _run(reader, starts, name, progress, lambda images, psf, sigma, begin: refine(
        images, psf, sigma, begin, steps, stop))
    failed = ~out["fitted"]
    flags = refinement_flags(out["hit_box"], out["nll_rose"], out["converged"], failed)
    messages = np.where(failed, "failed: the start is not finite", "")
    extra = {"flags": flags, "converged": (flags & (FLAGS["not_converged"] | FLAGS["failed"])) == 0,
             "steps": out["steps"], "renders": out["evaluations"], "seconds": out["seconds"],
             "message": messages.astype("S")}
    refine_seconds = cpu / len(reader)
    attrs = {
        "method": f"at most {steps} Gauss–Newton steps (Levenberg–Marquardt, undamped first) of "
                  f"the differentiable model's likelihood from {start.estimator}, early stop "
                  f"below {stop} std",
        "noise_model": "Gaussian, variance sigma^2 + mu, mu of the starting model",
        "start_estimator": start.estimator, "start_predictions": str(start.path),
        "start_seconds_per_image": start.seconds_per_image, "steps": int(steps), "stop": stop,
        "refine_seconds_per_image": refine_seconds, "flags": FLAGS,
        "limit": -1 if limit is None else int(limit),
        "converged_fraction": float(extra["converged"].mean()), "failed": int(failed.sum()),
        **_timing(cpu, wall)}
    return files.write_predictions(
        out_path, out["params"], reader.rows, estimator=name, dataset=reader.name,
        seconds_per_image=start.seconds_per_image + refine_seconds, pred_std=out["std"],
        extra=extra, attrs=attrs, force=force)
