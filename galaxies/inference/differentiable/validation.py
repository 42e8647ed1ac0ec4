"""The differentiable model against GalSim: the same galaxies drawn by both.

`validation_draw` spreads galaxies over the whole prior (every n, r, |g|, PSF FWHM), with the
corners of the box included on purpose (the smallest and largest index and radius, the
largest shear, the narrowest and widest PSF: where the wrap-around of the wings, the aliasing
and the steepest profiles are). `relative_l2` draws each with GalSim (`galaxies.simulation.render`,
exactly as the data sets are drawn) and with `DifferentiableModel`, and returns
``||mu_jax - mu_galsim|| / ||mu_galsim||`` per galaxy. The test suite and
``benchmarks/differentiable.py`` both use it.
"""
from __future__ import annotations

import itertools

import numpy as np

from galaxies.conventions import RANGES, shear_components
from galaxies.simulation.render import GalaxyRenderer

from .model import DifferentiableModel

__all__ = ["validation_draw", "relative_l2"]


def validation_draw(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` galaxies (label order, (count, 5)) and PSF FWHMs (count,): the 2^5 corners
    of (n, r, |g|, PSF, flux) first, each at a random orientation, then uniform draws."""
    rng = np.random.default_rng(seed)
    names = ("sersic_n", "sersic_r", "shear", "psf_fwhm", "flux")
    corners = np.array(list(itertools.product(*[(RANGES[k].low, RANGES[k].high) for k in names])))
    uniform = np.column_stack([rng.uniform(RANGES[k].low, RANGES[k].high, max(count, 1))
                               for k in names])
    values = np.concatenate([corners, uniform])[:count]
    beta = rng.uniform(0, np.pi, len(values))
    g1, g2 = shear_components(values[:, 2], beta)
    theta = np.column_stack([values[:, 4], values[:, 0], values[:, 1], g1, g2])
    return theta, values[:, 3]


def relative_l2(theta, psf_fwhm, model: DifferentiableModel | None = None) -> np.ndarray:
    """``||jax - galsim|| / ||galsim||`` of each galaxy's noiseless image."""
    model = model or DifferentiableModel()
    renderer = GalaxyRenderer()
    ours = model.images(theta, psf_fwhm)
    out = np.empty(len(theta))
    for i, (row, fwhm) in enumerate(zip(theta, psf_fwhm)):
        reference = renderer.draw(*row, fwhm).astype(np.float64)
        out[i] = np.linalg.norm(ours[i] - reference) / np.linalg.norm(reference)
    return out
