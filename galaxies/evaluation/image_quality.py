"""Image quality against a reference: PSNR and SSIM (for the denoisers), per image."""
from __future__ import annotations

import numpy as np

from galaxies.runtime.errors import InputError

__all__ = ["psnr", "ssim", "quality"]


def _batch(images, name: str) -> np.ndarray:
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise InputError(f"{name} has shape {images.shape}, expected (N, height, width)")
    return images


def _pair(images, reference):
    images, reference = _batch(images, "images"), _batch(reference, "reference")
    if images.shape != reference.shape:
        raise InputError(f"images {images.shape} and reference {reference.shape} differ in shape")
    return images, reference


def _data_range(reference: np.ndarray, data_range) -> np.ndarray:
    if data_range is None:
        value = reference.max(axis=(1, 2)) - reference.min(axis=(1, 2))
    else:
        value = np.broadcast_to(np.asarray(data_range, dtype=np.float64), (len(reference),))
    if np.any(~(value > 0)):
        raise InputError("data_range must be positive; a constant reference image needs an "
                         "explicit data_range")
    return value


def psnr(images, reference, data_range=None) -> np.ndarray:
    """Peak signal-to-noise ratio of each image against its reference, in dB.

    ``10 log10(L**2 / MSE)``, where MSE is the mean squared pixel difference and ``L`` is
    ``data_range`` (a number or one per image) or, by default, the reference image's own range
    ``max - min`` (for a galaxy on a zero sky: its peak). Identical images give ``inf``.
    Inputs are (N, H, W) or (H, W) arrays in the same units; returns (N,).
    """
    images, reference = _pair(images, reference)
    top = _data_range(reference, data_range)
    mse = np.mean((images - reference) ** 2, axis=(1, 2))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(top ** 2 / mse)


def ssim(images, reference, data_range=None, sigma: float = 1.5, k1: float = 0.01,
         k2: float = 0.03) -> np.ndarray:
    """Structural similarity (Wang et al. 2004) of each image against its reference.

    The mean over pixels of ``(2 mu_x mu_y + C1)(2 cov_xy + C2) / ((mu_x^2 + mu_y^2 + C1)
    (var_x + var_y + C2))``, with local statistics under a Gaussian window of standard
    deviation ``sigma`` pixels (truncated at 3.5 sigma, image edges reflected),
    ``C1 = (k1 L)^2`` and ``C2 = (k2 L)^2``, ``L`` as in `psnr`. Pixels closer to the edge than
    the window's radius are left out of the mean. These are the settings of Wang et al. and of
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``. 1 for identical images; returns (N,).
    """
    from scipy.ndimage import gaussian_filter

    images, reference = _pair(images, reference)
    top = _data_range(reference, data_range)[:, None, None]
    truncate = 3.5
    radius = int(truncate * sigma + 0.5)

    def local_mean(a):
        return gaussian_filter(a, sigma=(0, sigma, sigma), truncate=truncate, mode="reflect")

    mu_x, mu_y = local_mean(images), local_mean(reference)
    var_x = local_mean(images * images) - mu_x ** 2
    var_y = local_mean(reference * reference) - mu_y ** 2
    cov = local_mean(images * reference) - mu_x * mu_y
    c1, c2 = (k1 * top) ** 2, (k2 * top) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)
             / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2)))
    if min(index.shape[1:]) <= 2 * radius:
        raise InputError(f"images of {index.shape[1:]} pixels are too small for a window of "
                         f"radius {radius}")
    return index[:, radius:-radius, radius:-radius].mean(axis=(1, 2))


def quality(noisy, denoised, noiseless) -> "pd.DataFrame":
    """PSNR, SSIM and RMSE of the noisy and of the denoised images against the noiseless ones.

    One row each (``noisy``, ``denoised``): the mean PSNR [dB] and SSIM over images, the median
    PSNR, and the RMSE in photo-electrons (over all pixels). Images are (N, H, W) arrays in
    photo-electrons; the noiseless image's range sets the PSNR and SSIM scale of each galaxy.
    """
    import pandas as pd

    rows = {}
    for name, images in (("noisy", noisy), ("denoised", denoised)):
        p = psnr(images, noiseless)
        rows[name] = {"psnr": float(np.mean(p)), "psnr_median": float(np.median(p)),
                      "ssim": float(np.mean(ssim(images, noiseless))),
                      "rmse": float(np.sqrt(np.mean((_batch(images, name) - _batch(noiseless, "noiseless")) ** 2)))}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "images"
    return table
