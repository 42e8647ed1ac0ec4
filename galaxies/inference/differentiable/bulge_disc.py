"""A bulge plus a disc on the differentiable model: the second model of the fit.

About a third of real galaxies are better described by a de Vaucouleurs bulge (n = 4) inside an
exponential disc (n = 1) than by one Sérsic profile (the COSMOS catalog's parametric fits,
`galaxies.simulation.cosmos`), and a single Sérsic fitted to such a galaxy misreads its flux and
half-light radius by a few percent. `BulgeDisc` draws the sum of the two components with the
JAX model, both sheared by the same ``(g1, g2)``, from six parameters (`PARAMETERS`):

    total flux F, bulge fraction f, disc half-light radius r_d, bulge-to-disc radius ratio
    rho = r_b / r_d, g1, g2

that is the bulge ``(F f, 4, rho r_d, g1, g2)`` plus the disc ``(F (1 - f), 1, r_d, g1, g2)``.
Its Jacobian follows from the two components' by the chain rule, so the batched
Levenberg–Marquardt fit (`galaxies.inference.differentiable.fit`) runs on it unchanged. The
ratio is held at most 1 (`RATIO`): the bulge lies inside its disc. Without that bound, at the
noise of the simulations, about a fifth of the fits turn the "bulge" into a faint envelope
larger than the disc whose n = 4 wings take up noise and inflate the flux.

A common shear is itself a model: a real bulge is rounder than its disc. The galaxy's
half-light radius, the quantity compared with a single Sérsic's ``r``, is the composite's
(`half_light_radius`, the same definition as the `cosmos` set's truth), and `fit_bulge_disc`
starts from a single-Sérsic fit and keeps the better of a few bulge fractions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import DifferentiableModel, Plan

__all__ = ["PARAMETERS", "BULGE_N", "DISC_N", "RADII", "BulgeDisc", "box", "half_light_radius",
           "starts", "fit_bulge_disc"]

PARAMETERS = ("flux", "bulge_fraction", "disc_r", "bulge_ratio", "g1", "g2")
#: The components' Sérsic indices: de Vaucouleurs and exponential.
BULGE_N, DISC_N = 4.0, 1.0
#: The bulge fraction's bounds: away from 0 and 1, where a component's radius has no effect on
#: the image and the Fisher matrix is singular.
FRACTION = (0.01, 0.99)
#: Bulge fractions tried from each single-Sérsic start; the best by likelihood is kept.
START_FRACTIONS = (0.2, 0.5, 0.8)
#: The bulge-to-disc radius ratio's bounds.
RATIO = (0.05, 1.0)
#: The disc's half-light radii (arcsec) of the default box: far wider than the training box.
RADII = (0.02, 3.0)


@dataclass
class PairPlan:
    """The grids of the bulges and of the discs of a batch."""

    bulge: Plan
    disc: Plan

    def subset(self, rows) -> "PairPlan":
        return PairPlan(self.bulge.subset(rows), self.disc.subset(rows))


def components(theta) -> tuple[np.ndarray, np.ndarray]:
    """The bulges' and the discs' labels (B, 5) of parameters ``theta`` (B, 6)."""
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    flux, fraction, disc_r, ratio = theta[:, 0], theta[:, 1], theta[:, 2], theta[:, 3]
    shear = theta[:, 4:6]
    bulge = np.column_stack([flux * fraction, np.full(len(theta), BULGE_N), ratio * disc_r,
                             shear])
    disc = np.column_stack([flux * (1 - fraction), np.full(len(theta), DISC_N), disc_r, shear])
    return bulge, disc


class BulgeDisc:
    """The galaxy ``model`` as a bulge plus a disc: parameters (B, 6) in `PARAMETERS` order.
    Attributes other than the drawing methods are the galaxy model's."""

    def __init__(self, model: DifferentiableModel):
        self.model = model

    def __getattr__(self, name):  # shape, pixel_scale, psf, pixel, ...: the galaxy model's
        return getattr(self.__dict__["model"], name)

    def plan(self, theta, psf_fwhm=None) -> PairPlan:
        bulge, disc = components(theta)
        return PairPlan(self.model.plan(bulge, psf_fwhm), self.model.plan(disc, psf_fwhm))

    def images(self, theta, psf_fwhm=None, plan: PairPlan | None = None) -> np.ndarray:
        """Images (B, ny, nx): the bulges plus the discs."""
        bulge, disc = components(theta)
        plan = plan or self.plan(theta, psf_fwhm)
        return (self.model.images(bulge, psf_fwhm, plan.bulge)
                + self.model.images(disc, psf_fwhm, plan.disc))

    def images_and_jacobians(self, theta, psf_fwhm=None, plan: PairPlan | None = None):
        """Images (B, ny, nx) and derivatives (B, 6, ny, nx) in `PARAMETERS` order."""
        theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        bulge, disc = components(theta)
        plan = plan or self.plan(theta, psf_fwhm)
        mu_b, jac_b = self.model.images_and_jacobians(bulge, psf_fwhm, plan.bulge)
        mu_d, jac_d = self.model.images_and_jacobians(disc, psf_fwhm, plan.disc)
        flux, fraction, disc_r, ratio = (theta[:, k, None, None] for k in range(4))
        jac = np.empty((len(theta), 6) + mu_b.shape[1:])
        jac[:, 0] = fraction * jac_b[:, 0] + (1 - fraction) * jac_d[:, 0]  # unit images
        jac[:, 1] = flux * (jac_b[:, 0] - jac_d[:, 0])
        jac[:, 2] = ratio * jac_b[:, 2] + jac_d[:, 2]
        jac[:, 3] = disc_r * jac_b[:, 2]
        jac[:, 4:6] = jac_b[:, 3:5] + jac_d[:, 3:5]
        return mu_b + mu_d, jac


def box(flux_range, radius_range, shear_high: float) -> np.ndarray:
    """The fit's bounds (6, 2): the flux's, `FRACTION`, the disc's radius in ``radius_range``,
    `RATIO`, and the shear's components in ``[-shear_high, shear_high]``."""
    return np.array([flux_range, FRACTION, radius_range, RATIO,
                     (-shear_high, shear_high), (-shear_high, shear_high)], dtype=np.float64)


def half_light_radius(theta) -> np.ndarray:
    """The composite half-light radius (B,) of round bulges and discs of parameters ``theta``
    (B, 6), arcsec: the radius enclosing half the light (`galaxies.simulation.cosmos`'s
    definition, by bisection on the Sérsic components' enclosed light)."""
    from galaxies.simulation.cosmos import half_light_radius as composite
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    return np.array([composite(((BULGE_N, rho * rd, f, 1.0, 0.0), (DISC_N, rd, 1.0 - f, 1.0, 0.0)))
                     for _, f, rd, rho, _, _ in theta])


def starts(sersic) -> np.ndarray:
    """Starting points (B * len(START_FRACTIONS), 6) from single-Sérsic estimates ``sersic``
    (B, 5): the same flux and shear, each bulge fraction of `START_FRACTIONS`, a disc 1.3 times
    the Sérsic's radius and a bulge 0.4 times the disc's; row ``b * k + j`` is galaxy b's j-th."""
    sersic = np.atleast_2d(np.asarray(sersic, dtype=np.float64))
    out = [[s[0], f, 1.3 * s[2], 0.4, s[3], s[4]] for s in sersic for f in START_FRACTIONS]
    return np.array(out)


def fit_bulge_disc(images, psf_fwhm, sigma, sersic, model: DifferentiableModel | None = None,
                   bounds: np.ndarray | None = None, gain: float | None = 1.0):
    """The bulge-plus-disc fit of a batch from its single-Sérsic estimates ``sersic`` (B, 5):
    `galaxies.inference.differentiable.fit.fit` on `BulgeDisc` from each of `starts`, the lowest
    NLL kept per galaxy. Returns ``(params (B, 6), nll (B,), std (B, 6), converged (B,))``.
    ``bounds`` default: the generator's shears, disc radii `RADII`, fluxes from a tenth of the
    generator's least to three times its most."""
    from galaxies.conventions import RANGES

    from .fit import fit
    images = np.asarray(images, dtype=np.float64)
    rows, k = len(images), len(START_FRACTIONS)
    bounds = box((RANGES["flux"].low / 10, RANGES["flux"].high * 3), RADII,
                 RANGES["shear"].high) if bounds is None else bounds
    sigma = np.asarray(sigma, dtype=np.float64)
    repeat = (lambda a: np.repeat(a, k, axis=0)) if sigma.ndim else (lambda a: a)
    model = BulgeDisc(model or DifferentiableModel())
    start = np.clip(starts(sersic), bounds[:, 0], bounds[:, 1])
    psf = None if psf_fwhm is None else np.repeat(np.asarray(psf_fwhm, dtype=np.float64), k)
    result = fit(np.repeat(images, k, axis=0), psf, repeat(sigma), start=start, model=model,
                 gain=gain, box=bounds)
    best = np.argmin(result.nll.reshape(rows, k), axis=1) + k * np.arange(rows)
    return result.params[best], result.nll[best], result.std[best], result.converged[best]
