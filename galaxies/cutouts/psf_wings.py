"""Whether a PSF image is large enough for its wings: the light it leaves out, estimated.

A PSF image is normalized to its own sum, so the light its stamp cuts off goes unseen: a
Moffat of beta = 2 (the simulations' PSF) falls as r^-4 and keeps several per cent of its light
beyond a few arcsec, and a fit that convolves with the cut image then puts that share too little
into the galaxy's flux, without a word. `missing_light` extrapolates the image's outer radial
profile as a power law, ``I(r) = A r^-p`` fitted over the outer annuli of the largest circle the
image holds, and returns the share of the total light that lies outside the image; `check_wings`
gives the one-line warning `galaxies measure` prints when that share passes `WARN_FRACTION`.
"""
from __future__ import annotations

import warnings

import numpy as np

from galaxies.runtime.errors import InputError

__all__ = ["WARN_FRACTION", "missing_light", "check_wings", "TruncatedPSFWarning"]

#: the share of a PSF's light outside its image above which `check_wings` warns
WARN_FRACTION = 0.01


class TruncatedPSFWarning(UserWarning):
    """A PSF image too small for its wings: the flux of anything convolved with it is low."""


def missing_light(image, inner: float = 0.5) -> float:
    """The share of the PSF's total light outside ``image`` (2-D, centred, background 0),
    from a power law fitted to the azimuthal mean between ``inner`` and 1 of the inscribed
    circle's radius; ``inf`` when the wings fall as r^-2 or slower (their light would not
    converge: the image cannot say how much is missing)."""
    image = np.asarray(image, float)
    if image.ndim != 2 or min(image.shape) < 9 or not np.isfinite(image).all():
        raise InputError(f"a PSF image must be a finite 2-D array of at least 9 x 9 pixels, "
                         f"not shape {image.shape}")
    ny, nx = image.shape
    peak = np.unravel_index(np.argmax(image), image.shape)
    y, x = np.indices(image.shape)
    r = np.hypot(y - peak[0], x - peak[1])
    edge = min(peak[0], peak[1], ny - 1 - peak[0], nx - 1 - peak[1]) + 0.5
    edges = np.linspace(inner * edge, edge, 9)
    radius, level = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        ring = (r >= lo) & (r < hi)
        if ring.any():
            radius.append(r[ring].mean())
            level.append(image[ring].mean())
    radius, level = np.array(radius), np.array(level)
    if len(level) < 3 or (level <= 0).any():
        return float("nan")
    slope, icept = np.polyfit(np.log(radius), np.log(level), 1)
    p = -slope
    if p <= 2.0:
        return float("inf")
    tail = 2 * np.pi * np.exp(icept) * edge ** (2 - p) / (p - 2)
    inside_circle = image[r < edge].sum()
    total = inside_circle + tail
    return float(max(total - image.sum(), 0.0) / total)


def check_wings(image, where: str, limit: float = WARN_FRACTION, stream=None) -> float:
    """`missing_light` of ``image``; when it passes ``limit``, a one-line warning naming
    ``where``: printed to ``stream`` (``galaxies: warning: ...``, as the command line shows it)
    or, without one, a `TruncatedPSFWarning`."""
    share = missing_light(image)
    if share > limit:  # NaN (wings not measurable) passes silently, inf warns
        message = (f"{where}: the PSF image ({image.shape[0]} x {image.shape[1]} pixels) leaves "
                   f"out about {100 * share:.1f}% of its light in wings beyond its edge; fluxes "
                   f"come out low by as much (give a larger PSF image)")
        if stream is not None:
            print(f"galaxies: warning: {message}", file=stream)
        else:
            warnings.warn(message, TruncatedPSFWarning, stacklevel=2)
    return share
