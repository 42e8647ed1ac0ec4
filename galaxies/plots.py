"""Figures shared by the notebooks, the report and the app.

Every function draws on a new or given matplotlib figure and returns it, so notebooks show it
and scripts can save it. Nothing here computes results; it only shows them.
"""
from __future__ import annotations

import functools

import numpy as np

from .simulate import LABEL_COLUMNS

#: Axis labels with units, by label column.
LABEL_NAMES = {
    "flux": "flux [e-]",
    "sersic_n": "Sérsic index n",
    "sersic_r": "half-light radius r [arcsec]",
    "g1": "shear g1",
    "g2": "shear g2",
}


def _plt():
    import matplotlib.pyplot as plt
    return plt


def stretch(image: np.ndarray, mode: str = "linear") -> np.ndarray:
    """Display values of an image: ``linear`` or ``log`` (asinh-like, keeps negatives)."""
    if mode == "linear":
        return image
    if mode == "log":
        scale = max(float(np.std(image)), 1e-12)
        return np.arcsinh(image / scale)
    raise ValueError(f"stretch = {mode!r}; choose 'linear' or 'log'")


def image_grid(images, titles=None, ncols: int = 6, mode: str = "linear", cmap: str = "magma",
               size: float = 1.8, suptitle: str | None = None):
    """Show a list (or stack) of 2-D images in a grid, each with its own colour scale."""
    plt = _plt()
    images = list(images)
    nrows = max(1, int(np.ceil(len(images) / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for k, (ax, image) in enumerate(zip(axes.flat, images)):
        ax.imshow(stretch(np.asarray(image), mode), cmap=cmap, origin="lower")
        if titles is not None:
            ax.set_title(titles[k], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def label_histograms(dataset, bins: int = 40, extra=("snr", "sigma", "psf_fwhm"),
                     title: str | None = None):
    """Histograms of the five labels and of SNR, sigma and PSF FWHM of a data set (or of a
    DataFrame like its ``labels_frame()``, e.g. a filtered selection)."""
    plt = _plt()
    frame = dataset.labels_frame() if hasattr(dataset, "labels_frame") else dataset
    if title is None:
        title = f"{getattr(dataset, 'name', 'selection')}: {len(frame)} galaxies"
    columns = list(LABEL_COLUMNS) + [c for c in extra if frame[c].nunique() > 1]
    fig, axes = plt.subplots(1, len(columns), figsize=(2.6 * len(columns), 2.4))
    for ax, column in zip(np.atleast_1d(axes), columns):
        ax.hist(frame[column], bins=bins, color="tab:blue", alpha=0.8)
        ax.set_xlabel(LABEL_NAMES.get(column, column), fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


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


# ------------------------------------------------- exploration: the EDA notebook and the app

@functools.lru_cache(maxsize=16)
def _colour_table(cmap: str) -> np.ndarray:
    # matplotlib.colormaps[name] returns a fresh copy that rebuilds its table on every call
    import matplotlib
    return matplotlib.colormaps[cmap](np.linspace(0, 1, 256), bytes=True)[:, :3]


def to_rgb(image: np.ndarray, mode: str = "linear", cmap: str = "magma", upscale: int = 4,
           symmetric: bool = False) -> np.ndarray:
    """An image as an RGB uint8 array for ``st.image``/PIL, without a matplotlib figure (fast).

    The colour scale spans the image's own range after `stretch` (``symmetric``: centred on 0,
    for noise and differences); each pixel becomes ``upscale`` x ``upscale`` screen pixels so
    browsers do not blur it.
    """
    values = stretch(np.asarray(image, dtype=np.float64), mode)
    if symmetric:
        top = max(float(np.max(np.abs(values))), 1e-12)
        low, high = -top, top
    else:
        low, high = float(np.min(values)), float(np.max(values))
    scaled = (values - low) / max(high - low, 1e-12)
    lut = _colour_table(cmap)
    rgb = lut[np.clip((scaled * (len(lut) - 1)).round(), 0, len(lut) - 1).astype(np.intp)]
    if upscale > 1:
        rgb = np.repeat(np.repeat(rgb, upscale, axis=0), upscale, axis=1)
    return np.ascontiguousarray(rgb)


def pair_plot(frame, columns=tuple(LABEL_COLUMNS) + ("snr",), color: str = "snr",
              max_points: int = 2000, seed: int = 0, title: str = ""):
    """Scatter of every pair of ``columns`` (lower triangle, coloured by ``color``) with each
    column's histogram on the diagonal."""
    plt = _plt()
    columns = [c for c in columns if frame[c].nunique() > 1]
    if len(frame) > max_points:
        frame = frame.sample(max_points, random_state=seed)
    k = len(columns)
    fig, axes = plt.subplots(k, k, figsize=(1.7 * k, 1.7 * k), squeeze=False)
    for i, row in enumerate(columns):
        for j, col in enumerate(columns):
            ax = axes[i, j]
            if j > i:
                ax.set_axis_off()
                continue
            if i == j:
                ax.hist(frame[col], bins=30, color="tab:gray")
            else:
                points = ax.scatter(frame[col], frame[row], c=frame[color], s=2, alpha=0.6,
                                    cmap="viridis", rasterized=True)
            ax.tick_params(labelsize=6)
            ax.ticklabel_format(style="sci", scilimits=(-3, 4), useOffset=False)
            if i == k - 1:
                ax.set_xlabel(LABEL_NAMES.get(col, col), fontsize=7)
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(LABEL_NAMES.get(row, row), fontsize=7)
            elif j > 0:
                ax.set_yticklabels([])
    if k > 1:
        fig.colorbar(points, ax=axes[0, -1], orientation="horizontal", fraction=0.6,
                     label=LABEL_NAMES.get(color, color))
    fig.suptitle(title or f"{len(frame)} galaxies, coloured by {color}", fontsize=10)
    fig.tight_layout()
    return fig


def snr_dependence(grid, window, snr_range=(10.0, 100.0), flux_range=(3e4, 4e5)):
    """How the SNR depends on flux, noise, radius and Sérsic index.

    ``grid``: `galaxies.eda.snr_grid` (SNR by radius and index at one flux and sigma);
    ``window``: `galaxies.eda.flux_window` of it. Left: SNR against flux at the grid's median
    radius for two noise levels; middle: SNR against radius for each index; right: the fluxes
    the SNR cut keeps, against radius.
    """
    plt = _plt()
    flux0, sigma0 = grid.attrs["flux"], grid.attrs["sigma"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    r_mid = grid.index[len(grid.index) // 2]
    n_mid = grid.columns[len(grid.columns) // 2]
    flux = np.geomspace(*flux_range, 50)
    for sigma, style in ((sigma0, "-"), (2 * sigma0, "--")):
        axes[0].plot(flux, grid.loc[r_mid, n_mid] * flux / flux0 * sigma0 / sigma, style,
                     label=f"sigma = {sigma:g}")
    axes[0].set(xscale="log", yscale="log", xlabel=LABEL_NAMES["flux"], ylabel="SNR",
                title=f"n = {n_mid:g}, r = {r_mid:.2f}\": SNR ∝ flux / sigma")
    for n in grid.columns:
        line, = axes[1].plot(grid.index, grid[n], label=f"n = {n:g}")
        axes[2].plot(window["low"].index, window["low"][n], color=line.get_color(), lw=1)
        axes[2].plot(window["high"].index, window["high"][n], color=line.get_color(), lw=1,
                     ls="--")
    axes[2].axhspan(*flux_range, color="tab:gray", alpha=0.1)
    axes[1].set(xlabel=LABEL_NAMES["sersic_r"], ylabel="SNR",
                title=f"flux = {flux0:.3g} e-, sigma = {sigma0:g}")
    axes[2].set(yscale="log", xlabel=LABEL_NAMES["sersic_r"], ylabel="flux [e-]",
                title=f"flux at SNR {snr_range[0]:g} (—) and {snr_range[1]:g} (--), sigma {sigma0:g}")
    from matplotlib.ticker import NullFormatter
    for ax in (axes[0], axes[2]):
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
    for ax in axes[:2]:
        for level in snr_range:
            ax.axhline(level, color="k", lw=0.8, ls=":")
    for level in flux_range:
        axes[2].axhline(level, color="k", lw=0.8, ls=":")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def sersic_strip(images, sersic_ns, reference: int, sigma: float, mode: str = "log"):
    """Top: one galaxy drawn with each Sérsic index (shared colour scale). Bottom: each image
    minus the ``reference``-th, in units of the read noise ``sigma`` (shared symmetric scale):
    what an estimator has to see to tell the indices apart."""
    plt = _plt()
    images = np.asarray(images, dtype=np.float64)
    shown = stretch(images, mode) if mode == "linear" else np.arcsinh(images / sigma)
    diff = (images - images[reference]) / sigma
    top = max(float(np.max(np.abs(diff))), 1e-12)
    k = len(images)
    fig, axes = plt.subplots(2, k, figsize=(1.9 * k, 4.2), squeeze=False)
    for j in range(k):
        axes[0, j].imshow(shown[j], cmap="magma", origin="lower", vmin=shown.min(),
                          vmax=shown.max())
        axes[0, j].set_title(f"n = {sersic_ns[j]:g}", fontsize=8)
        im = axes[1, j].imshow(diff[j], cmap="RdBu_r", origin="lower", vmin=-top, vmax=top)
        axes[1, j].set_title(f"peak {np.max(np.abs(diff[j])):.1f}σ, "
                             f"total {np.sqrt(np.sum(diff[j] ** 2)):.1f}σ", fontsize=8)
        for ax in axes[:, j]:
            ax.set_axis_off()
    fig.colorbar(im, ax=axes[1, :].tolist(), fraction=0.02, label=f"(image - n={sersic_ns[reference]:g}) / σ")
    return fig


def correlation_heatmap(table, title: str = "", cmap: str = "RdBu_r"):
    """A square table of correlations in [-1, 1] (e.g. `galaxies.eda.derivative_correlation`)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    im = ax.imshow(table.to_numpy(), cmap=cmap, vmin=-1, vmax=1)
    ax.set_xticks(range(len(table.columns)), table.columns, rotation=45, fontsize=8)
    ax.set_yticks(range(len(table.index)), table.index, fontsize=8)
    for (i, j), value in np.ndenumerate(table.to_numpy()):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def bounds_vs_snr(frame, widths: dict | None = None, snr_range=(10.0, 100.0), current=None):
    """Cramér–Rao bounds against SNR (``frame`` from `galaxies.app_support.bounds_versus_snr`),
    one panel per parameter; ``widths`` (label -> range width) plots bound / width instead,
    all in one panel. ``current``: the SNR to mark."""
    plt = _plt()
    columns = list(LABEL_COLUMNS)
    if widths:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for c in columns:
            ax.plot(frame["snr"], frame[c] / widths[c], "o-", ms=3, label=c)
        ax.set(xscale="log", yscale="log", xlabel="SNR", ylabel="bound / range of the parameter")
        ax.legend(fontsize=8)
        axes = [ax]
    else:
        fig, axes = plt.subplots(1, len(columns), figsize=(2.8 * len(columns), 2.8))
        for ax, c in zip(axes, columns):
            ax.plot(frame["snr"], frame[c], "o-", ms=3)
            ax.set(xscale="log", yscale="log", xlabel="SNR", title=f"bound on {c}")
    for ax in axes:
        ax.axvspan(*snr_range, color="tab:green", alpha=0.08)
        if current is not None:
            ax.axvline(current, color="k", ls="--", lw=0.8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ denoising

def denoising_examples(noisy, denoised, noiseless, titles=None, mode: str = "linear",
                       cmap: str = "magma", size: float = 1.8):
    """Rows of galaxies; columns: noisy, denoised, noiseless, and the residuals noisy -
    noiseless and denoised - noiseless (photo-electrons). The three images of a row share one
    colour scale, the two residuals another (symmetric about 0)."""
    plt = _plt()
    noisy, denoised, noiseless = (np.asarray(a, dtype=np.float64) for a in (noisy, denoised, noiseless))
    if noisy.ndim == 2:
        noisy, denoised, noiseless = noisy[None], denoised[None], noiseless[None]
    columns = ("noisy", "denoised", "noiseless", "noisy - noiseless", "denoised - noiseless")
    fig, axes = plt.subplots(len(noisy), 5, figsize=(size * 5, size * len(noisy)), squeeze=False)
    for k in range(len(noisy)):
        shown = [stretch(a[k], mode) for a in (noisy, denoised, noiseless)]
        low, high = min(float(a.min()) for a in shown), max(float(a.max()) for a in shown)
        residuals = (noisy[k] - noiseless[k], denoised[k] - noiseless[k])
        top = max(float(np.abs(residuals[0]).max()), 1e-12)
        for j, ax in enumerate(axes[k]):
            if j < 3:
                ax.imshow(shown[j], cmap=cmap, origin="lower", vmin=low, vmax=high)
            else:
                ax.imshow(residuals[j - 3], cmap="RdBu_r", origin="lower", vmin=-top, vmax=top)
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_title(columns[j], fontsize=8)
        if titles is not None:
            axes[k, 0].set_ylabel(titles[k], fontsize=8)
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

    ``table`` is indexed by (test set, estimator, parameter), like `galaxies.denoise.compare`."""
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
    """The seed's CRB chart: per parameter, each estimator's standard deviation (bar) and
    absolute bias (hatched bar) next to the Cramér–Rao bound (dashed line).

    ``table`` is indexed by (estimator, parameter) with columns ``std``, ``bias`` and ``crb``
    (`galaxies.report.comparison`)."""
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
    indexed by (estimator, SNR interval), as `galaxies.report.error_vs_snr` returns)."""
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

def compare_learning_curves(histories: dict, metric: str = "loss", log: bool = True, title: str = ""):
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
    ax.set_ylabel(f"{metric} (solid: training, dashed: validation)", fontsize=8)
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
    `galaxies.evaluate.crb_by_snr`."""
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
