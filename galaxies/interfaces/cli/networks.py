"""Commands for the networks: ``train`` one, and ``predict`` a data set with any estimator
(without a model directory, the profile's recommended network: `recommended_model`, which
``measure`` uses too)."""
from __future__ import annotations

import click

from galaxies.networks.models import BUILDERS
from galaxies.runtime.errors import InputError

from .options import COUNT, PROFILE_OPTION, SEED, Command


def recommended_model(profile, instead: str):
    """The model directory of ``profile``'s recommended network (default: $GALAXIES_PROFILE,
    else quick), or an `InputError` saying it is not trained and what to give ``instead``."""
    from galaxies.runtime import profiles
    chosen = profiles.get(profile)
    model_dir = chosen.recommended_dir
    if not model_dir.is_dir():
        raise InputError(f"the recommended network of profile {chosen.name}, "
                         f"{chosen.recommended}, is not trained ({model_dir} is missing): run "
                         f"`make run PROFILE={chosen.name}` or {instead}")
    return model_dir


@click.command(cls=Command, renamed={"--data": "the first argument, DATA",
                                     "--out": "the second argument, MODEL_DIR",
                                     "--size": "--arch KEY=VALUE"})
@click.argument("data", type=click.Path(dir_okay=False))
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--model", type=click.Choice(BUILDERS), default="xception", show_default=True,
              help="The estimator's builder: the Xception-style network, or the architecture "
                   "the AutoKeras search found.")
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
@click.option("--arch", "arch", multiple=True, metavar="KEY=VALUE",
              help="A builder keyword, e.g. blocks=4 or stem=conv (repeatable).")
@click.option("--force", is_flag=True,
              help="Replace the model already in MODEL_DIR (never a folder that holds no model).")
def train(data, model_dir, model, profile, inputs, condition, psf_channel, uncertainty, epochs,
          batch_size, limit, seed, learning_rate, schedule, no_augment, arch, force):
    """Train a network (--model, default xception) on the data set DATA and save it to the
    model directory MODEL_DIR."""
    from galaxies.networks.training import TrainingConfig, fit
    overrides = {k: v for k, v in dict(epochs=epochs, batch_size=batch_size,
                                       learning_rate=learning_rate).items() if v is not None}
    if arch:
        overrides["model_kwargs"] = _keywords(arch)
    config = TrainingConfig.from_profile(
        profile, model=model, inputs=inputs, psf_channel=psf_channel, uncertainty=uncertainty,
        conditioning=tuple(c for c in condition.split(",") if c), limit=limit, seed=seed,
        schedule=schedule, augment=not no_augment, **overrides)
    saved = fit(config, data, model_dir, force=force)
    click.echo(f"wrote {saved.path} ({saved.info['epochs_run']} epochs, "
               f"{saved.info['training_seconds']:.0f} s, best val loss {saved.info['best_val_loss']:.4g})")


def _keywords(pairs) -> dict:
    """``("blocks=4", "stem=conv")`` -> ``{"blocks": 4, "stem": "conv"}`` (numbers parsed)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--arch {pair!r} must look like KEY=VALUE, e.g. blocks=4")
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        out[key.strip()] = value
    return out


@click.command(cls=Command)
@click.argument("paths", nargs=-1, metavar="[MODEL_DIR] DATA PRED")
@PROFILE_OPTION
@click.option("--limit", type=COUNT, default=None, help="Predict only the first rows.")
@click.option("--batch-size", type=COUNT, default=256, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite PRED if it exists.")
def predict(paths, profile, limit, batch_size, force):
    """Predict every galaxy of DATA with the estimator in MODEL_DIR (a network, a two-stage
    directory, which brings its denoiser, or 'lbfgsb' for the fit; without it, the --profile's
    recommended network); write the predictions PRED."""
    from galaxies.evaluation import estimators
    if len(paths) not in (2, 3):
        raise InputError(f"{len(paths)} path(s) given: name [MODEL_DIR] DATA PRED")
    if len(paths) == 2:
        model_dir = recommended_model(profile, instead="name a MODEL_DIR")
        data, pred = paths
    else:
        model_dir, data, pred = paths
    estimator = estimators.load(model_dir)
    estimator.batch_size = batch_size
    path = estimator.predict_file(data, pred, limit=limit, force=force)
    click.echo(f"wrote {path} ({estimator.name})")
