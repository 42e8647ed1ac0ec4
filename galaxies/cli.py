"""The ``galaxies`` command line.

Each subcommand is a thin layer over the package. User errors (`galaxies.errors`: a value out
of range, a file that breaks its contract, an existing output, a path that cannot be read or
written, an option that is not allowed) end with status 2 and one line,
``galaxies: error: ...``; anything else is a bug and shows its traceback. Ctrl-C exits 130 and
SIGTERM 143, each with one line, after the worker processes are stopped and temporary files
removed. Heavy libraries (TensorFlow, Keras) are imported only by the commands that need them.
"""
from __future__ import annotations

import click

from . import __version__
from .commandline import COUNT, RENDERER, SCHEDULER, SEED, Group, fail, user_errors
from .errors import InputError
from .simulate import TEST_GALAXY

PROFILE_OPTION = click.option(
    "--profile", default=None, envvar="GALAXIES_PROFILE", show_envvar=True,
    type=click.Choice(["smoke", "quick", "full"]), help="[default: quick]")
#: the seed's option names, kept by its scripts data/generator.py and data/gen_test.py
SEED_ALIASES = {"--noise": "--sigma", "--sersic-index": "--sersic-n", "--sersic-radius": "--sersic-r"}


def seed_arguments(argv: list[str], drop=("--jobs",)) -> list[str]:
    """Command-line arguments in the seed's spelling, in this CLI's: option names through
    `SEED_ALIASES` (``--noise 200`` and ``--noise=200``); options in ``drop`` (which the
    seed accepted and this command does not need) are removed with their value."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name, sep, value = arg.partition("=")
        if name in drop:
            skip = not sep
            continue
        out.append(SEED_ALIASES.get(name, name) + sep + value if name.startswith("--") else arg)
    return out


def _float_or_random(value: str | None, name: str) -> float | None:
    if value is None or str(value).lower() == "random":
        return None
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"{name} = {value!r} must be a number or 'random'") from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="galaxies")
def main():
    """Simulate galaxies, train estimators of their parameters, and compare them."""


# ------------------------------------------------------------------------ data generation

@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--size", type=COUNT, required=True, help="Number of galaxies.")
@click.option("--sersics", type=COUNT, default=None,
              help="Draw n from this many equally spaced values in [0.5, 6] [default: continuous].")
@click.option("--psf", default="random", show_default=True,
              help="PSF FWHM in arcsec, or 'random' (uniform in [0.5, 1.0]).")
@click.option("--sigma", default="random", show_default=True,
              help="Read-noise sigma, or 'random' (uniform in [200, 400]).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--jobs", type=COUNT, default=None, help="Worker processes [default: all cores].")
@SCHEDULER
@click.option("--sampler", type=click.Choice(["envelope", "rejection"]), default="envelope",
              show_default=True, help="'rejection' renders every candidate (same rows, slower).")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.option("--resume", is_flag=True, help="Continue the partial file an interrupted run left.")
@user_errors
def generate(file, size, sersics, psf, sigma, seed, jobs, scheduler, sampler, force, resume):
    """Write a training set of random galaxies with SNR in [10, 100] to FILE."""
    from .generate import RandomSpec, generate_random
    from .parallel import engine
    spec = RandomSpec(sersics=sersics, psf_fwhm=_float_or_random(psf, "--psf"),
                      sigma=_float_or_random(sigma, "--sigma"), sampler=sampler)
    with engine(scheduler, workers=jobs):
        path = generate_random(file, spec, size, seed, jobs=jobs, force=force, resume=resume)
    click.echo(f"wrote {path}")


def _galaxy_options(func):
    """The options that describe one galaxy image, defaults the test galaxy's (snr60)."""
    for name, key, help_text in reversed([
            ("--flux", "flux", "Total flux, photo-electrons."),
            ("--sersic-n", "sersic_n", "Sérsic index."),
            ("--sersic-r", "sersic_r", "Half-light radius, arcsec."),
            ("--g1", "g1", "Reduced shear g1."), ("--g2", "g2", "Reduced shear g2."),
            ("--psf", "psf_fwhm", "PSF FWHM, arcsec.")]):
        func = click.option(name, key, type=float, default=TEST_GALAXY[key], show_default=True,
                            help=help_text)(func)
    return click.option("--sigma", type=float, default=200.0, show_default=True,
                        help="Read-noise sigma, photo-electrons.")(func)


@main.command("generate-test")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--size", type=COUNT, required=True, help="Number of noise realizations.")
@_galaxy_options
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.option("--resume", is_flag=True, help="Continue the partial file an interrupted run left.")
@user_errors
def generate_test(file, size, flux, sersic_n, sersic_r, g1, g2, psf_fwhm, sigma, seed, force,
                  resume):
    """Write a test set to FILE: SIZE noise realizations of one fixed galaxy."""
    from .generate import FixedSpec, generate_fixed
    spec = FixedSpec(flux=flux, sersic_n=sersic_n, sersic_r=sersic_r, g1=g1, g2=g2,
                     psf_fwhm=psf_fwhm, sigma=sigma)
    path = generate_fixed(file, spec, size, seed, force=force, resume=resume)
    click.echo(f"wrote {path}")


@main.command()
@PROFILE_OPTION
@click.option("--only", default=None, help="Comma-separated recipe names [default: all].")
@click.option("--jobs", type=COUNT, default=None, help="Worker processes [default: all cores].")
@SCHEDULER
@click.option("--force", is_flag=True, help="Rebuild sets that already exist.")
@user_errors
def datasets(profile, only, jobs, scheduler, force):
    """Build the profile's data sets (v1, v2, v3, v1a, test and the fixed sets snr60, snr30,
    compact, extended) under data/<profile>/."""
    from .parallel import engine
    from .recipes import build_datasets
    with engine(scheduler, workers=jobs):
        build_datasets(profile, names=only.split(",") if only else None, jobs=jobs, force=force)


# ----------------------------------------------------------------------------- pipeline

@main.command()
@PROFILE_OPTION
@click.option("--only", default=None, help="Comma-separated step names [default: all].")
@click.option("--force", is_flag=True, help="Rerun steps even when nothing changed.")
@click.option("--jobs", type=COUNT, default=None, help="Processes for data generation.")
@click.option("--list", "list_steps", is_flag=True, help="List the steps and exit.")
@user_errors
def run(profile, only, force, jobs, list_steps):
    """Build the data sets and execute every notebook; results go to results/<profile>/."""
    from .pipeline import STEPS, StepFailed, runs
    from .pipeline import run as run_pipeline
    if list_steps:
        for step in STEPS:
            notebooks = " ".join(r.notebook + "".join(f"[{k}={v}]" for k, v in r.parameters)
                                 for r in runs(step))
            click.echo(f"{step.name:<14} {step.description}  {notebooks}")
        return
    try:
        run_pipeline(profile, only=only.split(",") if only else None, force=force, jobs=jobs)
    except StepFailed as err:  # a notebook failed: not the user's input, but no traceback either
        fail(f"error: {err}", 1)


# ------------------------------------------------------------- training and prediction

@main.command()
@click.argument("model", default="xception")
@click.option("--data", "data", type=click.Path(dir_okay=False), required=True, help="Training set (HDF5).")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Model directory to write.")
@PROFILE_OPTION
@click.option("--inputs", type=click.Choice(["noisy", "noiseless"]), default="noisy", show_default=True)
@click.option("--condition", default="", help="Comma-separated known inputs: psf_fwhm, sigma.")
@click.option("--psf-channel", is_flag=True, help="Give the PSF image as a second channel.")
@click.option("--uncertainty", is_flag=True, help="Also predict a standard deviation per label.")
@click.option("--epochs", type=COUNT, default=None, help="[default: the profile's]")
@click.option("--batch-size", type=COUNT, default=None, help="[default: the profile's]")
@click.option("--limit", type=COUNT, default=None, help="Use only the first rows of the set.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--learning-rate", type=float, default=None, help="Peak learning rate [default: the profile's].")
@click.option("--schedule", type=click.Choice(["cosine", "plateau"]), default="cosine", show_default=True)
@click.option("--no-augment", is_flag=True, help="Do not turn and mirror the training images.")
@click.option("--size", "sizes", multiple=True, metavar="KEY=VALUE",
              help="A builder keyword, e.g. blocks=4 or stem=conv (repeatable).")
@click.option("--force", is_flag=True, help="Replace the model already in --out (never a folder that holds no model).")
@user_errors
def train(model, data, out, profile, inputs, condition, psf_channel, uncertainty, epochs,
          batch_size, limit, seed, learning_rate, schedule, no_augment, sizes, force):
    """Train MODEL (default xception) on a data set and save it to a model directory."""
    from .training import TrainingConfig, fit
    overrides = {k: v for k, v in dict(epochs=epochs, batch_size=batch_size,
                                       learning_rate=learning_rate).items() if v is not None}
    if sizes:
        overrides["model_kwargs"] = _keywords(sizes)
    config = TrainingConfig.from_profile(
        profile, model=model, inputs=inputs, psf_channel=psf_channel, uncertainty=uncertainty,
        conditioning=tuple(c for c in condition.split(",") if c), limit=limit, seed=seed,
        schedule=schedule, augment=not no_augment, **overrides)
    saved = fit(config, data, out, force=force)
    click.echo(f"wrote {saved.path} ({saved.info['epochs_run']} epochs, "
               f"{saved.info['training_seconds']:.0f} s, best val loss {saved.info['best_val_loss']:.4g})")


def _keywords(pairs) -> dict:
    """``("blocks=4", "stem=conv")`` -> ``{"blocks": 4, "stem": "conv"}`` (numbers parsed)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--size {pair!r} must look like KEY=VALUE, e.g. blocks=4")
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        out[key.strip()] = value
    return out


@main.command()
@click.argument("paths", nargs=-1, metavar="[MODEL_DIR] DATA PRED")
@click.option("--profile", default=None, help="Without MODEL_DIR: whose recommended network "
              "[default: $GALAXIES_PROFILE, else quick].")
@click.option("--limit", type=COUNT, default=None, help="Predict only the first rows.")
@click.option("--batch-size", type=COUNT, default=256, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite PRED if it exists.")
@user_errors
def predict(paths, profile, limit, batch_size, force):
    """Predict every galaxy of DATA with the estimator in MODEL_DIR (a network, a two-stage
    directory, which brings its denoiser, or 'lbfgsb' for the fit; without it, the profile's
    recommended network); write the predictions PRED."""
    from . import estimators, profiles
    if len(paths) not in (2, 3):
        raise InputError(f"{len(paths)} path(s) given: name [MODEL_DIR] DATA PRED")
    if len(paths) == 2:
        chosen = profiles.get(profile)
        model_dir = chosen.recommended_dir
        if not model_dir.is_dir():
            raise InputError(f"the recommended network of profile {chosen.name}, "
                             f"{chosen.recommended}, is not trained ({model_dir} is missing): run "
                             f"`make run PROFILE={chosen.name}` or name a MODEL_DIR")
        data, pred = paths
    else:
        model_dir, data, pred = paths
    estimator = estimators.load(model_dir)
    estimator.batch_size = batch_size
    path = estimator.predict_file(data, pred, limit=limit, force=force)
    click.echo(f"wrote {path} ({estimator.name})")


# --------------------------------------------------------------- commands of later parts
# (the Cramér–Rao bound, fits, evaluation, training and prediction add theirs below)

@main.command()
@_galaxy_options
@click.option("--dataset", type=click.Path(dir_okay=False), default=None,
              help="Instead: the bounds of every galaxy of this data set (cached next to it).")
@click.option("--limit", type=COUNT, default=None, help="With --dataset: only the first LIMIT rows.")
@click.option("--jobs", type=COUNT, default=None, help="With --dataset: worker processes.")
@SCHEDULER
@RENDERER
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object keyed by label column.")
@user_errors
def crb(flux, sersic_n, sersic_r, g1, g2, psf_fwhm, sigma, dataset, limit, jobs, scheduler,
        renderer, as_json):
    """Cramér–Rao bounds (standard deviations) of flux, n, r, g1 and g2 for one galaxy image.

    With --dataset, the bounds of each galaxy of a data set are computed (and kept beside it,
    in <set>.crb.h5, or <set>.crb-jax.h5 for the JAX model's); their RMS over the rows is printed.
    """
    import json
    import numpy as np
    from . import crb as crb_module, crb_sets
    from .differentiable.bound import cramer_rao_bounds
    from .parallel import engine
    from .simulate import LABEL_COLUMNS, check_parameters
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
                  else crb_module.cramer_rao_bound(*galaxy))
        title = (f"Cramér–Rao bound (1 sigma) at flux={flux:g}, n={sersic_n:g}, r={sersic_r:g}, "
                 f"g=({g1:g}, {g2:g}), psf={psf_fwhm:g}, sigma={sigma:g}")
    if as_json:
        click.echo(json.dumps({c: float(v) for c, v in zip(LABEL_COLUMNS, values)}))
        return
    click.echo(title)
    for column, value in zip(LABEL_COLUMNS, values):
        click.echo(f"  {column:<9} {value:.4g}")


@main.command()
@click.argument("data", type=click.Path(dir_okay=False))
@click.argument("pred", type=click.Path(dir_okay=False))
@click.option("--limit", type=COUNT, default=None, help="Fit only the first LIMIT images.")
@click.option("--jobs", type=COUNT, default=None, help="Worker processes [default: all cores].")
@click.option("--start", type=click.Path(dir_okay=False), default=None,
              help="Start from this estimator's predictions of DATA instead of adaptive moments.")
@SCHEDULER
@RENDERER
@click.option("--force", is_flag=True, help="Overwrite PRED if it exists.")
@user_errors
def fit(data, pred, limit, jobs, start, scheduler, renderer, force):
    """Maximum-likelihood fit of every image of DATA (Levenberg–Marquardt on the JAX model, or
    L-BFGS-B on GalSim's renders); predictions written to PRED."""
    from . import baseline, files
    from .differentiable import datasets
    from .parallel import engine
    with engine(scheduler, workers=jobs):
        path = (datasets if renderer == "jax" else baseline).fit_dataset(
            data, pred, limit=limit, jobs=jobs, force=force, start=start)
    result = files.load_predictions(path)
    click.echo(f"wrote {path}: {len(result)} fits, {int(result.extra['converged'].sum())} converged, "
               f"{result.seconds_per_image:.3f} s per image (CPU, one core)")


@main.command()
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
@user_errors
def refine(paths, start, steps, limit, jobs, scheduler, renderer, force):
    """Refine an estimator's estimates of DATA by a few steps of the likelihood: the network in
    MODEL_DIR predicts first (or --start gives its predictions); the refined estimates, their
    standard deviations from the Fisher matrix and per-row flags are written to OUT."""
    from . import atomic, estimators, refine as refinement
    from .differentiable import datasets
    from .files import load_predictions
    from .parallel import engine
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
                path = (datasets if renderer == "jax" else refinement).refine_dataset(
                    start, data, out, steps=steps, jobs=jobs, limit=limit, force=force)
        finally:
            if made is not None:
                made.unlink(missing_ok=True)
    result = load_predictions(path)
    click.echo(f"wrote {path} ({result.estimator}): {len(result)} galaxies, "
               f"{result.attrs['converged_fraction']:.1%} converged, {result.attrs['failed']} "
               f"failed, {result.seconds_per_image:.3f} s per image (both stages)")


@main.command()
@click.argument("pred", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--no-crb", is_flag=True, help="Skip the Cramér–Rao bound (and the ratios to it).")
@click.option("--by-snr", is_flag=True, help="Also print the RMSE in bins of SNR.")
@click.option("--jobs", type=COUNT, default=None, help="Processes for the bounds of a random set.")
@user_errors
def evaluate(pred, data, no_crb, by_snr, jobs):
    """Bias, standard deviation and RMSE of the predictions PRED of data set DATA, and their
    ratios to the Cramér–Rao bound."""
    import pandas as pd
    from . import evaluate as ev
    from . import files
    predictions = files.load_predictions(pred)
    dataset = files.load_dataset(data, fields=())
    if no_crb:
        table = ev.summary(predictions, dataset)
    else:
        table = ev.against_dataset_crb(predictions, dataset, jobs=jobs)
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 120):
        left_out = ev.dropped(*ev.aligned(predictions, dataset)[:2])
        click.echo(f"{predictions.estimator} on {dataset.name} ({len(predictions)} rows, "
                   f"{predictions.seconds_per_image:.3g} s per image)"
                   + (f"; {left_out['rows']} row(s) left out for NaN or infinite predictions "
                      f"({left_out['predictions']}) or labels ({left_out['labels']}): see the "
                      f"columns n and dropped" if left_out["rows"] else ""))
        click.echo(table.to_string())
        if by_snr:
            click.echo(ev.by_snr(predictions, dataset).to_string())


from .cli_measure import measure  # noqa: E402 - the command lives in its own module

main.add_command(measure)

if __name__ == "__main__":
    main()
