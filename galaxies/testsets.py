"""Predict the profile's test sets with a saved model and judge the predictions against the CRB.

The test sets (DESIGN.md): ``snr60`` and ``snr30`` (one galaxy, many noise realizations) and
``test`` (random galaxies). Predictions go to ``profile.predictions(estimator, dataset,
testset)``; the Cramér–Rao bound comes from `galaxies.crb.for_dataset` (cached next to each
set), computed for at most ``profile.crb_limit`` galaxies of a random-parameter set.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import evaluate, io, profiles
from .simulate import LABEL_COLUMNS

TESTSETS = ("snr60", "snr30", "test")


def predict(model_dir, profile=None, estimator: str | None = None, dataset: str = "v1",
            testsets=TESTSETS) -> dict[str, Path]:
    """Write the predictions of a saved model (`galaxies.train.SavedModel` directory) on each
    test set; returns the predictions files by test set."""
    from .train import SavedModel, predict_file

    profile = profiles.get(profile)
    model = model_dir if isinstance(model_dir, SavedModel) else SavedModel.load(model_dir)
    estimator = estimator or model.estimator
    return {testset: predict_file(model, profile.dataset(testset),
                                  profile.predictions(estimator, dataset, testset),
                                  estimator=estimator, trained_on=dataset)
            for testset in testsets}


def crb(profile, testset: str):
    """The Cramér–Rao bound of a test set: (N, 5), one row per galaxy. A fixed-galaxy set has
    every row (computed once); a random-parameter set only its first ``profile.crb_limit``
    rows (the others are NaN, and `galaxies.evaluate.against_crb` leaves them out)."""
    from . import crb as crb_module
    profile = profiles.get(profile)
    path = profile.dataset(testset)
    fixed = io.dataset_info(path)["recipe"].get("kind") == "fixed"
    return crb_module.for_dataset(path, limit=None if fixed else profile.crb_limit, progress=False)


def against_crb(profile, estimator: str, dataset: str = "v1", testsets=TESTSETS) -> pd.DataFrame:
    """Bias, std, RMSE and their ratios to the CRB of an estimator's predictions on each test
    set, indexed by (testset, parameter). Test sets without predictions are left out."""
    profile = profiles.get(profile)
    tables = {}
    for testset in testsets:
        path = profile.predictions(estimator, dataset, testset)
        if not path.is_file():
            continue
        ds = io.load_dataset(profile.dataset(testset), fields=())
        tables[testset] = evaluate.against_crb(io.load_predictions(path), ds, crb(profile, testset))
    if not tables:
        raise FileNotFoundError(f"no predictions of {estimator}_{dataset} in {profile.predictions_dir}")
    return pd.concat(tables, names=["testset", "parameter"])


def ratios(table: pd.DataFrame, column: str = "rmse/crb") -> pd.DataFrame:
    """One column of `against_crb` as test sets x parameters."""
    return table[column].unstack("parameter")[list(LABEL_COLUMNS)]
