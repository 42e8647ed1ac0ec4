"""Results: estimates against the truth and the bound, learning curves, calibration."""
from __future__ import annotations

import numpy as np

from galaxies.conventions import LABEL_COLUMNS

from .common import LABEL_NAMES, _plt


def true_vs_predicted(truth: np.ndarray, pred: np.ndarray, title: str = "", color=None,
                      columns=LABEL_COLUMNS, axes=None, max_points: int = 5000):
    """Scatter of predicted against true value for each label, with the identity line."""
    plt = _plt()
    if axes is None:
        fig, axes = plt.subplots(1, len(columns), figsize=(3.0 * len(columns), 3.0))
    else:
        fig = np.atleast_1d(axes)[0].figure
    step = max(1, len(truth) // max_points)
    for j, (ax, column) in enumerate(zip(np.atleast_1d(axes), columns)):
        t, p = truth[::step, j], pred[::step, j]
        ax.scatter(t, p, s=3, alpha=0.4, color=color)
        lo, hi = float(np.min(t)), float(np.max(t))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel(f"true {LABEL_NAMES[column]}", fontsize=8)
        ax.set_ylabel("predicted", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def learning_curves(history, title: str = "", metrics=None, log: bool = True):
    """Training and validation loss per epoch from a Keras history (a DataFrame like
    ``history.csv``, or a dict of lists); one panel per metric (default: every metric that
    has a ``val_`` twin)."""
    import pandas as pd

    plt = _plt()
    frame = pd.DataFrame(history)
    if metrics is None:
        metrics = [c for c in frame.columns if f"val_{c}" in frame.columns]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 2.8), squeeze=False)
    epochs = np.arange(1, len(frame) + 1)
    for ax, metric in zip(axes[0], metrics):
        ax.plot(epochs, frame[metric], "o-", label="training")
        ax.plot(epochs, frame[f"val_{metric}"], "s--", label="validation")
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set_ylabel(metric, fontsize=8)
        if log and (frame[[metric, f"val_{metric}"]] > 0).all().all():
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def ratio_bars(table, column: str = "rmse/crb", title: str = ""):
    """Grouped bars of ``column`` per parameter, one bar per estimator, one panel per test set.

    ``table`` is indexed by (test set, estimator, parameter), like `galaxies.evaluation.experiments.denoise.compare`."""
    plt = _plt()
    testsets = list(dict.fromkeys(table.index.get_level_values(0)))
    fig, axes = plt.subplots(1, len(testsets), figsize=(4.2 * len(testsets), 3.0), squeeze=False)
    for ax, testset in zip(axes[0], testsets):
        wide = table.loc[testset][column].unstack("estimator").reindex(list(LABEL_COLUMNS))
        width = 0.8 / max(1, wide.shape[1])
        for j, estimator in enumerate(wide.columns):
            ax.bar(np.arange(len(wide)) + (j - (wide.shape[1] - 1) / 2) * width, wide[estimator],
                   width, label=estimator)
        ax.set_xticks(np.arange(len(wide)), wide.index, fontsize=7)
        ax.set_title(testset, fontsize=9)
        ax.set_ylabel(column, fontsize=8)
        if column.endswith("/crb"):
            ax.axhline(1.0, color="k", lw=0.8, ls=":")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------- final report

def crb_chart(table, title: str = ""):
    """The original study's CRB chart: per parameter, each estimator's standard deviation (bar) and
    absolute bias (hatched bar) next to the Cramér–Rao bound (dashed line).

    ``table`` is indexed by (estimator, parameter) with columns ``std``, ``bias`` and ``crb``
    (`galaxies.evaluation.report.comparison`)."""
    plt = _plt()
    estimators = list(dict.fromkeys(table.index.get_level_values(0)))
    fig, axes = plt.subplots(1, len(LABEL_COLUMNS), figsize=(3.1 * len(LABEL_COLUMNS), 3.4))
    x = np.arange(len(estimators))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, column in zip(axes, LABEL_COLUMNS):
        rows = table.xs(column, level="parameter").reindex(estimators)
        ax.bar(x - 0.2, rows["std"], 0.4, color=[colors[k % len(colors)] for k in x], label="std")
        ax.bar(x + 0.2, rows["bias"].abs(), 0.4, color="none", hatch="///",
               edgecolor=[colors[k % len(colors)] for k in x], label="|bias|")
        ax.axhline(float(rows["crb"].iloc[0]), color="k", ls="--", lw=1, label="CRB")
        ax.set_xticks(x, estimators, rotation=75, fontsize=6)
        ax.set_title(LABEL_NAMES[column], fontsize=8)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def error_vs_snr(table, columns=LABEL_COLUMNS):
    """RMSE against SNR, one panel per parameter, one line per estimator (rows of ``table``
    indexed by (estimator, SNR interval), as `galaxies.evaluation.report.error_vs_snr` returns)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(columns), figsize=(3.0 * len(columns), 2.8))
    for estimator, rows in table.groupby(level="estimator", sort=False):
        mid = [interval.mid for interval in rows.index.get_level_values("snr")]
        for ax, column in zip(axes, columns):
            ax.plot(mid, rows[column], "o-", ms=3, label=estimator)
    for ax, column in zip(axes, columns):
        ax.set(xlabel="SNR", yscale="log", title=f"RMSE of {column}")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------- Xception estimators

def compare_learning_curves(histories: dict, metric: str = "loss", log: bool = True, title: str = "",
                            ylabel: str | None = None):
    """Training (solid) and validation (dashed) ``metric`` per epoch of several models on one
    axis; ``histories`` maps a model's name to its history (``history.csv`` as a DataFrame)."""
    import pandas as pd

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, history) in enumerate(histories.items()):
        frame = pd.DataFrame(history)
        epochs = np.arange(1, len(frame) + 1)
        color = colors[k % len(colors)]
        ax.plot(epochs, frame[metric], "-", color=color, label=f"{name}")
        if f"val_{metric}" in frame:
            ax.plot(epochs, frame[f"val_{metric}"], "--", color=color)
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylabel(ylabel or f"{metric} (solid: training, dashed: validation)", fontsize=8)
    if log:
        ax.set_yscale("symlog" if any((pd.DataFrame(h)[metric] <= 0).any() for h in histories.values())
                      else "log")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def zscore_histograms(truth: np.ndarray, pred: np.ndarray, pred_std: np.ndarray, title: str = "",
                      columns=LABEL_COLUMNS, bins: int = 40):
    """Histograms of ``z = (pred - true) / pred_std`` per label against the standard normal
    (what a calibrated uncertainty gives), with the standard deviation of z and the share of
    |z| <= 1 (68.3% when calibrated) in each title."""
    plt = _plt()
    z = (np.asarray(pred, np.float64) - truth) / pred_std
    fig, axes = plt.subplots(1, len(columns), figsize=(2.8 * len(columns), 2.6))
    grid = np.linspace(-4, 4, 200)
    for j, (ax, column) in enumerate(zip(np.atleast_1d(axes), columns)):
        values = z[:, j][np.isfinite(z[:, j])]
        ax.hist(np.clip(values, -4, 4), bins=bins, range=(-4, 4), density=True, alpha=0.7)
        ax.plot(grid, np.exp(-grid ** 2 / 2) / np.sqrt(2 * np.pi), "k--", lw=1)
        ax.set_title(f"{column}: std {values.std():.2f}, {100 * np.mean(np.abs(values) <= 1):.0f}%",
                     fontsize=8)
        ax.set_xlabel("(pred - true) / pred_std", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------- the Cramér–Rao bound and the fit

def estimates_vs_crb(truth, pred: np.ndarray, crb, title: str = "", columns=LABEL_COLUMNS,
                     bins: int = 30):
    """Histograms of the estimates of one fixed galaxy (a test set like snr60), per label,
    with the true value (dashed) and the Gaussian an unbiased estimator at the Cramér–Rao
    bound would follow (solid). ``truth`` and ``crb``: five numbers."""
    plt = _plt()
    truth, crb = np.asarray(truth, np.float64), np.asarray(crb, np.float64)
    fig, axes = plt.subplots(1, len(columns), figsize=(2.9 * len(columns), 2.6))
    for j, (ax, column) in enumerate(zip(np.atleast_1d(axes), columns)):
        values = np.asarray(pred, np.float64)[:, j]
        values = values[np.isfinite(values)]
        lo, hi = truth[j] - 4 * crb[j], truth[j] + 4 * crb[j]
        ax.hist(np.clip(values, lo, hi), bins=bins, range=(lo, hi), density=True, alpha=0.7)
        grid = np.linspace(lo, hi, 200)
        ax.plot(grid, np.exp(-0.5 * ((grid - truth[j]) / crb[j]) ** 2) / (crb[j] * np.sqrt(2 * np.pi)),
                "k-", lw=1)
        ax.axvline(truth[j], color="k", ls="--", lw=0.8)
        ax.set_xlabel(LABEL_NAMES[column], fontsize=8)
        ax.set_yticks([])
        ax.locator_params(axis="x", nbins=4)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def rmse_and_crb_vs_snr(table, columns=LABEL_COLUMNS, title: str = ""):
    """RMSE (points) and RMS Cramér–Rao bound (line) per SNR bin, one panel per label, from
    `galaxies.evaluation.evaluate.crb_by_snr`."""
    plt = _plt()
    mid = np.array([interval.mid for interval in table.index])
    fig, axes = plt.subplots(1, len(columns), figsize=(2.9 * len(columns), 2.7))
    for ax, column in zip(np.atleast_1d(axes), columns):
        ax.plot(mid, table[(column, "rmse")], "o", ms=4, label="RMSE")
        ax.plot(mid, table[(column, "crb")], "k-", lw=1, label="CRB")
        ax.set(yscale="log", xlabel="SNR")
        ax.set_title(LABEL_NAMES[column], fontsize=8)
        ax.tick_params(labelsize=7)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def true_vs_predicted_grid(results: dict, max_points: int = 2000, size: float = 2.4):
    """True against predicted values, one row per estimator (``{label: (truth, pred)}``),
    one column per parameter, with shared axis ranges down each column."""
    plt = _plt()
    rows = list(results.items())
    fig, axes = plt.subplots(len(rows), len(LABEL_COLUMNS), figsize=(size * 5, size * 0.9 * len(rows)),
                             squeeze=False, sharex="col", sharey="col")
    for k, (label, (truth, pred)) in enumerate(rows):
        true_vs_predicted(truth, pred, axes=axes[k], max_points=max_points)
        axes[k, 0].set_ylabel(f"{label}\npredicted", fontsize=7)
        for ax in axes[k]:
            if k < len(rows) - 1:
                ax.set_xlabel("")
    fig.tight_layout()
    return fig


def accuracy_speed(frame, title: str = "accuracy against speed"):
    """Seconds per image (log axis) against the worst normalized RMSE, one panel per test set
    (`galaxies.evaluation.tradeoffs.accuracy_speed`), three to a row: filled markers on the front (joined
    by a line), hollow ones beaten by another, crosses for shear-only estimators; 1 is the bound."""
    plt = _plt()
    testsets = list(dict.fromkeys(frame.index.get_level_values("testset")))
    ncols = min(max(len(testsets), 1), 3)
    nrows = -(-max(len(testsets), 1) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.4 * nrows + 0.8), squeeze=False)
    for ax in axes.flat[len(testsets):]:
        ax.set_axis_off()
    labels = list(dict.fromkeys(frame.index.get_level_values("estimator")))
    palette = plt.get_cmap("tab20")
    color = {label: palette(k % 20) for k, label in enumerate(labels)}
    for ax, testset in zip(axes.flat, testsets):
        rows = frame.loc[testset]
        full = rows["measures"].str.len() == rows["measures"].str.len().max()
        for label, row in rows.iterrows():
            x, y = row["seconds per image"], row["worst norm rmse"]
            if not full[label]:
                ax.scatter(x, y, marker="x", color=color[label], s=40, label=label)
            else:
                ax.scatter(x, y, marker="o", s=45, color=color[label] if row["front"] else "none",
                           edgecolors=color[label], label=label)
        front = rows[rows["front"]].sort_values("seconds per image")
        ax.plot(front["seconds per image"], front["worst norm rmse"], "k-", lw=0.8, alpha=0.6)
        ax.axhline(1.0, color="k", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("CPU seconds per image (one core)", fontsize=8)
        ax.set_ylabel("worst RMSE / CRB of flux, r, g1, g2", fontsize=8)
        ax.set_title(testset, fontsize=9)
    handles = {h.get_label(): h for ax in axes.flat for h in ax.collections}
    fig.legend(list(handles.values()), list(handles), fontsize=6, loc="lower center",
               ncol=min(4, max(len(handles), 1)), bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.12 / nrows, 1, 1))
    return fig


def shear_bias(table, snr: str = "all", title: str = "shear calibration"):
    """m and c of g1 and g2 per estimator with their standard errors, from
    `galaxies.evaluation.report.shear_calibration` (the rows of SNR bin ``snr``); the shaded bands are
    |m| <= 0.01 and |c| <= 0.001."""
    plt = _plt()
    rows = table.xs(snr, level="snr")
    estimators = list(dict.fromkeys(rows.index.get_level_values("estimator")))
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.35 * len(estimators) + 1.8), sharey=True)
    y = np.arange(len(estimators))
    for ax, (quantity, band) in zip(axes, (("m", 0.01), ("c", 0.001))):
        for offset, parameter in ((-0.15, "g1"), (0.15, "g2")):
            part = rows.xs(parameter, level="parameter").reindex(estimators)
            ax.errorbar(part[quantity], y + offset, xerr=part[f"{quantity} err"], fmt="o", ms=4,
                        capsize=2, label=parameter)
        ax.axvspan(-band, band, color="0.85", zorder=0)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel(quantity, fontsize=9)
    axes[0].set_yticks(y, estimators, fontsize=7)
    axes[0].invert_yaxis()
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{title} (SNR {snr})", fontsize=10)
    fig.tight_layout()
    return fig


def by_training_size(runs, columns=("best_val_loss",), title: str = ""):
    """Learning curves against the number of training galaxies: one panel per column of
    ``runs`` (a table with ``net``, ``train_rows``, ``epochs`` and ``seed``, as
    benchmarks/learning_curves.py writes it), one line per network size, epoch count and seed."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(columns), figsize=(3.8 * len(columns), 3.0), squeeze=False)
    by = ["net", "epochs"] + (["seed"] if "seed" in runs else [])
    groups = runs.sort_values("train_rows").groupby(by, sort=False)
    for ax, column in zip(axes[0], columns):
        for key, part in groups:
            label = f"{key[0]}, {key[1]} epochs" + (f", seed {key[2]}" if len(key) > 2 else "")
            ax.plot(part["train_rows"], part[column], "o-", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("training galaxies", fontsize=8)
        ax.set_ylabel(column, fontsize=8)
        if "bias" in column:
            ax.axhline(0, color="k", lw=0.8)
        elif "/crb" in column or "norm" in column:
            ax.axhline(1, color="k", lw=0.8, ls=":")
    axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
