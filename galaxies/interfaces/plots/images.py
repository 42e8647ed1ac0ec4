"""Images: display stretches, grids of stamps, colour images for the app."""
from __future__ import annotations

import functools

import numpy as np

from galaxies.runtime.errors import InputError

from .common import _plt


def stretch(image: np.ndarray, mode: str = "linear") -> np.ndarray:
    """Display values of an image: ``linear`` or ``log`` (asinh-like, keeps negatives)."""
    if mode == "linear":
        return image
    if mode == "log":
        scale = max(float(np.std(image)), 1e-12)
        return np.arcsinh(image / scale)
    raise InputError(f"stretch = {mode!r}; choose 'linear' or 'log'")


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
