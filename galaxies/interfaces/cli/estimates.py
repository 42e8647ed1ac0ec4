"""Commands over the likelihood and the truth: ``crb`` (the bound), ``fit`` (the maximum-likelihood
fit), ``refine`` (Gauss-Newton steps from another estimate) and ``evaluate`` (accuracy against
the bound).
"""
from __future__ import annotations

import click

from galaxies.runtime.errors import InputError

from .options import COUNT, RENDERER, SCHEDULER, Command, galaxy_options


@click.command("crb", cls=Command, renamed={"--dataset": "the argument DATA",
                                     "--psf": "--psf-fwhm"})
@click.argument("dataset", metavar="[DATA]", required=False, type=click.Path(dir_okay=False))
@galaxy_options
@click.option("--limit", type=COUNT, default=None, help="With DATA: only the first LIMIT rows.")
@click.option("--jobs", type=COUNT, default=None, help="With DATA: worker processes.")
@SCHEDULER
@RENDERER
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object keyed by label column.")
def crb_command(dataset, flux, sersic_n, sersic_r, g1, g2, psf_fwhm, sigma, limit, jobs, scheduler,
        renderer, as_json):
    """Cramér–Rao bounds (standard deviations) of flux, n, r, g1 and g2 for one galaxy image.

    With a data set DATA, the bounds of each galaxy of a data set are computed (and kept beside it,
    in <set>.crb.h5, or <set>.crb-jax.h5 for the JAX model's); their RMS over the rows is printed.
    """
    import json

    import numpy as np

    from galaxies.conventions import LABEL_COLUMNS, check_parameters
    from galaxies.inference import crb, crb_sets
    from galaxies.inference.differentiable.bound import cramer_rao_bounds
    from galaxies.runtime.parallel import engine
    if dataset:
        with engine(scheduler, workers=jobs):
            bounds = crb_sets.for_dataset(dataset, limit=limit, jobs=jobs, renderer=renderer)
        done = ~np.isnan(bounds).all(axis=1)
        values = np.sqrt(np.nanmean(bounds[done] ** 2, axis=0)) if done.any() else np.full(5, np.nan)
        title = (f"RMS Cramér–Rao bound over {int(done.sum())} galaxies of {dataset} "
                 f"(per galaxy in {crb_sets.cache_path(dataset, renderer)})")
    else:
        galaxy = (flux, sersic_n, sersic_r, g1, g2, psf_fwhm, sigma)
        check_parameters(*galaxy)
        values = (cramer_rao_bounds([galaxy[:5]], galaxy[5:6], sigma)[0] if renderer == "jax"
                  else crb.cramer_rao_bound(*galaxy))
        title = (f"Cramér–Rao bound (1 sigma) at flux={flux:g}, n={sersic_n:g}, r={sersic_r:g}, "
                 f"g=({g1:g}, {g2:g}), psf={psf_fwhm:g}, sigma={sigma:g}")
    if as_json:
        click.echo(json.dumps({c: float(v) for c, v in zip(LABEL_COLUMNS, values)}))
        return
    click.echo(title)
    for column, value in zip(LABEL_COLUMNS, values):
        click.echo(f"  {column:<9} {value:.4g}")


@click.command("fit", cls=Command)
@click.argument("data", type=click.Path(dir_okay=False))
@click.argument("pred", type=click.Path(dir_okay=False))
@click.option("--limit", type=COUNT, default=None, help="Fit only the first LIMIT images.")
@click.option("--jobs", type=COUNT, default=None, help="Worker processes [default: all cores].")
@click.option("--start", type=click.Path(dir_okay=False), default=None,
              help="Start from this estimator's predictions of DATA instead of adaptive moments.")
@SCHEDULER
@RENDERER
@click.option("--force", is_flag=True, help="Overwrite PRED if it exists.")
def fit_command(data, pred, limit, jobs, start, scheduler, renderer, force):
    """Maximum-likelihood fit of every image of DATA (Levenberg–Marquardt on the JAX model, or
    L-BFGS-B on GalSim's renders); predictions written to PRED."""
    from galaxies.inference import galsim_fit
    from galaxies.inference.differentiable import datasets
    from galaxies.runtime.parallel import engine
    from galaxies.storage import files
    with engine(scheduler, workers=jobs):
        path = (datasets if renderer == "jax" else galsim_fit).fit_dataset(
            data, pred, limit=limit, jobs=jobs, force=force, start=start)
    result = files.load_predictions(path)
    click.echo(f"wrote {path}: {len(result)} fits, {int(result.extra['converged'].sum())} converged, "
               f"{result.seconds_per_image:.3f} s per image (CPU, one core)")


@click.command("refine", cls=Command)
@click.argument("paths", nargs=-1, metavar="[MODEL_DIR] DATA OUT")
@click.option("--start", type=click.Path(dir_okay=False), default=None,
              help="Refine these predictions of DATA instead of a model's.")
@click.option("--steps", type=COUNT, default=2, show_default=True,
              help="Gauss-Newton steps per image (it stops earlier once converged).")
@click.option("--limit", type=COUNT, default=None, help="Refine only the first rows.")
@click.option("--jobs", type=COUNT, default=None, help="Worker processes [default: all cores].")
@SCHEDULER
@RENDERER
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
def refine_command(paths, start, steps, limit, jobs, scheduler, renderer, force):
    """Refine an estimator's estimates of DATA by a few steps of the likelihood: the network in
    MODEL_DIR predicts first (or --start gives its predictions); the refined estimates, their
    standard deviations from the Fisher matrix and per-row flags are written to OUT."""
    from galaxies.evaluation import estimators
    from galaxies.inference import refine
    from galaxies.inference.differentiable import datasets
    from galaxies.runtime.parallel import engine
    from galaxies.storage import atomic
    from galaxies.storage.files import load_predictions
    if len(paths) != (2 if start else 3):
        raise InputError(f"expected {'DATA OUT with --start' if start else 'MODEL_DIR DATA OUT'}, "
                         f"got {len(paths)} path(s): {' '.join(paths) or 'none'}")
    data, out = paths[-2:]
    atomic.check_destination(out, data, *paths[:1], *([start] if start else []), force=force)
    made = None
    with atomic.made_parents(out):  # a folder made for OUT is removed again if this fails
        try:
            if start is None:  # the network's predictions, under a temporary name beside OUT
                made = atomic.temporary_name(out)
                start = estimators.load(paths[0]).predict_file(data, made, limit=limit)
            with engine(scheduler, workers=jobs):
                path = (datasets if renderer == "jax" else refine).refine_dataset(
                    start, data, out, steps=steps, jobs=jobs, limit=limit, force=force)
        finally:
            if made is not None:
                made.unlink(missing_ok=True)
    result = load_predictions(path)
    click.echo(f"wrote {path} ({result.estimator}): {len(result)} galaxies, "
               f"{result.attrs['converged_fraction']:.1%} converged, {result.attrs['failed']} "
               f"failed, {result.seconds_per_image:.3f} s per image (both stages)")


@click.command("evaluate", cls=Command)
@click.argument("data", type=click.Path(dir_okay=False))
@click.argument("pred", type=click.Path(dir_okay=False))
@click.option("--no-crb", is_flag=True, help="Skip the Cramér–Rao bound (and the ratios to it).")
@click.option("--by-snr", is_flag=True, help="Also print the RMSE in bins of SNR.")
@click.option("--jobs", type=COUNT, default=None, help="Processes for the bounds of a random set.")
def evaluate_command(data, pred, no_crb, by_snr, jobs):
    """Bias, standard deviation and RMSE of the predictions PRED of data set DATA, and their
    ratios to the Cramér–Rao bound."""
    import pandas as pd

    from galaxies.evaluation import evaluate
    from galaxies.storage import files
    if _is_predictions(data) and not _is_predictions(pred):
        raise InputError(f"{data} holds predictions and {pred} does not: the order is DATA PRED "
                         f"(galaxies evaluate {pred} {data})")
    predictions = files.load_predictions(pred)
    dataset = files.load_dataset(data, fields=())
    if no_crb:
        table = evaluate.summary(predictions, dataset)
    else:
        table = evaluate.against_dataset_crb(predictions, dataset, jobs=jobs)
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 120):
        left_out = evaluate.dropped(*evaluate.aligned(predictions, dataset)[:2])
        click.echo(f"{predictions.estimator} on {dataset.name} ({len(predictions)} rows, "
                   f"{predictions.seconds_per_image:.3g} s per image)"
                   + (f"; {left_out['rows']} row(s) left out for NaN or infinite predictions "
                      f"({left_out['predictions']}) or labels ({left_out['labels']}): see the "
                      f"columns n and dropped" if left_out["rows"] else ""))
        click.echo(table.to_string())
        if by_snr:
            click.echo(evaluate.by_snr(predictions, dataset).to_string())


def _is_predictions(path) -> bool:
    """Whether ``path`` is a regular HDF5 file with a predictions file's ``pred`` field (False
    for anything else, never opening a pipe or a device: the loaders then say what is wrong)."""
    from pathlib import Path
    try:
        import h5py
        if not Path(path).is_file():
            return False
        with h5py.File(path, "r") as f:
            return "pred" in f
    except Exception:  # noqa: BLE001 - not a readable predictions file; load_* reports why
        return False
