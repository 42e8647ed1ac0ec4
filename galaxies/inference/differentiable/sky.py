"""A constant sky fitted with the galaxy: the differentiable model with a sixth parameter.

A person's cutout has a background that must come off before the galaxy is measured. Estimated
from the stamp's border, it carries the galaxy's wings on a small stamp, and its error is then
degenerate with the flux, the index and the radius: a sky level too high by ``b`` takes
``b x (pixels)`` from the flux and steepens the profile. GALFIT's answer is to fit a constant sky
together with the galaxy, and so does `WithSky`: the image model is ``mu(theta) + b``, linear in
``b`` with ``d mu / d b = 1`` on every pixel. The Fisher matrix gains that row and column, and
the bound on the five labels is then the one with the sky marginalized (`sky_column`), which is
the honest bound of any estimator that does not know the sky.

`WithSky` has the interface of `galaxies.inference.differentiable.model.DifferentiableModel`
(``plan``, ``images``, ``images_and_jacobians`` on rows of six parameters), so the batched
Levenberg–Marquardt fit of `galaxies.inference.differentiable.fit` runs on it unchanged.
"""
from __future__ import annotations

import numpy as np

from .model import DifferentiableModel, Plan

__all__ = ["SKY_BOX", "WithSky", "sky_column"]

#: The sky level's bounds in the fit (counts a pixel, after the border's estimate came off):
#: unbounded; the data decide.
SKY_BOX = (-np.inf, np.inf)


def sky_column(jac: np.ndarray) -> np.ndarray:
    """Derivatives ``jac`` (..., 5, ny, nx) of the galaxy's labels with the sky's, ones, as a
    sixth row: the Jacobian of ``mu + b``."""
    ones = np.ones(jac.shape[:-3] + (1,) + jac.shape[-2:], dtype=jac.dtype)
    return np.concatenate([jac, ones], axis=-3)


class WithSky:
    """The galaxy ``model`` plus a constant sky: parameters (B, 6), the labels then the sky level
    a pixel. Attributes other than the drawing methods are the galaxy model's."""

    def __init__(self, model: DifferentiableModel):
        self.model = model

    def __getattr__(self, name):  # shape, pixel_scale, psf, pixel, ...: the galaxy model's
        return getattr(self.__dict__["model"], name)

    def plan(self, theta, psf_fwhm=None) -> Plan:
        """The galaxy model's grids for the labels of ``theta`` (B, 6)."""
        return self.model.plan(np.atleast_2d(theta)[:, :5], psf_fwhm)

    def images(self, theta, psf_fwhm=None, plan: Plan | None = None) -> np.ndarray:
        """Images (B, ny, nx) of galaxies plus their sky levels."""
        theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        return self.model.images(theta[:, :5], psf_fwhm, plan) + theta[:, 5, None, None]

    def images_and_jacobians(self, theta, psf_fwhm=None, plan: Plan | None = None):
        """Images (B, ny, nx) and derivatives (B, 6, ny, nx), the sky's last."""
        theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        mu, jac = self.model.images_and_jacobians(theta[:, :5], psf_fwhm, plan)
        return mu + theta[:, 5, None, None], sky_column(jac)
