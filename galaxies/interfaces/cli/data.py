"""Commands that make data sets: ``generate`` (a training set), ``generate-test`` (one galaxy,
many noise realizations) and ``datasets`` (every set of a profile). The original study's
scripts (data/generator.py, data/gen_test.py) call the first two with their option names
(`study_arguments`): ``--size`` is ``--rows`` here, ``--psf`` (a FWHM) ``--psf-fwhm``, since
``--psf`` names a PSF image file wherever the command line takes one.
"""
from __future__ import annotations

import click

from .options import (COUNT, FLOAT_OR_RANDOM, PROFILE_OPTION, SCHEDULER, SEED, Command,
                      galaxy_options)

#: the original study's option names, kept by its scripts data/generator.py and data/gen_test.py
STUDY_ALIASES = {"--noise": "--sigma", "--sersic-index": "--sersic-n",
                "--sersic-radius": "--sersic-r", "--size": "--rows", "--psf": "--psf-fwhm"}
#: the options `generate` and `generate-test` renamed (old spelling -> new)
RENAMED = {"--size": "--rows", "--psf": "--psf-fwhm"}


def study_arguments(argv: list[str], drop=("--jobs",)) -> list[str]:
    """Command-line arguments in the original study's spelling, in this CLI's: option names through
    `STUDY_ALIASES` (``--noise 200`` and ``--noise=200``); options in ``drop`` (which the
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
        out.append(STUDY_ALIASES.get(name, name) + sep + value if name.startswith("--") else arg)
    return out


@click.command(cls=Command, renamed=RENAMED)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--rows", type=COUNT, required=True, help="Number of galaxies.")
@click.option("--sersics", type=COUNT, default=None,
              help="Draw n from this many equally spaced values in [0.5, 6] [default: continuous].")
@click.option("--psf-fwhm", type=FLOAT_OR_RANDOM, default="random", show_default=True,
              help="PSF FWHM in arcsec, or 'random' (uniform in [0.5, 1.0]).")
@click.option("--sigma", type=FLOAT_OR_RANDOM, default="random", show_default=True,
              help="Read-noise sigma, or 'random' (uniform in [200, 400]).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--jobs", type=COUNT, default=None, help="Worker processes [default: all cores].")
@SCHEDULER
@click.option("--sampler", type=click.Choice(["envelope", "rejection"]), default="envelope",
              show_default=True, help="'rejection' renders every candidate (same rows, slower).")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.option("--resume", is_flag=True, help="Continue the partial file an interrupted run left.")
def generate(file, rows, sersics, psf_fwhm, sigma, seed, jobs, scheduler, sampler, force,
             resume):
    """Write a training set of random galaxies with SNR in [10, 100] to FILE."""
    from galaxies.runtime.parallel import engine
    from galaxies.simulation.generate import RandomSpec, generate_random
    spec = RandomSpec(sersics=sersics, psf_fwhm=psf_fwhm, sigma=sigma, sampler=sampler)
    with engine(scheduler, workers=jobs):
        path = generate_random(file, spec, rows, seed, jobs=jobs, force=force, resume=resume)
    click.echo(f"wrote {path}")


@click.command("generate-test", cls=Command, renamed=RENAMED)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--rows", type=COUNT, required=True, help="Number of noise realizations.")
@galaxy_options
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.option("--resume", is_flag=True, help="Continue the partial file an interrupted run left.")
def generate_test(file, rows, flux, sersic_n, sersic_r, g1, g2, psf_fwhm, sigma, seed, force,
                  resume):
    """Write a test set to FILE: ROWS noise realizations of one fixed galaxy."""
    from galaxies.simulation.generate import FixedSpec, generate_fixed
    spec = FixedSpec(flux=flux, sersic_n=sersic_n, sersic_r=sersic_r, g1=g1, g2=g2,
                     psf_fwhm=psf_fwhm, sigma=sigma)
    path = generate_fixed(file, spec, rows, seed, force=force, resume=resume)
    click.echo(f"wrote {path}")


@click.command(cls=Command)
@PROFILE_OPTION
@click.option("--only", default=None, help="Comma-separated recipe names [default: all].")
@click.option("--jobs", type=COUNT, default=None, help="Worker processes [default: all cores].")
@SCHEDULER
@click.option("--force", is_flag=True, help="Rebuild sets that already exist.")
def datasets(profile, only, jobs, scheduler, force):
    """Build the profile's data sets (v1, v2, v3, v1a, test and the fixed sets snr60, snr30,
    compact, extended) under data/<profile>/."""
    from galaxies.runtime.parallel import engine
    from galaxies.simulation.recipes import build_datasets
    with engine(scheduler, workers=jobs):
        build_datasets(profile, names=only.split(",") if only else None, jobs=jobs, force=force)
