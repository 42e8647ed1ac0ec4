"""The project's data sets: what each one is for, with its seed, and building them for a profile.

Each `Recipe` names a generator setting (`galaxies.simulation.generate.RandomSpec` or `FixedSpec`), a seed
and a purpose; its size comes from the profile. `build_datasets` makes the profile's sets under
``data/<profile>/``, keeping a set whose file already carries the same recipe.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from galaxies.conventions import RANGES, TEST_GALAXY
from galaxies.runtime import profiles
from galaxies.runtime.errors import InputError, OutputExistsError
from galaxies.storage import files, resumable

from .generate import FixedSpec, RandomSpec, generate, recipe_attribute

__all__ = ["Recipe", "RECIPES", "is_random", "recipe_record", "recipes_record", "build_datasets", "describe_recipes",
           "observing_range", "covers", "extrapolates"]


@dataclass(frozen=True)
class Recipe:
    """A named data set of the project: its spec, its seed and what it is for."""

    name: str
    spec: RandomSpec | FixedSpec
    seed: int
    purpose: str

    def for_profile(self, profile) -> "Recipe":
        """The recipe with the profile's Sérsic grid (random sets only)."""
        if isinstance(self.spec, RandomSpec):
            spec = RandomSpec(sersics=profile.sersics, psf_fwhm=self.spec.psf_fwhm,
                              sigma=self.spec.sigma)
            return Recipe(self.name, spec, self.seed, self.purpose)
        return self


#: The project's data sets (sizes come from the profile).
RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("v1", RandomSpec(psf_fwhm=0.5, sigma=200.0), 1, "training: fixed PSF 0.5 and noise 200"),
    Recipe("v2", RandomSpec(psf_fwhm=0.5, sigma=None), 2, "training: fixed PSF, noise in [200, 400]"),
    Recipe("v3", RandomSpec(psf_fwhm=None, sigma=None), 3, "training: PSF in [0.5, 1] and noise in [200, 400]"),
    Recipe("v1a", RandomSpec(psf_fwhm=0.5, sigma=200.0), 4, "training the denoisers (like v1)"),
    Recipe("test", RandomSpec(psf_fwhm=0.5, sigma=200.0), 5, "random test set (like v1)"),
    Recipe("snr60", FixedSpec(**TEST_GALAXY, sigma=200.0), 6, "fixed galaxy, sigma 200 (SNR ~ 60)"),
    Recipe("snr30", FixedSpec(**TEST_GALAXY, sigma=400.0), 7, "fixed galaxy, sigma 400 (SNR ~ 30)"),
    # The original study's galaxy (n 3, r 0.3", PSF 0.5") sits in the middle of the prior and under the
    # sharpest PSF. These two take other corners, with a PSF and a noise level of their own
    # (inside v3's ranges, outside v1's) and SNR ~ 50, well inside the training cut [10, 100]:
    # a galaxy smaller than its PSF, whose size, index and shape hide in the PSF's core (its
    # bound on n is ~0.55 of n), and a large, disc-like one spread over many pixels.
    Recipe("compact", FixedSpec(flux=1.6e5, sersic_n=4.0, sersic_r=0.2, g1=0.12, g2=-0.20,
                                psf_fwhm=0.8, sigma=300.0), 8,
           'fixed galaxy, compact: n 4, r 0.2" under a broad PSF 0.8", sigma 300 (SNR ~ 50); '
           "barely resolved: size, index and shape are hard to measure"),
    Recipe("extended", FixedSpec(flux=1.3e5, sersic_n=0.9, sersic_r=0.5, g1=-0.25, g2=0.10,
                                 psf_fwhm=0.65, sigma=250.0), 9,
           'fixed galaxy, extended: n 0.9, r 0.5" (disc-like), PSF 0.65", sigma 250 (SNR ~ 47); '
           "well resolved, its light spread thin over many pixels"),
]}


def observing_range(name: str) -> dict[str, tuple[float, float]]:
    """The PSF FWHM (arcsec) and read-noise sigma (photo-electrons) the galaxies of recipe
    ``name`` are seen with: ``{"psf_fwhm": (low, high), "sigma": (low, high)}``, a fixed value
    an interval of zero width."""
    if name not in RECIPES:
        raise InputError(f"unknown data set {name!r}; choose from {', '.join(RECIPES)}")
    spec = RECIPES[name].spec
    out = {}
    for key in ("psf_fwhm", "sigma"):
        value = getattr(spec, key)
        out[key] = (RANGES[key].low, RANGES[key].high) if value is None else (float(value),) * 2
    return out


def is_random(name: str) -> bool:
    """Whether ``name`` is a recipe that draws its galaxies from the prior (a training set or
    the random test set), not a fixed galaxy; False for a name that is not a recipe."""
    return name in RECIPES and RECIPES[name].spec.kind == "random"


def covers(trainset: str, testset: str) -> bool:
    """Whether a network trained on recipe ``trainset`` has seen the PSF FWHM and the noise
    sigma of every galaxy of ``testset`` (both inside its training ranges). A network shown
    another PSF or noise level extrapolates: its errors there say little of the method."""
    train, test = observing_range(trainset), observing_range(testset)
    return all(train[k][0] <= test[k][0] and test[k][1] <= train[k][1] for k in train)


def extrapolates(trainset: str, testset: str) -> bool:
    """Whether an estimator trained on ``trainset`` is shown ``testset`` outside its training
    PSF or noise (`covers`); False where either is not one of the recipes (the fit and HSM,
    trained on nothing; a set of one's own)."""
    return trainset in RECIPES and testset in RECIPES and not covers(trainset, testset)


def recipe_record(recipe: Recipe, profile) -> dict:
    """The ``recipe`` attribute a data set built from ``recipe`` under ``profile`` carries."""
    recipe = recipe.for_profile(profile)
    return recipe_attribute(recipe.spec, profile.sizes[recipe.name], recipe.seed, recipe.name)


def recipes_record(profile) -> list[dict]:
    """What every data set of ``profile`` is made from (`recipe_record` of each recipe): the
    pipeline's data step reruns when it changes."""
    return [recipe_record(r, profile) for r in RECIPES.values()]


def build_datasets(profile, names=None, jobs: int | None = None, force: bool = False,
                   progress: bool = True, log=print) -> dict[str, str]:
    """Build the profile's data sets under ``data/<profile>/``.

    A set whose file exists with the same recipe is kept (data are immutable once made); one
    whose recipe differs is rebuilt only with ``force``. The partial file of an interrupted
    build with the same recipe is resumed; one with another recipe is started over. Returns
    name -> "built" / "up to date".
    """
    profile = profiles.get(profile)
    names = list(names or RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise InputError(f"unknown data set(s) {unknown}; choose from {', '.join(RECIPES)}")
    status = {}
    for name in names:
        recipe = RECIPES[name].for_profile(profile)
        path = profile.dataset(name)
        wanted = recipe_record(recipe, profile)
        if path.exists() and not force:
            try:
                have = files.dataset_info(path)["recipe"]
            except (files.FileFormatError, OSError):
                have = None
            if _same_rows(have, wanted):
                status[name] = "up to date"
                log(f"{name}: {path} is up to date")
                continue
            raise OutputExistsError(
                f"{path} exists but was built with other settings; rerun with --force to rebuild it")
        resume = _same_rows(resumable.partial_recipe(path), wanted)
        generate(path, recipe.spec, profile.sizes[name], recipe.seed, jobs=jobs, force=True,
                 progress=progress, name=name, resume=resume)
        status[name] = "built"
        log(f"{name}: wrote {path} ({profile.sizes[name]} galaxies)")
    return status


def _same_rows(have: dict | None, wanted: dict) -> bool:
    """Whether a file of recipe ``have`` holds the rows ``wanted`` asks for. The sampler is left
    out: both write the same rows (tests/simulation/test_sampler.py), and sets made before it was
    recorded name none."""
    if have is None:
        return False
    drop = lambda record: {k: v for k, v in record.items() if k != "sampler"}  # noqa: E731
    return drop(have) == drop(wanted)


def describe_recipes(profile) -> "list[dict]":
    """One row per recipe (name, purpose, size and settings), for tables in notebooks."""
    rows = []
    for name, recipe in RECIPES.items():
        record = recipe_record(recipe, profile)
        rows.append({"name": name, "purpose": recipe.purpose, "size": record["size"],
                     "seed": record["seed"], "settings": json.dumps(
                         {k: v for k, v in record.items()
                          if k not in ("size", "seed", "name", "image_size", "pixel_scale",
                                       "moffat_beta", "snr_range", "sampler")})})
    return rows
