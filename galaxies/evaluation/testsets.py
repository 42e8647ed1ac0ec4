"""Predict the profile's test sets with a saved model and judge the predictions against the CRB.

The test sets (`galaxies.runtime.profiles.TESTSETS`, docs/architecture.md): the fixed galaxies ``snr60``,
``snr30``, ``compact`` and ``extended`` (one galaxy each, many noise realizations) and ``test``
(random galaxies). Predictions go to ``profile.predictions(estimator, trainset,
testset)``; the Cramér–Rao bound comes from `galaxies.inference.crb_sets.for_dataset` (cached next to each
set), computed for at most ``profile.crb_limit`` galaxies of a random-parameter set.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from galaxies.conventions import LABEL_COLUMNS
from galaxies.runtime import profiles
from galaxies.runtime.profiles import TESTSETS
from galaxies.storage import files

from . import evaluate


def predict(estimator, profile=None, testsets=TESTSETS, name: str | None = None,
            trainset: str | None = None) -> dict[str, Path]:
    """Write an estimator's predictions on each test set of a profile (replacing earlier ones:
    the profile's results are the pipeline's own); returns the files by test set.

    ``estimator`` is anything `galaxies.evaluation.estimators.load` takes (a model directory), a trained
    `galaxies.networks.training.SavedModel`, or an `galaxies.evaluation.estimators.Estimator`; ``name`` and
    ``trainset`` replace the names its predictions are filed under."""
    from galaxies.networks.training.saved import SavedModel

    from . import estimators

    profile = profiles.get(profile)
    if isinstance(estimator, SavedModel):
        estimator = estimators.Network(estimator)
    elif not isinstance(estimator, estimators.Estimator):
        estimator = estimators.load(estimator)
    estimator.name = name or estimator.name
    estimator.trainset = trainset or estimator.trainset
    return {testset: estimator.predict_file(
                profile.dataset(testset),
                profile.predictions(estimator.name, estimator.trainset, testset), force=True)
            for testset in testsets}


def crb(profile, testset: str):
    """The Cramér–Rao bound of a test set: (N, 5), one row per galaxy. A fixed-galaxy set has
    every row (computed once); a random-parameter set only its first ``profile.crb_limit``
    rows (the others are NaN, and `galaxies.evaluation.evaluate.against_crb` leaves them out)."""
    from galaxies.inference import crb_sets
    profile = profiles.get(profile)
    path = profile.dataset(testset)
    fixed = files.dataset_info(path)["recipe"].get("kind") == "fixed"
    return crb_sets.for_dataset(path, limit=None if fixed else profile.crb_limit, progress=False)


def against_crb(profile, estimator: str, trainset: str = "v1", testsets=TESTSETS) -> pd.DataFrame:
    """Bias, std, RMSE and their ratios to the CRB of an estimator's predictions on each test
    set, indexed by (testset, parameter). Test sets without predictions are left out."""
    profile = profiles.get(profile)
    tables = {}
    for testset in testsets:
        path = profile.predictions(estimator, trainset, testset)
        if not path.is_file():
            continue
        ds = files.load_dataset(profile.dataset(testset), fields=())
        tables[testset] = evaluate.against_crb(files.load_predictions(path), ds, crb(profile, testset))
    if not tables:
        raise FileNotFoundError(f"no predictions of {estimator}_{trainset} in {profile.predictions_dir}")
    return pd.concat(tables, names=["testset", "parameter"])


def ratios(table: pd.DataFrame, column: str = "rmse/crb") -> pd.DataFrame:
    """One column of `against_crb` as test sets x parameters."""
    return table[column].unstack("parameter")[list(LABEL_COLUMNS)]
