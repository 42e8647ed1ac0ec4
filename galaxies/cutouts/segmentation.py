"""What is in a cutout besides the galaxy: the border's background and noise, the sources, the centre.

`border_stats` takes a border annulus (`border`) and returns its 3-sigma clipped median and
MAD standard deviation (`astropy.stats.sigma_clipped_stats`). `segment` smooths the image over
its noise by a Gaussian of ``SMOOTHING`` pixels, keeps what rises ``DETECT`` times the smoothed
noise, labels it (`scipy.ndimage.label`), takes the source under the centre as the galaxy and
the others peaking above ``SECOND`` levels as neighbours; a neighbour joined to the galaxy's
segment is split off where a second peak rises ``PROMINENCE`` levels above the saddle between
the two (`_deblend`). `galaxies.cutouts.measure` masks the neighbours, grown by ``GROW`` pixels,
and draws its model at the galaxy's `centre`.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["SMOOTHING", "DETECT", "SECOND", "GROW", "PROMINENCE", "border", "border_stats",
           "segment", "centre"]

SMOOTHING, DETECT, SECOND, GROW, PROMINENCE = 1.5, 3.0, 5.0, 2, 5.0


def border(shape, width: int | None = None) -> np.ndarray:
    """The pixels of a border annulus ``width`` wide (default a tenth of the short side, >= 3)."""
    ny, nx = shape
    width = width or max(3, min(ny, nx) // 10)
    out = np.ones(shape, dtype=bool)
    out[width:ny - width, width:nx - width] = False
    return out


def border_stats(image: np.ndarray, width: int | None = None) -> tuple[float, float]:
    """Background (clipped median) and noise sigma (clipped MAD std) of the `border`."""
    from astropy.stats import sigma_clipped_stats
    _, median, std = sigma_clipped_stats(image[border(image.shape, width)], sigma=3.0,
                                         stdfunc="mad_std")
    return float(median), float(std)


def segment(image: np.ndarray, noise) -> tuple[np.ndarray, int, list[int]]:
    """Labels of the sources of a background-free image (see the module docstring), the
    galaxy's label (0: none) and the labels of the other significant sources."""
    from scipy import ndimage
    # zeros beyond the edge (reflection would double the noise there and fake sources)
    significance = ndimage.gaussian_filter(image / noise, SMOOTHING, mode="constant")
    level = 1.0 / (2 * math.sqrt(math.pi) * SMOOTHING)  # std of smoothed unit white noise
    labels, count = ndimage.label(significance > DETECT * level)
    if count == 0:
        return labels, 0, []
    peaks = ndimage.maximum(significance, labels, np.arange(1, count + 1))
    cy, cx = (np.array(image.shape) - 1) // 2
    window = labels[max(cy - 1, 0):cy + 2, max(cx - 1, 0):cx + 2]
    central = [int(v) for v in np.unique(window) if v]
    main = max(central, key=lambda v: peaks[v - 1]) if central else int(np.argmax(peaks)) + 1
    others = [k for k in range(1, count + 1) if k != main and peaks[k - 1] > SECOND * level]
    split = _deblend(significance, labels, main, level)
    if split is not None:  # a neighbour joined to the galaxy: its side becomes its own source
        count += 1
        labels[split] = count
        others.append(count)
    return labels, main, others


def _deblend(significance, labels, main, level):
    """The pixels of the galaxy's segment nearer to a second peak than to the galaxy's own,
    when that peak rises ``PROMINENCE`` smoothed-noise levels above the lowest point on the
    straight line between the two (a saddle: two sources, not one); else None."""
    from scipy import ndimage
    inside = labels == main
    maxima = (significance == ndimage.maximum_filter(significance, size=5)) & inside
    ys, xs = np.nonzero(maxima)
    if len(ys) < 2:
        return None
    order = np.argsort(-significance[ys, xs])
    ys, xs = ys[order], xs[order]
    ny, nx = significance.shape
    # the galaxy's peak: the highest within a fifth of the side from the centre, else the highest
    near = np.hypot(ys - (ny - 1) / 2, xs - (nx - 1) / 2) < 0.2 * min(ny, nx)
    first = int(np.argmax(near)) if near.any() else 0
    for k in range(len(ys)):
        if k == first:
            continue
        line = np.linspace(0, 1, 64)
        path = ndimage.map_coordinates(significance, [ys[first] + line * (ys[k] - ys[first]),
                                                      xs[first] + line * (xs[k] - xs[first])], order=1)
        if significance[ys[k], xs[k]] - path.min() > PROMINENCE * level:
            yy, xx = np.mgrid[:ny, :nx]
            closer = (np.hypot(yy - ys[k], xx - xs[k]) < np.hypot(yy - ys[first], xx - xs[first]))
            return inside & closer
    return None


def centre(image, mask, pixel_scale, labels, main) -> tuple[float, float]:
    """Offset (x, y) pixels of the galaxy from the stamp's true centre: adaptive moments of the
    masked image, else the galaxy's segment's centre of light."""
    import galsim
    from scipy import ndimage
    masked = np.where(mask, 0.0, image)
    ny, nx = image.shape
    try:
        moments = galsim.hsm.FindAdaptiveMom(galsim.Image(masked, scale=pixel_scale), strict=False)
        if moments.moments_status == 0:
            c = moments.moments_centroid
            return float(c.x - (nx + 1) / 2), float(c.y - (ny + 1) / 2)
    except (galsim.GalSimError, RuntimeError, ValueError):
        pass
    if main:
        cy, cx = ndimage.center_of_mass(np.where(labels == main, np.maximum(masked, 0), 0))
        if np.isfinite(cx) and np.isfinite(cy):
            return float(cx - (nx - 1) / 2), float(cy - (ny - 1) / 2)
    return 0.0, 0.0
