"""The Cramér–Rao bound (CRB) on the five parameters of one galaxy image.

The bound is the smallest standard deviation an unbiased estimator of ``flux, sersic_n,
sersic_r, g1, g2`` can reach from one noisy image; every estimator of the project is judged
against it (`galaxies.evaluation.evaluate`).

Noise model and likelihood
--------------------------
The generator (`galaxies.simulation.render.add_noise`) draws each pixel as ``Poisson(mu) + N(0, sigma^2)``
around the noiseless GalSim image ``mu(theta)`` (photo-electrons, sky level 0). We approximate
that by a Gaussian of the same mean and variance,

    d_p ~ N(mu_p, V_p),   V_p = sigma^2 + max(mu_p, 0),

which is excellent here: the read noise (sigma >= 200, so sigma^2 >= 4e4) dominates all but the
central pixels of the brightest galaxies, and where the Poisson part matters its counts are large
(thousands to a few 1e4), so it is itself close to Gaussian (skewness 1/sqrt(mu) < 0.02, further
diluted by the read noise). For a Gaussian whose mean *and* variance depend
on the parameters, the Fisher information is

    F_ij = sum_p [ d_i mu_p d_j mu_p / V_p  +  d_i V_p d_j V_p / (2 V_p^2) ],

and since ``d V_p = d mu_p`` here, ``F_ij = sum_p d_i mu_p d_j mu_p (1/V_p + 1/(2 V_p^2))``.
The second term, the information carried by the variance, is at most ``1 / (2 sigma^2)``
(about 1e-5) relative to the first; it is kept because it costs nothing. With ``poisson=False``
the variance is ``sigma^2`` alone (pure Gaussian read noise), for which the flux information
has the closed form ``SNR^2 / flux^2`` (``SNR = ||mu|| / sigma``), one of the checks in the tests.

Derivatives
-----------
``mu`` is linear in the flux, so ``d mu / d flux = mu / flux`` exactly. The other four are
central differences of GalSim renders, ``(mu(theta + h) - mu(theta - h)) / 2h``, with steps
`STEPS` (``sersic_n`` 0.01, ``sersic_r`` 1e-3 arcsec, ``g1`` and ``g2`` 1e-3). Their truncation
error is O(h^2) and, at these steps, below GalSim's own rendering accuracy (~1e-5 relative):
the bounds agree to 0.1% for steps from a third to three times these (tests/inference/test_crb.py checks
that). Images are drawn in double precision so the differences do not lose digits to float32.

The bound is ``sqrt(diag(F^-1))``, in label units (photo-electrons, -, arcsec, -, -).
Reference (the original study's report, flux 1e5, n 3, r 0.3, g (-0.069, 0.15), PSF 0.5, sigma 200):
5600, 0.78, 0.028, 0.054, 0.054, and twice those at sigma 400.
"""
from __future__ import annotations

import functools

import numpy as np

from galaxies.conventions import (GALSIM_SERSIC_N, IMAGE_SIZE, LABEL_COLUMNS, PIXEL_SCALE,
                                  check_parameters)
from galaxies.runtime.errors import InputError
from galaxies.simulation.render import GalaxyRenderer, default_renderer

__all__ = ["STEPS", "jacobian", "fisher_from_jacobian", "fisher_matrix", "cramer_rao_bound",
           "crb_vs_snr", "flux_checks", "cutout_bound"]

#: Central-difference steps, in label units (flux is differentiated analytically).
STEPS: dict[str, float] = {"sersic_n": 1e-2, "sersic_r": 1e-3, "g1": 1e-3, "g2": 1e-3}



def _draw(renderer: GalaxyRenderer, flux, sersic_n, sersic_r, g1, g2, psf_fwhm,
          stamp=None) -> np.ndarray:
    """Noiseless image in double precision (same profile as `GalaxyRenderer.draw`), on the
    simulation's stamp or on ``stamp`` (`galaxies.simulation.render.Stamp`, its PSF if it has one)."""
    import galsim

    psf = renderer.psf(psf_fwhm) if stamp is None or stamp.psf is None else stamp.psf
    profile = galsim.Convolve(renderer.galaxy(flux, sersic_n, sersic_r, g1, g2), psf)
    if stamp is not None and not stamp.is_default:
        return stamp.draw(profile)
    image = galsim.ImageD(IMAGE_SIZE, IMAGE_SIZE, scale=PIXEL_SCALE)
    profile.drawImage(image=image)
    return image.array


def _check_steps(steps: dict | None) -> dict[str, float]:
    merged = dict(STEPS)
    for name, value in (steps or {}).items():
        if name not in STEPS:
            raise InputError(f"step for {name!r}: choose among {', '.join(STEPS)}")
        if not (np.isfinite(value) and 0 < value <= 0.1):
            raise InputError(f"step for {name} = {value:g} must be in (0, 0.1]")
        merged[name] = float(value)
    return merged


def jacobian(flux, sersic_n, sersic_r, g1, g2, psf_fwhm=0.5, renderer: GalaxyRenderer | None = None,
             steps: dict | None = None, stamp=None) -> tuple[np.ndarray, np.ndarray]:
    """The noiseless image ``mu`` (64, 64) and its derivatives ``d mu / d theta`` (5, 64, 64).

    Derivatives follow the label order ``flux, sersic_n, sersic_r, g1, g2``, in photo-electrons
    per label unit; ``steps`` overrides entries of `STEPS`; ``stamp`` (`galaxies.simulation.render.Stamp`)
    draws on a cutout's own pixels and PSF instead. No range checks (callers check).
    """
    renderer = renderer or default_renderer()
    steps = _check_steps(steps)
    theta = np.array([flux, sersic_n, sersic_r, g1, g2], dtype=np.float64)
    mu = _draw(renderer, *theta, psf_fwhm, stamp)
    jac = np.empty((5,) + mu.shape)
    jac[0] = mu / theta[0]
    for j, name in enumerate(LABEL_COLUMNS[1:], start=1):
        h = steps[name]
        if name == "sersic_n":  # stay inside GalSim's range, shrinking the step at its edges
            h = min(h, theta[1] - GALSIM_SERSIC_N[0], GALSIM_SERSIC_N[1] - theta[1])
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        jac[j] = (_draw(renderer, *up, psf_fwhm, stamp)
                  - _draw(renderer, *down, psf_fwhm, stamp)) / (2 * h)
    return mu, jac


def fisher_from_jacobian(mu: np.ndarray, jac: np.ndarray, sigma, poisson: bool = True,
                         gain: float = 1.0) -> np.ndarray:
    """Fisher matrix (k, k) from the image ``mu`` and its derivatives ``jac`` (k, ...).

    ``poisson``: pixel variance ``sigma^2 + max(mu, 0) / gain`` (the generator's noise, gain 1,
    see the module docstring) rather than ``sigma^2``. ``sigma`` may be a map of ``mu``'s shape
    (``inf`` for a masked pixel).
    """
    if gain != 1.0 and poisson:  # counts of ``gain`` photo-electrons: d V / d mu = 1 / gain
        variance = sigma**2 + np.maximum(mu, 0.0) / gain
        weight = 1.0 / variance + 0.5 / (gain * variance) ** 2
    else:
        variance = sigma**2 + (np.maximum(mu, 0.0) if poisson else np.zeros_like(mu))
        weight = 1.0 / variance + (0.5 / variance**2 if poisson else 0.0)
    flat = jac.reshape(len(jac), -1)
    return (flat * weight.reshape(1, -1)) @ flat.T


@functools.lru_cache(maxsize=64)
def _cached_jacobian(flux, sersic_n, sersic_r, g1, g2, psf_fwhm, steps_key):
    mu, jac = jacobian(flux, sersic_n, sersic_r, g1, g2, psf_fwhm, steps=dict(steps_key))
    mu.flags.writeable = False
    jac.flags.writeable = False
    return mu, jac


def _jacobian_for(flux, sersic_n, sersic_r, g1, g2, psf_fwhm, renderer, steps):
    # The app calls the bound at every slider move, often with only sigma changed: the
    # derivatives (the costly part, ~0.1-0.3 s) are kept for the last parameter sets.
    if renderer is None:
        key = tuple(sorted(_check_steps(steps).items()))
        return _cached_jacobian(float(flux), float(sersic_n), float(sersic_r), float(g1),
                                float(g2), float(psf_fwhm), key)
    return jacobian(flux, sersic_n, sersic_r, g1, g2, psf_fwhm, renderer=renderer, steps=steps)


def fisher_matrix(flux, sersic_n, sersic_r, g1, g2, psf_fwhm, sigma,
                  renderer: GalaxyRenderer | None = None, steps: dict | None = None,
                  poisson: bool = True) -> np.ndarray:
    """Fisher information matrix (5, 5) of one image, in label order
    ``flux, sersic_n, sersic_r, g1, g2`` (units: 1 / (label unit)^2).

    Parameters
    ----------
    flux
        total flux, photo-electrons.
    sersic_n
        Sérsic index.
    sersic_r
        half-light radius, arcsec.
    g1, g2
        reduced shear.
    psf_fwhm
        Moffat (beta = 2) FWHM, arcsec.
    sigma
        Gaussian read noise, photo-electrons per pixel.
    renderer
        a `GalaxyRenderer` to draw with (default: the process-wide one, and the derivatives of
        recent parameter sets are reused).
    steps
        central-difference steps overriding `STEPS`.
    poisson
        include the Poisson variance (the generator's noise); False: read noise only.

    Raises `ParameterRangeError` when a parameter is outside the simulated ranges.
    """
    check_parameters(flux, sersic_n, sersic_r, g1, g2, psf_fwhm, sigma)
    mu, jac = _jacobian_for(flux, sersic_n, sersic_r, g1, g2, psf_fwhm, renderer, steps)
    return fisher_from_jacobian(mu, jac, float(sigma), poisson=poisson)


def _bound(fisher: np.ndarray) -> np.ndarray:
    # Scale to unit diagonal before inverting: flux (1e5) and shear (1e-1) differ by 1e6.
    scale = 1.0 / np.sqrt(np.diag(fisher))
    inverse = np.linalg.inv(fisher * np.outer(scale, scale)) * np.outer(scale, scale)
    return np.sqrt(np.diag(inverse))


def cramer_rao_bound(flux, sersic_n, sersic_r, g1, g2, psf_fwhm=0.5, sigma=200.0,
                     renderer: GalaxyRenderer | None = None, steps: dict | None = None,
                     poisson: bool = True) -> np.ndarray:
    """Cramér–Rao bounds: the smallest standard deviations of unbiased estimates of
    ``flux, sersic_n, sersic_r, g1, g2`` from one image.

    Parameters
    ----------
    flux, sersic_n, sersic_r, g1, g2 : float
        The galaxy (photo-electrons, -, arcsec, -, -).
    psf_fwhm : float
        The Moffat PSF's FWHM, arcsec.
    sigma : float
        The read noise, photo-electrons per pixel; the Poisson noise of the galaxy is added
        unless ``poisson`` is False.
    renderer, steps
        As in `fisher_matrix`.

    Returns
    -------
    ndarray
        Five bounds, in label units. A new galaxy costs three new Sérsic tables and six
        renders; when only ``sigma`` changed, almost nothing.

    Examples
    --------
    The original study's galaxy at SNR 60:

    >>> bound = cramer_rao_bound(1e5, 3.0, 0.3, -0.069, 0.15, psf_fwhm=0.5, sigma=200.0)
    >>> [float(f"{b:.2g}") for b in bound]
    [5600.0, 0.78, 0.029, 0.054, 0.055]
    """
    return _bound(fisher_matrix(flux, sersic_n, sersic_r, g1, g2, psf_fwhm, sigma,
                                renderer=renderer, steps=steps, poisson=poisson))


def crb_vs_snr(flux, sersic_n, sersic_r, g1, g2, psf_fwhm=0.5, snr=None):
    """The bound as the noise changes: a pandas DataFrame with columns ``snr``, ``sigma`` and
    the five label columns (bounds in label units), one row per SNR.

    The galaxy is fixed and the read noise ``sigma = ||mu|| / snr`` varies, as between the
    snr60 and snr30 test sets; ``sigma`` may leave the simulated range [200, 400] here (the
    bound is defined for any noise). ``snr`` defaults to 40 values from 10 to 100.
    """
    import pandas as pd

    check_parameters(flux, sersic_n, sersic_r, g1, g2, psf_fwhm)
    snr = np.linspace(10, 100, 40) if snr is None else np.atleast_1d(np.asarray(snr, dtype=float))
    if np.any(~np.isfinite(snr) | (snr <= 0)):
        raise InputError(f"snr = {snr} must be positive")
    mu, jac = _jacobian_for(flux, sersic_n, sersic_r, g1, g2, psf_fwhm, None, None)
    norm = float(np.sqrt(np.sum(mu**2)))
    rows = []
    for s in snr:
        sigma = norm / s
        rows.append([s, sigma, *_bound(fisher_from_jacobian(mu, jac, sigma))])
    return pd.DataFrame(rows, columns=["snr", "sigma", *LABEL_COLUMNS])


def flux_checks(flux, sersic_n, sersic_r, g1, g2, psf_fwhm=0.5, sigma=200.0,
                realizations: int = 2000, seed: int = 1):
    """Independent checks of the bound on the flux, as a pandas Series (photo-electrons).

    * ``closed form, read noise only``: ``flux / SNR``, the exact bound when the shape is
      known and the noise is Gaussian with variance sigma^2;
    * ``Fisher, read noise only`` and ``Fisher, shape known``: ``1 / sqrt(F_flux,flux)`` from
      `fisher_matrix` without and with the Poisson variance;
    * ``Monte Carlo, shape known``: the spread of the weighted least-squares flux (shape known,
      weights ``1 / (sigma^2 + mu)``, an efficient estimator) over ``realizations`` images with
      the generator's noise (seeded by ``seed``);
    * ``CRB, all five free``: the flux entry of `cramer_rao_bound`, larger because flux, n and
      r are correlated.
    """
    import pandas as pd

    from galaxies.simulation.render import add_noise

    check_parameters(flux, sersic_n, sersic_r, g1, g2, psf_fwhm, sigma)
    mu, _ = _jacobian_for(flux, sersic_n, sersic_r, g1, g2, psf_fwhm, None, None)
    u = mu / flux
    weight = 1.0 / (sigma**2 + np.maximum(mu, 0.0))
    # the copies side by side in one image: one GalSim noise call
    wide = add_noise(np.tile(mu, (1, realizations)), sigma, seed).astype(np.float64)
    noisy = wide.reshape(mu.shape[0], realizations, mu.shape[1])
    estimates = np.einsum("ikj,ij->k", noisy, weight * u) / np.sum(weight * u * u)
    snr = np.sqrt(np.sum(mu**2)) / sigma
    return pd.Series({
        "closed form, read noise only": flux / snr,
        "Fisher, read noise only": 1 / np.sqrt(fisher_matrix(flux, sersic_n, sersic_r, g1, g2,
                                                             psf_fwhm, sigma, poisson=False)[0, 0]),
        "Fisher, shape known": 1 / np.sqrt(fisher_matrix(flux, sersic_n, sersic_r, g1, g2,
                                                         psf_fwhm, sigma)[0, 0]),
        f"Monte Carlo, shape known ({realizations} images)": float(np.std(estimates, ddof=1)),
        "CRB, all five free": float(cramer_rao_bound(flux, sersic_n, sersic_r, g1, g2,
                                                     psf_fwhm, sigma)[0]),
    }, name="flux bound [e-]")


def cutout_bound(params, stamp, sigma, gain: float | None = 1.0, psf_fwhm=None,
                 steps: dict | None = None, sky: bool = False) -> np.ndarray:
    """The Cramér–Rao bound (5,) of a galaxy ``params`` (flux, n, r, g1, g2) seen on a cutout's
    own stamp (`galaxies.simulation.render.Stamp`: pixel scale, shape, PSF, centre) with read noise
    ``sigma`` (a number or a map, ``inf`` masking a pixel) and Poisson variance ``mu / gain``
    (None: none). ``psf_fwhm`` names the Moffat when the stamp has no PSF of its own. At the
    simulation's stamp this is `cramer_rao_bound`, to the last digit. No range checks.

    ``sky``: a constant sky level is a sixth unknown (its derivative is 1 on every pixel), as
    when the sky is fitted with the galaxy (`galaxies.inference.differentiable.sky`): the bound
    (6,) of the labels with the sky marginalized, then the sky level's own."""
    renderer = GalaxyRenderer()
    mu, jac = jacobian(*np.asarray(params, float), psf_fwhm=psf_fwhm, renderer=renderer,
                       steps=steps, stamp=stamp)
    if sky:
        jac = np.concatenate([jac, np.ones((1,) + mu.shape)])
    sigma = float(sigma) if np.ndim(sigma) == 0 else np.asarray(sigma, float).reshape(mu.shape)
    return _bound(fisher_from_jacobian(mu, jac, sigma, poisson=gain is not None,
                                       gain=1.0 if gain is None else gain))
