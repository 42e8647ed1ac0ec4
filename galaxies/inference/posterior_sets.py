"""The Bayes reference: each galaxy's posterior under a network's training prior, cached.

A network trained with the squared error on a training recipe converges to the posterior mean
of the labels under that recipe's prior, so the posterior is the best such a network can do and
the reference it is judged against (`galaxies.evaluation.against_posterior`). `for_dataset` computes, for
the first rows of a data set, the posterior mean and standard deviation of each galaxy with
`galaxies.inference.differentiable.posterior.posterior_moments` (importance sampling from the Laplace
approximation at the JAX model's fit, `galaxies.inference.differentiable.fit`) and keeps them beside the
set in ``<set>.posterior-<recipe>.h5`` (`cache_path`), as the bounds are kept in
``<set>.crb-jax.h5``; `load` reads that file without computing anything. On a random set,
whose galaxies each have their own bound, it also keeps the estimator that minimizes the
per-galaxy normalized error, the posterior mean weighted by the inverse squared bound
(``weighted_mean``, from `BOUND_DRAWS` resampled draws a galaxy); on a fixed set every
galaxy's error is divided by one bound, and the posterior mean is that estimator already.

The prior of a random training recipe (`prior_record`) is the generator's: flux, n and r
uniform in `galaxies.conventions.RANGES`, the shear's ``1 / |g|`` density, and the SNR window
`galaxies.conventions.SNR_RANGE`; each galaxy's PSF FWHM and read noise are given as known. With
the PSF and noise known, the recipes v1, v2 and v3 differ only in which PSFs and noise levels
they hold, so their posteriors of one image are the same: the file of one recipe is filled from
a sibling file of another whose prior record is identical, and each file says whether its
recipe's training set covers the set's PSF and noise (``covers``: v1 does not cover compact
or extended, whose reference is then that of a prior v1 never saw). The Sérsic index is treated
as continuous, where the generator draws it from ``profile.sersics`` equally spaced values: at
the quick profile's 200 values (steps of 0.028) that is far inside the bound on n.

Each galaxy's draws are seeded by its row (``seed + row``), so a row's result does not depend
on which other rows were computed with it.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from galaxies.inference.crb_sets import selected_rows
from galaxies.conventions import LABEL_COLUMNS, LABEL_WIDTHS, RANGES, SNR_RANGE
from galaxies.runtime.console import show_progress
from galaxies.runtime.errors import FileFormatError, InputError
from galaxies.simulation import recipes
from galaxies.storage import atomic, files

__all__ = ["PosteriorSet", "SETTINGS", "BOUND_DRAWS", "default_settings", "cache_path",
           "prior_record", "for_dataset",
           "build_references", "references_record",
           "store_results", "load"]

#: Importance sampling's settings (`posterior_moments`'s keywords) and the rows of a block.
SETTINGS = dict(samples=1024, max_samples=8192, min_ess=200.0, seed=0, bound_draws=0)
#: Resampled draws a galaxy for the bound-weighted posterior mean of a random set.
BOUND_DRAWS = 64
BLOCK = 32
#: Galaxies whose importance weights have a smaller effective sample size (the sampler's
#: ``max_samples`` spent before ``min_ess``: a posterior far from its Laplace approximation,
#: e.g. a faint galaxy against the box's edges) are left out of the reference (`rows`).
RELIABLE_ESS = 50.0


@dataclass
class PosteriorSet:
    """Per row of a data set: posterior ``mean`` and ``std`` (N, 5) in label order (NaN where
    not computed or where the sampler found no draw inside the prior), effective sample size
    ``ess`` (N,), ``computed`` (N,) bool; the ``recipe`` whose prior it is and whether that
    recipe's training set ``covers`` the set's PSF and noise; the bound-weighted posterior
    mean ``weighted_mean`` (N, 5; NaN on a fixed set, see the module)."""

    mean: np.ndarray
    std: np.ndarray
    ess: np.ndarray
    computed: np.ndarray
    recipe: str
    covers: bool
    path: Path
    weighted_mean: np.ndarray

    @property
    def rows(self) -> np.ndarray:
        """The rows computed with a finite posterior and at least `RELIABLE_ESS` effective
        draws."""
        return np.flatnonzero(self.computed & np.isfinite(self.mean).all(axis=1)
                              & (self.ess >= RELIABLE_ESS))


def cache_path(dataset_path, recipe: str) -> Path:
    """``test.posterior-v3.h5`` next to ``test.h5``."""
    path = Path(dataset_path)
    return path.with_name(f"{path.stem}.posterior-{recipe}.h5")


def prior_record(recipe: str, sersics: int | None = None) -> dict:
    """What the prior of training recipe ``recipe`` is, given a galaxy's PSF and noise: the
    box, the shear's density, the SNR window (and the Sérsic grid's size, recorded though the
    sampler treats n as continuous). Raises `InputError` for a recipe that is not random."""
    if recipe not in recipes.RECIPES:
        raise InputError(f"unknown recipe {recipe!r}; choose from {', '.join(recipes.RECIPES)}")
    if not recipes.is_random(recipe):
        raise InputError(f"recipe {recipe!r} is a fixed galaxy, not a training prior")
    return {"flux": [RANGES["flux"].low, RANGES["flux"].high],
            "sersic_n": [RANGES["sersic_n"].low, RANGES["sersic_n"].high],
            "sersic_r": [RANGES["sersic_r"].low, RANGES["sersic_r"].high],
            "shear": [0.0, RANGES["shear"].high], "shear_density": "1/|g|",
            "snr": [SNR_RANGE.low, SNR_RANGE.high], "sersics": sersics,
            "sersic_prior": "continuous", "psf_and_noise": "known"}


def _fingerprint(dataset, prior: dict, settings: dict) -> str:
    digest = hashlib.sha256()
    for array in (dataset.label, dataset.psf_fwhm, dataset.sigma):
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    digest.update(json.dumps([prior, settings], sort_keys=True).encode())
    return digest.hexdigest()


def default_settings(dataset_name: str) -> dict:
    """`SETTINGS`, with `BOUND_DRAWS` for a random recipe's set (module)."""
    return {**SETTINGS, "bound_draws": BOUND_DRAWS if recipes.is_random(dataset_name) else 0}


def _read(path: Path, fingerprint: str | None, size: int | None):
    """``(mean, std, ess, computed, weighted_mean, attrs)`` of a cache file, or None if it is
    missing, stale (another fingerprint) or of another size."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            if fingerprint is not None and f.attrs.get("fingerprint") != fingerprint:
                return None
            if size is not None and f["mean"].shape != (size, 5):
                return None
            return (f["mean"][()], f["std"][()], f["ess"][()], f["computed"][()].astype(bool),
                    f["weighted_mean"][()], dict(f.attrs))
    except (OSError, KeyError):
        return None


def _write(path: Path, mean, std, ess, computed, weighted_mean, attrs: dict) -> None:
    try:
        with atomic.atomic_h5(path, force=True) as f:
            for name, array in (("mean", mean), ("std", std), ("weighted_mean", weighted_mean)):
                f.create_dataset(name, data=array).attrs["columns"] = list(LABEL_COLUMNS)
            f.create_dataset("ess", data=ess)
            f.create_dataset("computed", data=computed)
            for key, value in attrs.items():
                f.attrs[key] = value
    except OSError as err:  # a read-only folder: keep the results, say why they are not kept
        warnings.warn(f"the posteriors are not cached in {path} ({err})", stacklevel=3)


def _compute(dataset_path, rows: np.ndarray, settings: dict, model, bar) -> tuple:
    """Fit, Laplace covariance and importance sampling of ``rows`` (contiguous blocks, each
    seeded by its first row so that galaxy ``r`` is seeded ``seed + r``)."""
    from .differentiable.bound import covariances
    from .differentiable.fit import fit
    from .differentiable.posterior import posterior_moments

    mean, std, weighted = (np.full((len(rows), 5), np.nan) for _ in range(3))
    ess = np.zeros(len(rows))
    # contiguous runs of rows, cut into blocks
    runs = np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1)
    at = 0
    for run in runs:
        for start in range(0, len(run), BLOCK):
            block = run[start:start + BLOCK]
            ds = files.load_dataset(dataset_path, fields=("img",),
                                    rows=slice(block[0], block[-1] + 1))
            estimate = fit(ds.img, ds.psf_fwhm, ds.sigma, model=model)
            covariance = covariances(estimate.fisher)
            # a singular Fisher matrix (a galaxy that does not constrain a parameter): a wide
            # proposal instead, whose few effective draws its ``ess`` shows
            ok = np.isfinite(covariance).all(axis=(1, 2))
            covariance[~ok] = np.diag(np.square(0.1 * np.array(list(LABEL_WIDTHS.values()))))
            result = posterior_moments(ds.img, ds.psf_fwhm, ds.sigma, estimate.params, covariance,
                                       samples=settings["samples"],
                                       max_samples=settings["max_samples"],
                                       min_ess=settings["min_ess"],
                                       seed=settings["seed"] + int(block[0]),
                                       bound_draws=settings["bound_draws"], model=model)
            take = slice(at, at + len(block))
            mean[take], std[take], ess[take] = result.mean, result.std, result.ess
            weighted[take] = result.weighted_mean
            at += len(block)
            bar.update(len(block))
    return mean, std, ess, weighted


def for_dataset(path, recipe: str, limit: int | None = None, rows=None, sersics: int | None = None,
                progress: bool = True, settings: dict | None = None, model=None) -> PosteriorSet:
    """The posterior of the first ``limit`` rows (or of ``rows``) of the data set at ``path``
    under training recipe ``recipe``'s prior, computed where the cache lacks them.

    Parameters:
        path:     the data set (HDF5).
        recipe:   the training recipe whose prior is used (``v1``, ``v2``, ``v3``).
        limit:    the first rows (None: every row); ``rows``: instead, these rows.
        sersics:  the training sets' Sérsic grid size (recorded in the prior; see the module).
        settings: `default_settings` replaced where given (part of the cache's fingerprint).
        model:    a `galaxies.inference.differentiable.model.DifferentiableModel` to reuse.
    """
    from tqdm.auto import tqdm

    prior = prior_record(recipe, sersics)
    dataset = files.load_dataset(path, fields=())
    settings = {**default_settings(dataset.name), **(settings or {})}
    size = len(dataset)
    wanted = selected_rows(size, limit, rows, path)
    fingerprint = _fingerprint(dataset, prior, settings)
    store = cache_path(path, recipe)
    found = _read(store, fingerprint, size)
    stored = np.zeros(size, bool) if found is None else found[3].copy()
    if found is None:
        found = (np.full((size, 5), np.nan), np.full((size, 5), np.nan), np.zeros(size),
                 np.zeros(size, bool), np.full((size, 5), np.nan), {})
    mean, std, ess, computed, weighted, _ = found
    # a sibling recipe with the same prior record holds the same posteriors
    for sibling in sorted(Path(path).parent.glob(f"{Path(path).stem}.posterior-*.h5")):
        if sibling == store:
            continue
        other = _read(sibling, fingerprint, size)
        if other is not None:
            new = other[3] & ~computed
            for mine, theirs in zip((mean, std, ess, weighted), other[:3] + other[4:5]):
                mine[new] = theirs[new]
            computed |= new
    todo = wanted[~computed[wanted]]
    covers = recipes.covers(recipe, dataset.name) if dataset.name in recipes.RECIPES else False
    if len(todo):
        from .differentiable.model import DifferentiableModel
        model = model or DifferentiableModel()
        bar = tqdm(total=len(todo), unit="galaxy", desc=f"posterior {Path(path).stem}",
                   disable=not show_progress(progress))
        try:
            mean[todo], std[todo], ess[todo], weighted[todo] = _compute(path, todo, settings,
                                                                        model, bar)
        finally:
            bar.close()
        computed[todo] = True
    if not np.array_equal(computed, stored):
        store_results(path, recipe, mean, std, ess, computed, sersics, settings, weighted)
    keep = np.zeros(size, bool)
    keep[wanted] = computed[wanted]
    nan = np.full((size, 5), np.nan)
    return PosteriorSet(np.where(keep[:, None], mean, nan), np.where(keep[:, None], std, nan),
                        np.where(keep, ess, 0.0), keep, recipe, bool(covers), store,
                        np.where(keep[:, None], weighted, nan))


def store_results(path, recipe: str, mean, std, ess, computed, sersics: int | None = None,
                  settings: dict | None = None, weighted_mean=None) -> Path:
    """Write the cache of the data set at ``path`` under ``recipe``'s prior: posterior ``mean``
    and ``std`` (N, 5), ``ess`` (N,), ``computed`` (N,) and the bound-weighted mean (N, 5;
    None: NaN) for every row of the set (results computed elsewhere, or by `for_dataset`),
    atomically; returns the file's path."""
    prior = prior_record(recipe, sersics)
    dataset = files.load_dataset(path, fields=())
    settings = {**default_settings(dataset.name), **(settings or {})}
    size = len(dataset)
    if weighted_mean is None:
        weighted_mean = np.full((size, 5), np.nan)
    mean, std, weighted_mean = (np.asarray(a, dtype=np.float64)
                                for a in (mean, std, weighted_mean))
    ess, computed = np.asarray(ess, dtype=np.float64), np.asarray(computed, dtype=bool)
    if any(a.shape != (size, 5) for a in (mean, std, weighted_mean)) or ess.shape != (size,) \
            or computed.shape != (size,):
        raise InputError(f"posteriors of {path} need ({size}, 5) means, stds and weighted "
                         f"means and ({size},) ess and computed")
    covers = recipes.covers(recipe, dataset.name) if dataset.name in recipes.RECIPES else False
    store = cache_path(path, recipe)
    _write(store, mean, std, ess, computed, weighted_mean, {
        "dataset": Path(path).name, "recipe": recipe, "covers": bool(covers),
        "fingerprint": _fingerprint(dataset, prior, settings),
        "prior": json.dumps(prior, sort_keys=True), "settings": json.dumps(settings, sort_keys=True),
        "method": "importance sampling from the Laplace approximation at the JAX model's fit "
                  "(galaxies.inference.differentiable.posterior)",
        "galaxies_version": files._version()})
    return store


def load(path, recipe: str) -> PosteriorSet:
    """The cached posteriors of the data set at ``path`` under ``recipe``'s prior, as written
    by `for_dataset` (nothing computed). Raises `FileNotFoundError` when there is no cache and
    `FileFormatError` when it is of another version of the set."""
    store = cache_path(path, recipe)
    if not store.is_file():
        raise FileNotFoundError(f"no posteriors of {path} under {recipe}'s prior: {store} is "
                                f"missing (galaxies.inference.posterior_sets.for_dataset computes them)")
    found = _read(store, None, None)
    if found is None:
        raise FileFormatError(f"{store} is not a posteriors file")
    mean, std, ess, computed, weighted, attrs = found
    dataset = files.load_dataset(path, fields=())
    settings = json.loads(attrs.get("settings", "{}"))
    if attrs.get("fingerprint") != _fingerprint(dataset, json.loads(attrs["prior"]), settings):
        raise FileFormatError(f"{store} was computed for another version of {path}; recompute "
                              f"it with galaxies.inference.posterior_sets.for_dataset")
    return PosteriorSet(mean, std, ess, computed, str(attrs["recipe"]), bool(attrs["covers"]),
                        store, weighted)


def _reference(path: str, recipe: str, limit: int, sersics: int) -> tuple[int, str]:
    post = for_dataset(path, recipe, limit=limit, sersics=sersics, progress=False)
    return int(post.computed.sum()), post.path.name


def build_references(profile, jobs: int | None = None, log=print) -> None:
    """The Bayes reference of every test set of ``profile`` (the pipeline's ``posterior``
    step): the posteriors of each set's first ``profile.posterior_rows(set)`` rows under the
    prior of the recommended network's recipe, the sets in ``jobs`` processes; then the same
    files for the other random recipes, filled from it (their priors coincide given the PSF
    and noise, module docstring)."""
    from galaxies.runtime import profiles
    from galaxies.runtime.parallel import process_pool
    from galaxies.runtime.resources import resolve_jobs

    profile = profiles.get(profile)
    recipe = profile.recommended.rsplit("_", 1)[1]
    tasks = {t: (str(profile.dataset(t)), profile.posterior_rows(t)) for t in profiles.TESTSETS}
    # the most rows first, so that the largest set does not run alone at the end on one core
    largest_first = sorted(tasks, key=lambda t: -tasks[t][1])
    with process_pool(resolve_jobs(jobs, len(tasks))) as pool:
        done = {t: pool.submit(_reference, tasks[t][0], recipe, tasks[t][1], profile.sersics)
                for t in largest_first}
        for testset, future in done.items():
            count, name = future.result()
            log(f"{testset}: {count} posteriors under {recipe}'s prior -> {name}")
    others = [name for name in recipes.RECIPES if recipes.is_random(name) and name != recipe]
    for path, rows in tasks.values():
        for other in others:
            _reference(path, other, rows, profile.sersics)


def references_record(profile) -> dict:
    """What `build_references` depends on besides the code: the rows, the recipe and the
    sampler's settings."""
    from galaxies.runtime import profiles
    profile = profiles.get(profile)
    return {"recipe": profile.recommended, "settings": SETTINGS, "bound_draws": BOUND_DRAWS,
            "sersics": profile.sersics,
            "rows": {t: profile.posterior_rows(t) for t in profiles.TESTSETS}}
