"""The ring test: an estimator's shear response, flux and size bias on the `cosmos` set.

A shear estimator is judged as weak-lensing surveys judge one: its mean estimate against the
applied shear, ``<g_hat_i> = (1 + m_i) g_i + c_i`` for each component, with ``m`` the
multiplicative and ``c`` the additive bias (Heymans et al. 2006, the STEP and GREAT3
convention). The `cosmos` set (`galaxies.simulation.cosmos`) shows each galaxy in a ring of orientations,
each with ``+g`` and ``-g`` under the same noise, so intrinsic shapes and most of the noise cancel
in the regression and a few hundred images measure ``m`` to about 0.01.

`shear_bias` fits the line by least squares on every row (``g_hat`` on ``g``, with an
intercept) and gives standard errors by the delete-one-galaxy jackknife: the rows of a ring
share a galaxy and its noise, so they are not independent and the plain regression's errors
would be too small. ``m`` (pooled) is the slope of both components stacked, each with its own
intercept. `flux_size_bias` gives the mean and the scatter (standard deviation) of the relative
errors of flux and half-light radius, in percent. `table` puts both, per galaxy kind and
inside / outside the training box, into one pandas DataFrame per estimator: the report's table.
A row whose estimate is not finite is dropped with its ± partner (the pair would no longer
cancel) and counted in ``failed``.
"""
from __future__ import annotations

import numpy as np

from galaxies.runtime.errors import InputError

__all__ = ["shear_bias", "flux_size_bias", "GROUPS", "group_masks", "table"]


def _line_stats(x, y, clusters):
    """Per-cluster sums (n, x, y, xx, xy) for an OLS line with jackknife."""
    ids, inverse = np.unique(clusters, return_inverse=True)
    sums = np.zeros((len(ids), 5))
    for k, values in enumerate((np.ones_like(x), x, y, x * x, x * y)):
        np.add.at(sums[:, k], inverse, values)
    return sums


def _solve(s):
    n, sx, sy, sxx, sxy = s
    det = n * sxx - sx * sx
    slope = (n * sxy - sx * sy) / det
    return slope, (sy - slope * sx) / n


def _jackknife(sums, estimate):
    """Estimate on all clusters and its delete-one-cluster jackknife standard error."""
    total = sums.sum(axis=0)
    full = np.asarray(estimate(total))
    g = len(sums)
    if g < 3:
        return full, np.full_like(full, np.nan)
    leave = np.array([estimate(total - s) for s in sums])
    se = np.sqrt((g - 1) / g * np.sum((leave - leave.mean(axis=0)) ** 2, axis=0))
    return full, se


def shear_bias(g_hat, g_true, clusters) -> dict:
    """m1, c1, m2, c2 and the pooled m, each with its jackknife standard error (``_se``), of
    the estimates ``g_hat`` (N, 2) against the applied shears ``g_true`` (N, 2); ``clusters``
    (N,) names the galaxy of each row (the jackknife leaves out one at a time)."""
    g_hat, g_true = np.asarray(g_hat, float), np.asarray(g_true, float)
    clusters = np.asarray(clusters)
    if g_hat.shape != g_true.shape or g_hat.ndim != 2 or g_hat.shape[1] != 2:
        raise InputError(f"g_hat {g_hat.shape} and g_true {g_true.shape} must both be (N, 2)")
    if clusters.shape != (len(g_hat),):
        raise InputError(f"clusters has shape {clusters.shape}, expected ({len(g_hat)},)")
    if not (np.isfinite(g_hat).all() and np.isfinite(g_true).all()):
        raise InputError("g_hat and g_true must be finite (drop failed rows first)")
    out = {"rows": len(g_hat), "galaxies": len(np.unique(clusters))}
    if len(np.unique(g_true[:, 0])) < 2 or len(np.unique(g_true[:, 1])) < 2:
        raise InputError("the applied shear must take at least two values in each component")
    per = []
    for i in (0, 1):
        sums = _line_stats(g_true[:, i], g_hat[:, i], clusters)
        per.append(sums)
        (slope, icept), (slope_se, icept_se) = _jackknife(sums, _solve)
        out[f"m{i + 1}"], out[f"m{i + 1}_se"] = slope - 1.0, slope_se
        out[f"c{i + 1}"], out[f"c{i + 1}_se"] = icept, icept_se

    def pooled(both):  # one slope, one intercept per component
        s1, s2 = both[:5], both[5:]
        num = sum(s[4] - s[1] * s[2] / s[0] for s in (s1, s2))
        den = sum(s[3] - s[1] ** 2 / s[0] for s in (s1, s2))
        return num / den
    value, se = _jackknife(np.hstack(per), pooled)
    out["m"], out["m_se"] = float(value) - 1.0, float(se)
    return out


def flux_size_bias(pred, truth) -> dict:
    """Mean and standard deviation, in percent, of the relative errors of flux (column 0) and
    half-light radius (column 2); NaN where the estimator does not measure one."""
    pred, truth = np.asarray(pred, float), np.asarray(truth, float)
    out = {}
    for name, col in (("flux", 0), ("r", 2)):
        rel = 100.0 * (pred[:, col] / truth[:, col] - 1.0)
        ok = np.isfinite(rel)
        out[f"{name}_bias_pct"] = float(rel[ok].mean()) if ok.any() else float("nan")
        out[f"{name}_bias_se"] = (float(rel[ok].std(ddof=1) / np.sqrt(ok.sum()))
                                  if ok.sum() > 1 else float("nan"))
        out[f"{name}_scatter_pct"] = float(rel[ok].std(ddof=1)) if ok.sum() > 1 else float("nan")
    return out


#: the table's groups: (name, kind or None for both, in_box or None for both)
GROUPS = (("sersic, in box", 0, True), ("sersic, outside box", 0, False),
          ("bulge+disc, in box", 1, True), ("bulge+disc, outside box", 1, False),
          ("sersic", 0, None), ("bulge+disc", 1, None), ("all", None, None))


def group_masks(kind, in_box) -> dict[str, np.ndarray]:
    """Row masks of `GROUPS` from the `cosmos` set's ``kind`` and ``in_box`` fields."""
    kind, in_box = np.asarray(kind), np.asarray(in_box, bool)
    masks = {}
    for name, k, box in GROUPS:
        mask = np.ones(len(kind), bool)
        if k is not None:
            mask &= kind == k
        if box is not None:
            mask &= in_box == box
        masks[name] = mask
    return masks


def _pair_ids(extra) -> np.ndarray:
    keys = np.stack([extra["galaxy"], np.round(np.asarray(extra["angle"]) * 1000),
                     extra["realization"]], axis=1).astype(np.int64)
    return np.unique(keys, axis=0, return_inverse=True)[1].ravel()


def table(estimates: dict, label, extra) -> "pd.DataFrame":
    """The ring-test table: one row per estimator (``estimates``: name -> (N, 5) predictions
    in label order, aligned with the set's rows) and group (`GROUPS`), with rows used, rows
    failed, galaxies, flux and radius bias and scatter (percent), and m1, c1, m2, c2, m with
    standard errors. ``label`` and ``extra`` are the `cosmos` set's (`galaxies.simulation.cosmos.load_extra`)."""
    import pandas as pd
    label = np.asarray(label, float)
    pairs = _pair_ids(extra)
    masks = group_masks(extra["kind"], extra["in_box"])
    records = []
    for name, pred in estimates.items():
        pred = np.asarray(pred, float)
        if pred.shape != label.shape:
            raise InputError(f"{name}: predictions of shape {pred.shape}, expected {label.shape}")
        bad_rows = ~np.isfinite(pred[:, 3:5]).all(axis=1)
        bad = np.isin(pairs, pairs[bad_rows])
        for group, mask in masks.items():
            row = {"estimator": name, "group": group, "failed": int((mask & bad).sum())}
            use = mask & ~bad
            row.update(flux_size_bias(pred[mask], label[mask]))
            if use.sum() >= 4 and len(np.unique(extra["galaxy"][use])) >= 3:
                row.update(shear_bias(pred[use, 3:5], label[use, 3:5], extra["galaxy"][use]))
            else:
                row.update(rows=int(use.sum()), galaxies=len(np.unique(extra["galaxy"][use])))
            records.append(row)
    columns = ["estimator", "group", "rows", "failed", "galaxies", "flux_bias_pct",
               "flux_bias_se", "flux_scatter_pct", "r_bias_pct", "r_bias_se", "r_scatter_pct",
               "m", "m_se", "m1", "m1_se", "c1", "c1_se", "m2", "m2_se", "c2", "c2_se"]
    return pd.DataFrame.from_records(records).reindex(columns=columns)
