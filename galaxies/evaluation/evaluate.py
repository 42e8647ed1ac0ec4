"""Accuracy of any estimator: bias, standard deviation and RMSE per parameter, against the CRB.

Every estimator writes the predictions file of docs/architecture.md, so one set of functions
judges them
all. Tables are pandas DataFrames indexed by the label columns.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from galaxies.conventions import LABEL_COLUMNS
from galaxies.runtime.errors import InputError
from galaxies.storage import files
from galaxies.storage.atomic import TMP_PREFIX

__all__ = ["aligned", "dropped", "summary", "against_crb", "by_snr", "calibration", "list_predictions",
           "dataset_crb", "against_dataset_crb", "crb_by_snr", "shear_calibration",
           "bias_variance", "normalized_by"]


#: edges of the SNR bins of every table by SNR (the training sets' SNR range, finer where
#: the bound changes fastest)
SNR_BINS = (10, 15, 20, 30, 45, 65, 100)


def _load(predictions, dataset):
    if not isinstance(predictions, files.Predictions):
        predictions = files.load_predictions(predictions)
    if not isinstance(dataset, files.Dataset):
        dataset = files.load_dataset(dataset, fields=())
    return predictions, dataset


def aligned(predictions, dataset):
    """``(pred, truth, rows)``: predictions and the true labels of the same rows of the set.

    Accepts loaded objects or paths. Raises `galaxies.runtime.errors.InputError` when the predictions
    are of another data set (their ``dataset`` attribute), name a row twice, or refer to rows
    the data set does not have.
    """
    predictions, dataset = _load(predictions, dataset)
    if predictions.dataset != dataset.name:
        raise InputError(f"predictions {predictions.path} are of data set {predictions.dataset!r}, "
                         f"not of {dataset.path} ({dataset.name!r})")
    rows = predictions.index
    if len(np.unique(rows)) != len(rows):
        values, counts = np.unique(rows, return_counts=True)
        raise InputError(f"predictions {predictions.path} name row {int(values[counts > 1][0])} "
                         f"{int(counts.max())} times; each row may appear once")
    if dataset.index is not None:
        position = {int(r): k for k, r in enumerate(dataset.index)}
        missing = [int(r) for r in rows if int(r) not in position]
        if missing:
            raise InputError(f"predictions {predictions.path} refer to rows {missing[:5]} that were "
                             f"not loaded from {dataset.path}")
        take = np.array([position[int(r)] for r in rows], dtype=np.int64)
    else:
        outside = rows[(rows < 0) | (rows >= len(dataset))]
        if len(outside):
            raise InputError(f"predictions {predictions.path} refer to row {int(outside[0])}, but "
                             f"{dataset.path} has rows 0 to {len(dataset) - 1}")
        take = rows
    return predictions.pred.astype(np.float64), dataset.label[take].astype(np.float64), take


def dropped(pred: np.ndarray, truth: np.ndarray) -> dict:
    """What a table leaves out: per parameter, the rows whose prediction or label is NaN or
    infinite (0 for a parameter the estimator does not measure: NaN in every row, as HSM's
    flux, n and r); and the rows left out of at least one measured parameter (``rows``), for
    a bad prediction (``predictions``) or a bad label (``labels``).

    Such rows are counted and reported, not refused: a fit that failed on one galaxy leaves
    its row NaN and HSM leaves whole columns NaN, so refusing would refuse estimators whose
    other rows are sound; counting them in every table (``dropped``, and the table's
    ``attrs``) and in ``galaxies evaluate``'s header keeps them from passing unseen.
    """
    bad_pred, bad_truth = ~np.isfinite(pred), ~np.isfinite(truth)
    measured = ~bad_pred.all(axis=0)
    bad = (bad_pred | bad_truth) & measured
    return {"per_parameter": bad.sum(axis=0), "rows": int(bad.any(axis=1).sum()),
            "predictions": int((bad_pred & measured).any(axis=1).sum()),
            "labels": int((bad_truth & measured).any(axis=1).sum()), "of": len(pred)}


def summary(predictions, dataset) -> pd.DataFrame:
    """Bias, standard deviation and RMSE of each parameter (rows: the label columns), over
    ``n`` rows; ``dropped`` counts those left out for a NaN or infinite prediction or label
    (`dropped`, whose totals are in the table's ``attrs``)."""
    pred, truth, _ = aligned(predictions, dataset)
    error = pred - truth
    ok = np.isfinite(error)
    left_out = dropped(pred, truth)
    table = pd.DataFrame(index=pd.Index(LABEL_COLUMNS, name="parameter"))
    table.attrs.update({f"dropped_{k}" if k != "of" else "rows": v for k, v in left_out.items()
                        if k != "per_parameter"})
    table["n"] = n = ok.sum(axis=0)
    table["dropped"] = left_out["per_parameter"]
    # a parameter an estimator does not measure (NaN in every row, the shear-only HSM) is NaN
    table["bias"] = [error[ok[:, j], j].mean() if n[j] else np.nan for j in range(5)]
    table["std"] = [error[ok[:, j], j].std(ddof=1) if n[j] > 1 else np.nan for j in range(5)]
    table["rmse"] = [np.sqrt(np.mean(error[ok[:, j], j] ** 2)) if n[j] else np.nan for j in range(5)]
    return table


def against_crb(predictions, dataset, crb) -> pd.DataFrame:
    """`summary` plus the same divided by the Cramér–Rao bound.

    ``crb`` is the bound on the standard deviation of each parameter: five numbers (a fixed
    galaxy), or one row of five per galaxy of the set. Per-galaxy bounds may be NaN for rows
    not computed (`galaxies.inference.crb_sets.for_dataset` with a ``limit``): then only the galaxies with a
    bound are evaluated, and the ratios use the RMS bound of those galaxies.

    ``norm rmse`` and ``norm bias`` are the RMS and the mean of each galaxy's error divided by
    its own bound: on a random-parameter set the fair ratio (a galaxy with a wide bound does not
    hide the errors of the others); for a fixed galaxy they equal ``rmse/crb`` and ``bias/crb``.
    """
    predictions, dataset = _load(predictions, dataset)
    crb = np.asarray(crb, dtype=np.float64)
    if crb.ndim == 2:
        _, _, take = aligned(predictions, dataset)
        known = np.isfinite(crb[take]).all(axis=1)
        if not known.any():
            raise InputError(f"no galaxy of {predictions.path} has a Cramér–Rao bound")
        if not known.all():
            predictions = predictions.take(known)
        per_galaxy = crb[take[known]]
        crb = np.sqrt(np.mean(per_galaxy ** 2, axis=0))
    else:
        per_galaxy = crb
    if crb.shape != (5,):
        raise InputError(f"crb has shape {crb.shape}, expected (5,) or (N, 5)")
    table = summary(predictions, dataset)
    table["crb"] = crb
    for column in ("bias", "std", "rmse"):
        table[f"{column}/crb"] = table[column] / crb
    pred, truth, _ = aligned(predictions, dataset)
    z = (pred - truth) / per_galaxy
    ok = np.isfinite(z)
    table["norm rmse"] = [np.sqrt(np.mean(z[ok[:, j], j] ** 2)) if ok[:, j].any() else np.nan
                          for j in range(5)]
    table["norm bias"] = [z[ok[:, j], j].mean() if ok[:, j].any() else np.nan for j in range(5)]
    return table


def by_snr(predictions, dataset, bins=SNR_BINS) -> pd.DataFrame:
    """RMSE of each parameter in bins of SNR (for random-parameter sets)."""
    pred, truth, take = aligned(predictions, dataset)
    snr = dataset.snr[take]
    which = pd.cut(snr, bins=list(bins), include_lowest=True)
    error = pd.DataFrame((pred - truth) ** 2, columns=list(LABEL_COLUMNS))
    grouped = error.groupby(which, observed=False)
    table = np.sqrt(grouped.mean())
    table.insert(0, "n", grouped.size())
    table.index.name = "snr"
    return table


def calibration(predictions, dataset) -> pd.DataFrame:
    """For predictions with ``pred_std``: the standard deviation of the z-scores
    ``(pred - true) / pred_std`` (1 when calibrated) and the coverage of the ±1 sigma interval
    (68.3% when calibrated)."""
    predictions, dataset = _load(predictions, dataset)
    if predictions.pred_std is None:
        raise InputError(f"{predictions.path} has no pred_std; train with uncertainty to get one")
    pred, truth, _ = aligned(predictions, dataset)
    z = (pred - truth) / predictions.pred_std
    return pd.DataFrame({"z std": z.std(axis=0, ddof=1), "z mean": z.mean(axis=0),
                         "coverage 68%": 100 * np.mean(np.abs(z) <= 1, axis=0)},
                        index=pd.Index(LABEL_COLUMNS, name="parameter"))


_NAME = re.compile(r"^(?P<estimator>.+?)_(?P<trainset>[^_]+)__(?P<testset>.+)\.h5$")


def list_predictions(folder: str | Path) -> pd.DataFrame:
    """The predictions files in ``folder`` (``<estimator>_<trainset>__<testset>.h5``) as a
    table of estimator, training set, test set, seconds per image and path; unfinished files
    (`galaxies.storage.atomic.TMP_PREFIX`) are left out."""
    rows = []
    for path in sorted(Path(folder).glob("*.h5")):
        match = _NAME.match(path.name)
        if not match or path.name.startswith(TMP_PREFIX):
            continue
        attrs = files.load_predictions(path)
        rows.append({**match.groupdict(), "seconds_per_image": attrs.seconds_per_image,
                     "n": len(attrs), "path": path})
    return pd.DataFrame(rows, columns=["estimator", "trainset", "testset", "seconds_per_image",
                                       "n", "path"])


# ------------------------------------------------- bounds of the galaxies of a data set

def dataset_crb(predictions, dataset, jobs: int | None = None, progress: bool = True) -> np.ndarray:
    """Cramér–Rao bounds (N, 5) of the rows of ``dataset`` (as loaded) that ``predictions``
    cover, from `galaxies.inference.crb_sets.for_dataset` (computed once, then read from ``<set>.crb.h5``);
    rows the predictions do not cover are NaN. Accepts loaded objects or paths."""
    from galaxies.inference import crb_sets

    predictions, dataset = _load(predictions, dataset)
    _, _, take = aligned(predictions, dataset)
    file_rows = dataset.rows[take]
    bounds = crb_sets.for_dataset(dataset.path, rows=file_rows, jobs=jobs, progress=progress)
    return bounds[dataset.rows]


def against_dataset_crb(predictions, dataset, jobs: int | None = None,
                        progress: bool = True) -> pd.DataFrame:
    """`against_crb` with the bounds of the very galaxies predicted (`dataset_crb`): bias, std
    and RMSE per parameter and their ratios to the (RMS) Cramér–Rao bound."""
    predictions, dataset = _load(predictions, dataset)
    return against_crb(predictions, dataset, dataset_crb(predictions, dataset, jobs, progress))


def crb_by_snr(predictions, dataset, crb, bins=SNR_BINS) -> pd.DataFrame:
    """RMSE, RMS Cramér–Rao bound and their ratio per parameter in bins of SNR.

    ``crb`` is (N, 5), one row per row of ``dataset`` (NaN rows are left out of the bound's
    average). Columns are a MultiIndex (parameter, ``rmse`` | ``crb`` | ``rmse/crb``), plus
    ``n``, the galaxies per bin; rows are SNR intervals.
    """
    predictions, dataset = _load(predictions, dataset)
    pred, truth, take = aligned(predictions, dataset)
    crb = np.asarray(crb, dtype=np.float64)
    if crb.shape != (len(dataset), 5):
        raise InputError(f"crb has shape {crb.shape}, expected ({len(dataset)}, 5)")
    which = pd.cut(dataset.snr[take], bins=list(bins), include_lowest=True)
    squares = {}
    for j, column in enumerate(LABEL_COLUMNS):
        squares[(column, "rmse")] = (pred[:, j] - truth[:, j]) ** 2
        squares[(column, "crb")] = crb[take, j] ** 2
    grouped = pd.DataFrame(squares).groupby(which, observed=False)
    means = grouped.mean()
    table = pd.DataFrame({("n", ""): grouped.size()})
    for column in LABEL_COLUMNS:
        table[(column, "rmse")] = np.sqrt(means[(column, "rmse")])
        table[(column, "crb")] = np.sqrt(means[(column, "crb")])
        table[(column, "rmse/crb")] = table[(column, "rmse")] / table[(column, "crb")]
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["parameter", "quantity"])
    table.index.name = "snr"
    return table


# ------------------------------------------------------------------- shear calibration

def _line(truth: np.ndarray, estimate: np.ndarray) -> dict:
    """Least-squares ``estimate = (1 + m) truth + c`` with the standard errors of m and c from
    the residual scatter (finite rows only)."""
    ok = np.isfinite(truth) & np.isfinite(estimate)
    x, y = truth[ok], estimate[ok]
    n = len(x)
    if n < 3 or np.ptp(x) == 0:
        return {"n": n, "m": np.nan, "m err": np.nan, "c": np.nan, "c err": np.nan}
    design = np.column_stack([x, np.ones(n)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    cov = np.linalg.inv(design.T @ design) * (residual @ residual) / (n - 2)
    return {"n": n, "m": coef[0] - 1.0, "m err": float(np.sqrt(cov[0, 0])),
            "c": coef[1], "c err": float(np.sqrt(cov[1, 1]))}


def shear_calibration(predictions, dataset, bins=SNR_BINS, min_snr: float | None = None) -> pd.DataFrame:
    """Multiplicative and additive shear biases ``m`` and ``c`` of g1 and g2 on a
    random-parameter set: a straight line ``estimate = (1 + m) truth + c`` over every galaxy
    (SNR bin ``all``, or above ``min_snr``) and per SNR bin, with standard errors. Rows indexed
    by (parameter, SNR bin); columns n, m, m err, c, c err."""
    pred, truth, take = aligned(predictions, dataset)
    snr = dataset.snr[take]
    groups = {"all": np.ones(len(snr), dtype=bool)}
    if min_snr is not None:
        groups[f"> {min_snr:g}"] = snr > min_snr
    for low, high in zip(bins[:-1], bins[1:]):
        groups[f"{low}-{high}"] = (snr >= low) & (snr < high) if high != bins[-1] else (snr >= low) & (snr <= high)
    rows = {}
    for parameter in ("g1", "g2"):
        j = LABEL_COLUMNS.index(parameter)
        for name, keep in groups.items():
            rows[(parameter, name)] = _line(truth[keep, j], pred[keep, j])
    table = pd.DataFrame(rows).T
    table.index.names = ["parameter", "snr"]
    return table.astype({"n": int})


# ----------------------------------------------------- where the errors come from

def bias_variance(pred: np.ndarray, truth: np.ndarray, crb: np.ndarray) -> pd.DataFrame:
    """Each galaxy's bias and variance in units of its own bound, from repeated estimates.

    ``pred`` is (G, K, 5): K estimates of each of G galaxies (K noise realizations), ``truth``
    and ``crb`` (G, 5). Rows: the label columns; columns ``rms bias`` (the RMS over galaxies of
    ``(mean_k pred - truth) / crb``), ``rms std`` (of ``std_k pred / crb``), ``norm mse`` (their
    squares summed: the mean normalized MSE) and ``bias share`` (the part of it that is bias).
    """
    pred, truth, crb = (np.asarray(a, dtype=np.float64) for a in (pred, truth, crb))
    if pred.ndim != 3 or pred.shape[1] < 2 or truth.shape != (pred.shape[0], pred.shape[2]) \
            or crb.shape != truth.shape:
        raise InputError(f"pred {pred.shape}, truth {truth.shape} and crb {crb.shape}: expected "
                         "(G, K >= 2, 5), (G, 5) and (G, 5)")
    bias = (pred.mean(axis=1) - truth) / crb
    variance = pred.var(axis=1, ddof=1) / crb**2
    square_bias = np.mean(bias**2, axis=0) - np.mean(variance, axis=0) / pred.shape[1]
    table = pd.DataFrame(index=pd.Index(LABEL_COLUMNS[:pred.shape[2]], name="parameter"))
    table["rms bias"] = np.sqrt(np.maximum(square_bias, 0.0))
    table["rms std"] = np.sqrt(np.mean(variance, axis=0))
    table["norm mse"] = np.maximum(square_bias, 0.0) + np.mean(variance, axis=0)
    table["bias share"] = np.maximum(square_bias, 0.0) / table["norm mse"]
    return table


def normalized_by(pred: np.ndarray, truth: np.ndarray, crb: np.ndarray, values: np.ndarray,
                  bins) -> pd.DataFrame:
    """Mean and RMS of each galaxy's error over its own bound, ``(pred - truth) / crb``, in
    bins of ``values`` (N,): e.g. the truth of one parameter, or the SNR. Rows: the bins
    (``bins`` edges, the last closed); columns (parameter, ``bias`` | ``rms``) and ``n``.
    Rows with a NaN bound or estimate are left out."""
    pred, truth, crb = (np.asarray(a, dtype=np.float64) for a in (pred, truth, crb))
    values = np.asarray(values, dtype=np.float64)
    if pred.shape != truth.shape or crb.shape != truth.shape or values.shape != truth.shape[:1]:
        raise InputError(f"pred {pred.shape}, truth {truth.shape}, crb {crb.shape} and values "
                         f"{values.shape} must describe the same rows")
    z = (pred - truth) / crb
    keep = np.isfinite(z).all(axis=1) & np.isfinite(values)
    which = pd.cut(values[keep], bins=list(bins), include_lowest=True)
    frame = pd.DataFrame(z[keep], columns=list(LABEL_COLUMNS))
    grouped = frame.groupby(which, observed=False)
    table = pd.DataFrame({("n", ""): grouped.size()})
    means, squares = grouped.mean(), (frame**2).groupby(which, observed=False).mean()
    for column in LABEL_COLUMNS:
        table[(column, "bias")] = means[column]
        table[(column, "rms")] = np.sqrt(squares[column])
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["parameter", "quantity"])
    return table
