"""Figures shared by the notebooks, the report and the app.

Every function draws on a new or given matplotlib figure and returns it, so notebooks show it
and scripts can save it. Nothing here computes results; it only shows them.
"""
from __future__ import annotations

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


def label_histograms(dataset, bins: int = 40, extra=("snr", "sigma", "psf_fwhm")):
    """Histograms of the five labels and of SNR, sigma and PSF FWHM of a data set."""
    plt = _plt()
    frame = dataset.labels_frame()
    columns = list(LABEL_COLUMNS) + [c for c in extra if frame[c].nunique() > 1]
    fig, axes = plt.subplots(1, len(columns), figsize=(2.6 * len(columns), 2.4))
    for ax, column in zip(np.atleast_1d(axes), columns):
        ax.hist(frame[column], bins=bins, color="tab:blue", alpha=0.8)
        ax.set_xlabel(LABEL_NAMES.get(column, column), fontsize=8)
    fig.suptitle(f"{dataset.name}: {len(dataset)} galaxies", fontsize=10)
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
