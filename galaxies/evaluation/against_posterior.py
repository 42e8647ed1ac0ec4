"""Estimators judged against each galaxy's posterior under a training prior (the Bayes reference).

A network trained with the squared error converges to the posterior mean under its training
prior (`galaxies.inference.posterior_sets`), so two distances say how far it is from the best it could be:

* ``ratio``: its RMS in the metric of the set over the best estimator's for that metric on the
  same galaxies. On the random set the metric is the per-galaxy normalized RMS (each galaxy's
  error over its own bound, ``norm rmse`` of `galaxies.evaluation.evaluate.against_crb`), and the
  estimator that minimizes it on average over the prior is the posterior mean weighted by the
  inverse squared bound (``bound-weighted posterior mean``, `WEIGHTED`); on a fixed set every
  error is over one bound and the best is the posterior mean itself. 1 is the best estimator's
  accuracy; a ratio under 1 is luck on the galaxies drawn, not a better method;
* ``rms to posterior``: on every set, the RMS of (estimate - posterior mean) in units of each
  galaxy's bound: the network's own error, the prior's part taken out.

For an estimator that gives an uncertainty (``pred_std``: the uncertainty network, the JAX fit)
``std ratio`` is the median of ``pred_std`` / posterior std and ``coverage`` the fraction of
galaxies whose truth lies within ``pred +- pred_std`` (0.68 for a calibrated Gaussian). The
posterior's own ``coverage`` (its mean +- std) is a check of the reference on the random set,
whose galaxies are draws from the prior: there it should be near 0.68; on a fixed galaxy it
need not be (the posterior's coverage is an average over the prior, not at every galaxy).

Every function returns a pandas DataFrame indexed by parameter (or by estimator and parameter)
for the report; the references are rows themselves, ``posterior mean`` (`POSTERIOR`) and, where
computed, the bound-weighted posterior mean (`WEIGHTED`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from galaxies.inference import posterior_sets
from galaxies.conventions import LABEL_COLUMNS
from galaxies.runtime import profiles
from galaxies.runtime.errors import InputError
from galaxies.runtime.profiles import TESTSETS
from galaxies.simulation import recipes
from galaxies.storage import files

from . import evaluate

__all__ = ["POSTERIOR", "WEIGHTED", "compare", "against_posterior", "reference", "table", "wide",
           "prior_recipe", "predicted", "judge_network"]

#: The name of the Bayes reference's row.
POSTERIOR = "posterior mean"
#: The name of the bound-weighted posterior mean's row (the random set's best estimator).
WEIGHTED = "bound-weighted posterior mean"
#: Coverage of ``pred +- pred_std`` for a Gaussian.
COVERAGE = 0.6827


def compare(pred, truth, crb, mean, std, pred_std=None, best=None) -> pd.DataFrame:
    """The distances of one estimator to the posterior, one row per parameter.

    All arrays are (N, 5) in label order for the same N galaxies: the estimates ``pred``, the
    true labels, the bounds ``crb``, the posterior ``mean`` and ``std``, and optionally the
    estimator's ``pred_std`` and the best estimator for the metric, ``best`` (the ``ratio``'s
    reference; the posterior mean where not given or not finite). Galaxies with a non-finite
    value in a column are left out of that column (``n`` counts those used).
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (pred, truth, crb, mean, std)]
    if any(a.ndim != 2 or a.shape[1] != 5 for a in arrays) or len({len(a) for a in arrays}) != 1:
        raise InputError(f"compare needs (N, 5) arrays of one N; got "
                         f"{[a.shape for a in arrays]}")
    pred, truth, crb, mean, std = arrays
    best = mean if best is None else np.asarray(best, dtype=np.float64)
    if best.shape != mean.shape:
        raise InputError(f"best has shape {best.shape}, expected {mean.shape}")
    best = np.where(np.isfinite(best), best, mean)
    ok = np.isfinite(pred) & np.isfinite(truth) & np.isfinite(crb) & np.isfinite(mean) & (crb > 0)
    if pred_std is not None:
        pred_std = np.asarray(pred_std, dtype=np.float64)
        if pred_std.shape != pred.shape:
            raise InputError(f"pred_std has shape {pred_std.shape}, expected {pred.shape}")
    rows = []
    for j, name in enumerate(LABEL_COLUMNS):
        k = ok[:, j]
        z = (pred[k, j] - truth[k, j]) / crb[k, j]
        z_ref = (best[k, j] - truth[k, j]) / crb[k, j]
        gap = (pred[k, j] - mean[k, j]) / crb[k, j]
        row = {"parameter": name, "n": int(k.sum())}
        row["norm rmse"] = np.sqrt(np.mean(z**2)) if k.any() else np.nan
        row["reference norm rmse"] = np.sqrt(np.mean(z_ref**2)) if k.any() else np.nan
        row["ratio"] = row["norm rmse"] / row["reference norm rmse"]
        row["rms to posterior"] = np.sqrt(np.mean(gap**2)) if k.any() else np.nan
        row["bias to posterior"] = np.mean(gap) if k.any() else np.nan
        inside = np.abs(mean[k, j] - truth[k, j]) <= std[k, j]
        row["posterior coverage"] = np.mean(inside) if k.any() else np.nan
        if pred_std is not None:
            s = k & np.isfinite(pred_std[:, j]) & (std[:, j] > 0)
            row["std ratio"] = np.median(pred_std[s, j] / std[s, j]) if s.any() else np.nan
            row["coverage"] = (np.mean(np.abs(pred[s, j] - truth[s, j]) <= pred_std[s, j])
                               if s.any() else np.nan)
        else:
            row["std ratio"] = row["coverage"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("parameter")


def against_posterior(predictions, dataset, crb, post: posterior_sets.PosteriorSet) -> pd.DataFrame:
    """`compare` for a predictions file (or `galaxies.storage.files.Predictions`) of ``dataset``, on
    the rows it predicted that have a posterior and a bound (``crb`` (N, 5), row i for row i of
    the set)."""
    if not isinstance(predictions, files.Predictions):
        predictions = files.load_predictions(predictions)
    if not isinstance(dataset, files.Dataset):
        dataset = files.load_dataset(dataset, fields=())
    pred, truth, take = evaluate.aligned(predictions, dataset)
    crb = np.asarray(crb, dtype=np.float64)
    reliable = np.isin(take, post.rows)
    keep = reliable & np.isfinite(crb[take]).all(axis=1)
    if not keep.any():
        raise InputError(f"no galaxy of {predictions.path} has both a posterior and a bound")
    rows = take[keep]
    pred_std = None if predictions.pred_std is None else predictions.pred_std[keep]
    return compare(pred[keep], truth[keep], crb[rows], post.mean[rows], post.std[rows], pred_std,
                   post.weighted_mean[rows])


def judge_network(network, profile, recipe: str | None = None) -> pd.DataFrame:
    """A network (`galaxies.networks.training.SavedModel`, or anything with its
    ``predict_dataset``) on every test set of ``profile`` that has been built, one row per
    (test set, parameter): ``norm rmse`` over every row with a bound (RMSE / CRB on a fixed
    set) and, on the rows with a cached posterior under ``recipe``'s prior (default: the
    network's training set's, `prior_recipe`), ``ratio`` and ``rms to posterior``, and for a
    network with ``pred_std`` its ``std ratio`` and ``coverage`` (`compare`). For networks
    trained outside the pipeline (seeds, levers), whose predictions are not kept."""
    from . import testsets

    profile = profiles.get(profile)
    recipe = recipe or prior_recipe(getattr(network, "trainset", "") or "fit", profile)
    records = []
    for testset in TESTSETS:
        if not profile.dataset(testset).is_file():
            continue
        ds = files.load_dataset(profile.dataset(testset))
        pred, pred_std = network.predict_dataset(ds)
        crb = testsets.crb(profile, testset)
        z = (pred - ds.label) / crb
        rows = {p: {"testset": testset, "parameter": p,
                    "norm rmse": float(np.sqrt(np.nanmean(z[:, j] ** 2)))}
                for j, p in enumerate(LABEL_COLUMNS)}
        try:
            post = posterior_sets.load(profile.dataset(testset), recipe)
        except FileNotFoundError:
            post = None
        if post is not None:
            r = post.rows
            frame = compare(pred[r], ds.label[r], crb[r], post.mean[r], post.std[r],
                            None if pred_std is None else pred_std[r], best=post.weighted_mean[r])
            judged = [c for c in ("ratio", "rms to posterior", "std ratio", "coverage") if c in frame]
            for p, row in frame.iterrows():
                rows[p].update({c: row[c] for c in judged})
        records.extend(rows.values())
    return pd.DataFrame(records)


def prior_recipe(trainset: str, profile=None) -> str:
    """The recipe whose prior is an estimator's reference: its training set when that is a
    random recipe, else (the fit, HSM) the recommended network's."""
    profile = profiles.get(profile)
    if recipes.is_random(trainset):
        return trainset
    return profile.recommended.rsplit("_", 1)[1]


def reference(profile, testset: str, recipe: str, compute: bool = False,
              progress: bool = False, rows: int | None = None) -> posterior_sets.PosteriorSet:
    """The posteriors of a test set's first ``rows`` rows (default:
    ``profile.posterior_rows(testset)``) under ``recipe``'s prior: read from the cache, or
    computed there with ``compute`` (the rows the cache lacks; it keeps every row computed)."""
    profile = profiles.get(profile)
    path = profile.dataset(testset)
    if compute:
        return posterior_sets.for_dataset(path, recipe, limit=rows or profile.posterior_rows(testset),
                                          sersics=profile.sersics, progress=progress)
    return posterior_sets.load(path, recipe)


def predicted(profile, testset: str) -> list[str]:
    """The ``<estimator>_<trainset>`` names with a predictions file of ``testset``."""
    folder = Path(profiles.get(profile).predictions_dir)
    return sorted(p.name[: -len(f"__{testset}.h5")] for p in folder.glob(f"*__{testset}.h5")
                  if not p.name.startswith("."))


def table(profile, testset: str, names=None, compute: bool = False) -> pd.DataFrame:
    """`against_posterior` of every estimator ``names`` (default: all with predictions of
    ``testset``) on ``testset``, indexed by (estimator, parameter), with the references' own
    rows first (``posterior mean``: distance 0, its std as ``pred_std``; then, on a random
    set, the bound-weighted posterior mean, ratio 1) and a column ``covers``: whether the
    estimator's prior recipe covers the set's PSF and noise."""
    from . import testsets

    profile = profiles.get(profile)
    if testset not in TESTSETS:
        raise InputError(f"unknown test set {testset!r}; choose from {', '.join(TESTSETS)}")
    names = predicted(profile, testset) if names is None else list(names)
    dataset = files.load_dataset(profile.dataset(testset), fields=())
    crb = testsets.crb(profile, testset)
    posts: dict[str, posterior_sets.PosteriorSet] = {}

    def post_of(recipe: str):
        if recipe not in posts:
            posts[recipe] = reference(profile, testset, recipe, compute=compute)
        return posts[recipe]

    tables = {}
    recommended = prior_recipe("fit", profile)
    own = post_of(recommended)
    rows = own.rows
    rows = rows[np.isfinite(crb[rows]).all(axis=1)]
    references = {POSTERIOR: own.mean}
    if np.isfinite(own.weighted_mean[rows]).any():
        references[WEIGHTED] = own.weighted_mean
    for label, estimate in references.items():
        frame = compare(estimate[rows], dataset.label[rows], crb[rows], own.mean[rows],
                        own.std[rows], own.std[rows], own.weighted_mean[rows])
        frame["covers"] = True
        frame["recipe"] = recommended
        tables[label] = frame
    for name in names:
        path = profile.predictions_dir / f"{name}__{testset}.h5"
        if not path.is_file():
            continue
        recipe = prior_recipe(name.rsplit("_", 1)[-1], profile)
        post = post_of(recipe)
        frame = against_posterior(path, dataset, crb, post)
        frame["covers"] = not recipes.extrapolates(name.rsplit("_", 1)[-1], testset)
        frame["recipe"] = recipe
        tables[name] = frame
    return pd.concat(tables, names=["estimator", "parameter"])


def wide(frames: dict, column: str) -> pd.DataFrame:
    """One column of several `table`s (test set -> table) as (estimator, test set) x
    parameters, for printing."""
    parts = {testset: frame[column].unstack("parameter")[list(LABEL_COLUMNS)]
             for testset, frame in frames.items()}
    out = pd.concat(parts, names=["testset", "estimator"]).swaplevel().sort_index(
        level=0, sort_remaining=False)
    return out

