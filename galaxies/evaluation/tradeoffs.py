"""Accuracy against cost: estimators compared on the same galaxies, and the accuracy-speed front.

The fit, the refinements and the network-started fit run on the first rows of each test set
(``profile.fit_rows``: ``fit_limit`` of each fixed-galaxy set, ``fit_limit_random`` of the random
one); a network predicts them all. `same_rows` judges every estimator on the
rows a reference covered, so differences are of estimators, not of galaxies. `accuracy_speed`
places each estimator and test set by CPU seconds per image and by its worst normalized RMSE
(each galaxy's error over its own Cramér–Rao bound, `galaxies.evaluation.evaluate.against_crb`) over flux,
r, g1 and g2, and marks the front: the points no other estimator beats on both.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from galaxies.runtime import profiles
from galaxies.runtime.profiles import TESTSETS
from galaxies.storage import files

from . import report, testsets
from .evaluate import against_crb

__all__ = ["ACCURACY_PARAMETERS", "same_rows", "against_reference", "accuracy_speed", "pareto_front"]

#: The parameters whose worst normalized RMSE places an estimator on the chart (n is left out:
#: at these SNRs its bound is a large part of its range, so the prior decides it).
ACCURACY_PARAMETERS = ("flux", "sersic_r", "g1", "g2")


def same_rows(profile, names, reference: str = report.GALSIM_FIT, testsets_=TESTSETS) -> dict:
    """``{test set: table}``: `galaxies.evaluation.evaluate.against_crb` of each estimator in ``names``
    (`galaxies.evaluation.report.Entry` names) on the rows that ``reference``'s predictions cover; rows of
    a table indexed by (estimator label, parameter). Estimators without a file are left out."""
    profile = profiles.get(profile)
    path = lambda name, testset: _path(profile, report.by_name(name, profile), testset)  # noqa: E731
    out = {}
    for testset in testsets_:
        if not path(reference, testset).is_file():
            continue
        rows = files.load_predictions(path(reference, testset)).index
        ds = files.load_dataset(profile.dataset(testset), fields=())
        bound = testsets.crb(profile, testset)
        tables = {}
        for name in names:
            if path(name, testset).is_file():
                pred = files.load_predictions(path(name, testset))
                tables[report.by_name(name, profile).label] = against_crb(
                    pred.take(np.isin(pred.index, rows)), ds, bound)
        if tables:
            out[testset] = pd.concat(tables, names=["estimator", "parameter"])
    return out


def _path(profile, entry, testset: str):
    return profile.predictions(entry.key, entry.trainset, testset)


def against_reference(table: pd.DataFrame, reference: str,
                      columns=("norm rmse", "norm bias")) -> pd.DataFrame:
    """``columns`` of a `same_rows` table per estimator and parameter, with each one's
    difference from ``reference`` (a label of the table); |bias| differences are of |bias|."""
    values = table[list(columns)].unstack("parameter")
    ref = values.loc[reference]
    diff = values.copy()
    for column in columns:
        if "bias" in column:
            diff[column] = values[column].abs() - ref[column].abs()
        else:
            diff[column] = values[column] - ref[column]
    return pd.concat({"value": values, "minus the fit": diff}, axis=1)


def pareto_front(seconds, worst) -> np.ndarray:
    """Whether each point is on the front: no other point is at least as fast and as accurate,
    and better in one (NaN points are never on it)."""
    seconds, worst = np.asarray(seconds, float), np.asarray(worst, float)
    ok = np.isfinite(seconds) & np.isfinite(worst)
    front = np.zeros(len(seconds), dtype=bool)
    for i in np.flatnonzero(ok):
        beaten = ok & (seconds <= seconds[i]) & (worst <= worst[i]) & (
            (seconds < seconds[i]) | (worst < worst[i]))
        front[i] = not beaten.any()
    return front


def accuracy_speed(profile, tables: dict | None = None, parameters=ACCURACY_PARAMETERS) -> pd.DataFrame:
    """One row per estimator and test set: CPU seconds per image, the worst ``norm rmse``
    over ``parameters`` that the estimator measures (HSM: g1 and g2), which parameter that is,
    and whether it is on the test set's front (of the estimators that measure all of
    ``parameters``). ``tables``: `galaxies.evaluation.report.comparison` by
    test set when already computed."""
    profile = profiles.get(profile)
    rows = []
    for testset in TESTSETS:
        table = tables[testset] if tables and testset in tables else report.comparison(profile, testset)
        if table.empty:
            continue
        for entry in report.estimators(profile):
            if entry.noiseless or entry.label not in table.index.get_level_values("estimator"):
                continue
            path = _path(profile, entry, testset)
            ratios = table.loc[entry.label, "norm rmse"].reindex(list(parameters)).dropna()
            if ratios.empty:
                continue
            rows.append({"testset": testset, "estimator": entry.label,
                         "seconds per image": files.load_predictions(path).seconds_per_image,
                         "worst norm rmse": float(ratios.max()), "worst of": ratios.idxmax(),
                         "measures": ", ".join(ratios.index)})
    frame = pd.DataFrame(rows, columns=["testset", "estimator", "seconds per image",
                                        "worst norm rmse", "worst of", "measures"])
    # the front is of estimators of all the parameters: a shear-only one is drawn beside it
    frame["front"] = False
    complete = frame[frame["measures"] == ", ".join(parameters)]
    for testset, group in complete.groupby("testset"):
        frame.loc[group.index, "front"] = pareto_front(group["seconds per image"], group["worst norm rmse"])
    return frame.set_index(["testset", "estimator"])


def run_staged(profile, testsets_=TESTSETS, progress: bool = False) -> dict:
    """Write, on each test set, the estimators `Project/refinement.ipynb` compares: the
    profile's network refined by each of ``refine_steps`` (on the fit's rows) on GalSim's
    model and on the JAX model (`galaxies.inference.differentiable.datasets`), the L-BFGS-B fit started
    from it (on ``refine_fit_limit`` of them), and GalSim's HSM shear estimators (every row).
    Returns ``{(estimator name, test set): path}``."""
    from galaxies.inference import galsim_fit, hsm, refine
    from galaxies.inference.differentiable import datasets

    profile = profiles.get(profile)
    network, trainset = profile.refine_start.rsplit("_", 1)
    refiners = ((refine.refine_dataset, lambda k: f"{network}+newton{k}"),
                (datasets.refine_dataset, lambda k: datasets.refined_name(network, k)))
    paths = {}
    for testset in testsets_:
        limit = profile.fit_rows(testset)
        start, data = profile.predictions(network, trainset, testset), profile.dataset(testset)
        for refine_dataset, named in refiners:
            for k in profile.refine_steps:
                paths[(named(k), testset)] = refine_dataset(
                    start, data, profile.predictions(named(k), trainset, testset), steps=k,
                    limit=limit, progress=progress, force=True)
        name = f"{network}+lbfgsb"
        paths[(name, testset)] = galsim_fit.fit_dataset(
            data, profile.predictions(name, trainset, testset), start=start, progress=progress,
            limit=min(limit, profile.refine_fit_limit or limit), force=True)
        for method in hsm.METHODS:
            name = f"hsm-{method.lower()}"
            paths[(name, testset)] = hsm.hsm_dataset(
                data, profile.predictions(name, "galsim", testset), method=method,
                progress=progress, force=True)
    return paths


def runs_table(paths: dict) -> pd.DataFrame:
    """Rows, seconds per image and the share not converged (or failed) of each file of
    `run_staged`, indexed by (test set, estimator)."""
    rows = []
    for (name, testset), path in paths.items():
        pred = files.load_predictions(path)
        rows.append({"testset": testset, "estimator": name, "rows": len(pred),
                     "seconds per image": pred.seconds_per_image,
                     "not converged or failed %": 100 * (1 - pred.attrs.get("converged_fraction", 1.0))})
    return pd.DataFrame(rows).set_index(["testset", "estimator"])
