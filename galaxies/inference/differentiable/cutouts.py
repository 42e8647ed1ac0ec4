"""The differentiable model on a person's cutout: its stamp, whether it draws GalSim's image
there, and the fit and refinement of one cutout (`galaxies.cutouts.measure`, ``--renderer jax``).

A cutout has its own pixel scale, shape, PSF (a PSF image's `galsim.InterpolatedImage`, pixel
included, or a Moffat) and centre (`galaxies.simulation.render.Stamp`); the JAX model takes all of them
(`cutout_model`). Its Sérsic tables reach ``k r = X_MAX``, beyond the unit profile's ``maxk``,
so a galaxy of any radius is drawn on GalSim's own grid. Before the JAX model stands in for
GalSim on a stamp, `unrepresented` draws the most compact galaxies of the fit's box (the
smallest radius, the smallest and largest index: the widest transforms, small FFTs) with both
and says why not when they differ by more than `TOLERANCE`; the caller then measures with
GalSim.
"""
from __future__ import annotations

import numpy as np

from .fit import FitResults, fit, refine, start_points
from .model import DifferentiableModel
from .sky import SKY_BOX, WithSky

__all__ = ["TOLERANCE", "cutout_model", "unrepresented", "fit_cutout"]

#: The largest relative L2 difference from GalSim's image, at the box's extremes, for which the
#: JAX model stands in for GalSim on a cutout.
TOLERANCE = 2e-3


def cutout_model(stamp) -> DifferentiableModel:
    """The JAX model drawing on ``stamp`` (a `galaxies.simulation.render.Stamp` whose ``psf`` is set)."""
    return DifferentiableModel(shape=stamp.shape, pixel_scale=stamp.pixel_scale, psf=stamp.psf,
                               pixel_included=stamp.pixel_included, offset=stamp.offset)


def unrepresented(model: DifferentiableModel, stamp, box: np.ndarray) -> str:
    """Why ``model`` cannot stand in for GalSim on ``stamp`` over ``box`` (rows n, r, g1, g2 of
    `galaxies.cutouts.measure.fit_box`), or ``""``: round galaxies of the box's smallest radius and its
    smallest and largest index, drawn by both, differ by more than `TOLERANCE` (relative L2)."""
    from ..likelihood import SersicModel

    compact = np.array([[1.0, n, box[1][0], 0.0, 0.0] for n in box[0]])
    galsim_model = SersicModel(None, stamp=stamp)
    for theta, image in zip(compact, model.images(compact)):
        reference = galsim_model.image(*theta[1:])
        miss = float(np.linalg.norm(image - reference) / np.linalg.norm(reference))
        if not miss <= TOLERANCE:
            return (f"the JAX model misses GalSim's image by {miss:.1e} (relative L2) at n = "
                    f"{theta[1]:g}, r = {theta[2]:g}\" on this stamp")
    return ""


def fit_cutout(model: DifferentiableModel, image, noise_map, box: np.ndarray, flux_range,
               gain=None, start=None, steps: int | None = None, sky: bool = False) -> FitResults:
    """The fit of one cutout (``start`` None: from adaptive moments, as the GalSim path), or
    ``steps`` Gauss–Newton steps from ``start`` (the refinement). ``box`` rows n, r, g1, g2,
    ``flux_range`` the flux's; ``noise_map`` per pixel (``inf`` masks); ``gain`` None: read
    noise only. ``sky``: a constant sky level is fitted too (`galaxies.inference.differentiable.sky`),
    the sixth column of the results, and the standard deviations are those with it
    marginalized; the sky starts at 0 (after `galaxies.inference.differentiable.fit.start_points`
    without a ``start``)."""
    full_box = np.vstack([np.asarray(flux_range, float)[None], np.asarray(box, float)]
                         + ([np.array([SKY_BOX])] if sky else []))
    images, noise = np.asarray(image, np.float64)[None], np.asarray(noise_map, np.float64)[None]
    if sky:
        if start is None:
            start = start_points(images, None, noise, model, gain, full_box[:5])[0]
        model, start = WithSky(model), np.append(np.asarray(start, float), 0.0)
    options = dict(model=model, gain=gain, box=full_box)
    if steps is not None:
        return refine(images, None, noise, np.asarray(start, float)[None], steps, **options)
    return fit(images, None, noise, start=None if start is None else
               np.asarray(start, float)[None], **options)
