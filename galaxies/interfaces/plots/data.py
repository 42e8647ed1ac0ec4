"""The data sets and the physics: label distributions, SNR, bounds, correlations."""
from __future__ import annotations

import numpy as np

from galaxies.conventions import LABEL_COLUMNS, RANGES, SNR_RANGE

from .common import LABEL_NAMES, _plt


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


def snr_dependence(grid, window, snr_range=(SNR_RANGE.low, SNR_RANGE.high),
                   flux_range=(RANGES["flux"].low, RANGES["flux"].high)):
    """How the SNR depends on flux, noise, radius and Sérsic index.

    ``grid``: `galaxies.simulation.exploration.snr_grid` (SNR by radius and index at one flux and sigma);
    ``window``: `galaxies.simulation.exploration.flux_window` of it. Left: SNR against flux at the grid's median
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


def correlation_heatmap(table, title: str = "", cmap: str = "RdBu_r"):
    """A square table of correlations in [-1, 1] (e.g. `galaxies.simulation.exploration.derivative_correlation`)."""
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


def bounds_vs_snr(frame, widths: dict | None = None, snr_range=(SNR_RANGE.low, SNR_RANGE.high),
                  current=None):
    """Cramér–Rao bounds against SNR (``frame`` from `galaxies.interfaces.app_support.bounds_versus_snr`),
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
