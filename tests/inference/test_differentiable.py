"""The differentiable model against GalSim and against independent reasoning.

GalSim is the reference for the images (`galaxies.simulation.render` draws the data sets), for the
bound (`galaxies.inference.crb`, central differences of GalSim renders) and for the fit
(`galaxies.inference.galsim_fit`, L-BFGS-B on GalSim renders); analytic cases check the tables themselves.
"""
import math

import galsim
import numpy as np
import pytest

from galaxies import conventions
from galaxies.inference import crb, galsim_fit
from galaxies.inference.differentiable import (bound, fit, grid, posterior, render, tables,
                                               validation)
from galaxies.inference.differentiable.model import DifferentiableModel
from galaxies.simulation import render as galsim_render


@pytest.fixture(scope="module")
def model():
    return DifferentiableModel()


def test_tables_hold_galsims_k_profiles_between_their_nodes():
    """Off the nodes in n and in k, the interpolant is GalSim's own kValue."""
    t = render.device_tables()
    rng = np.random.default_rng(1)
    for n in (0.55, 1.37, 2.92, 5.81):
        coefficients = render.sersic_coefficients(t["sersic"], render.N_NODE0, tables.N_STEP, n)
        x = rng.uniform(0, 30, 50)
        ours = np.asarray(render.lookup(coefficients, x))
        unit = galsim.Sersic(n, half_light_radius=1.0)
        reference = np.array([unit.kValue(v, 0.0).real for v in x])
        assert np.max(np.abs(ours - reference)) < 1e-4, n


def test_the_half_index_sersic_is_a_gaussian():
    """n = 1/2 is a Gaussian of sigma = r / sqrt(2 ln 2): its transform is exp(-k^2 sigma^2 / 2)."""
    t = render.device_tables()
    coefficients = render.sersic_coefficients(t["sersic"], render.N_NODE0, tables.N_STEP, 0.5)
    x = np.linspace(0, 6, 61)
    sigma = 1.0 / math.sqrt(2 * math.log(2))
    assert np.asarray(render.lookup(coefficients, x)) == pytest.approx(
        np.exp(-0.5 * (x * sigma) ** 2), abs=2e-4)


def test_galsims_fft_grid_is_chosen_as_galsim_chooses_it():
    table = tables.profile_tables()
    renderer = galsim_render.GalaxyRenderer()
    for n, r, g1, g2, fwhm in [(3.0, 0.3, -0.069, 0.15, 0.5), (6.0, 0.6, 0.0, 0.0, 0.5),
                               (0.5, 0.1, 0.3, 0.3, 1.0), (4.0, 0.55, 0.5, -0.3, 0.7)]:
        size, k_size = grid.fft_sizes(table, n, r, g1, g2, table.moffat_stepk / fwhm,
                                      table.moffat_maxk / fwhm, (64, 64), conventions.PIXEL_SCALE)
        profile = galsim.Convolve(renderer.galaxy(1.0, n, r, g1, g2), renderer.psf(fwhm),
                                  galsim.Pixel(conventions.PIXEL_SCALE))
        profile = profile.shift(-0.5 * conventions.PIXEL_SCALE, -0.5 * conventions.PIXEL_SCALE)
        expected = max(galsim.Image.good_fft_size(max(profile.getGoodImageSize(
            conventions.PIXEL_SCALE), 64)), 128)
        assert size == expected, (n, r, fwhm)


@pytest.mark.slow
def test_images_are_galsims_over_the_prior_and_its_corners(model):
    """The 32 corners of (n, r, |g|, PSF, flux) and 16 draws inside: every image within 1e-4."""
    theta, psf = validation.validation_draw(48, seed=7)
    difference = validation.relative_l2(theta, psf, model)
    assert difference.max() < 1e-4, (difference.max(), theta[difference.argmax()])


def test_a_cutouts_stamp_offset_and_psf_image_are_galsims():
    """Another pixel scale, an odd non-square stamp, an offset centre and a PSF given as an
    image (an InterpolatedImage, pixel included): as GalSim draws them (`galsim_render.Stamp`)."""
    psf_image = galsim.Moffat(beta=2.5, fwhm=0.6).drawImage(nx=41, ny=41, scale=0.1)
    psf = galsim.InterpolatedImage(psf_image)
    stamp = galsim_render.Stamp(pixel_scale=0.1, shape=(45, 51), psf=psf, pixel_included=True,
                           offset=(0.7, -1.2))
    ours = DifferentiableModel(shape=stamp.shape, pixel_scale=0.1, psf=psf,
                               pixel_included=True, offset=stamp.offset)
    renderer = galsim_render.GalaxyRenderer()
    for theta in ([2e4, 1.5, 0.4, 0.2, -0.1], [5e4, 4.0, 0.25, -0.3, 0.05]):
        reference = stamp.draw(galsim.Convolve(renderer.galaxy(*theta), psf))
        image = ours.images(np.array([theta]))[0]
        assert np.linalg.norm(image - reference) / np.linalg.norm(reference) < 1e-4


def test_the_jacobian_is_the_derivative_of_the_image(model):
    """Forward-mode derivatives against central differences of the model's own images."""
    theta = np.array([[1.2e5, 2.3, 0.35, 0.1, -0.2]])
    _, jac = model.images_and_jacobians(theta, [0.6])
    plan = model.plan(theta, [0.6])
    for j, h in enumerate([1e2, 1e-3, 1e-4, 1e-4, 1e-4]):
        up, down = theta.copy(), theta.copy()
        up[0, j] += h
        down[0, j] -= h
        numeric = (model.images(up, [0.6], plan) - model.images(down, [0.6], plan)) / (2 * h)
        scale = np.abs(jac[0, j]).max()
        assert np.abs(jac[0, j] - numeric[0]).max() < 2e-3 * scale, j


def test_the_bound_is_galsims_within_one_percent(model):
    rows = [(1e5, 3.0, 0.3, -0.069, 0.15, 0.5, 200.0), (1.6e5, 4.0, 0.2, 0.12, -0.2, 0.8, 300.0),
            (1.3e5, 0.9, 0.5, -0.25, 0.1, 0.65, 250.0)]
    theta = np.array([r[:5] for r in rows])
    ours = bound.cramer_rao_bounds(theta, [r[5] for r in rows], [r[6] for r in rows], model)
    reference = np.array([crb.cramer_rao_bound(*r[:5], psf_fwhm=r[5], sigma=r[6]) for r in rows])
    assert ours == pytest.approx(reference, rel=0.01)


def test_the_flux_bound_has_its_closed_form_without_poisson_noise(model):
    """Read noise alone: the flux's Fisher information with the shape known is SNR^2 / flux^2."""
    theta = np.array([[1e5, 2.0, 0.3, 0.1, 0.05]])
    mu, jac = model.images_and_jacobians(theta, [0.7])
    fisher = bound.fisher_matrices(mu, jac, np.array([250.0]), poisson=False)
    snr = np.linalg.norm(mu) / 250.0
    assert fisher[0, 0, 0] == pytest.approx(snr**2 / 1e10, rel=1e-6)


def snr60_images(seeds):
    """The snr60 galaxy's labels and noisy GalSim images (read noise 200) for ``seeds``."""
    g = conventions.TEST_GALAXY
    truth = np.array([g["flux"], g["sersic_n"], g["sersic_r"], g["g1"], g["g2"]])
    clean = galsim_render.GalaxyRenderer().draw(*truth, g["psf_fwhm"])
    return truth, np.array([galsim_render.add_noise(clean, 200.0, seed) for seed in seeds])


@pytest.mark.slow
def test_the_fit_is_the_galsim_fit_within_two_hundredths_of_the_bound(model):
    truth, images = snr60_images(range(1, 7))
    ours = fit.fit(images, np.full(6, 0.5), 200.0, model=model)
    assert ours.converged.all()
    reference = np.array([galsim_fit.fit_image(image, 0.5, 200.0).params for image in images])
    scale = bound.cramer_rao_bounds(truth[None], [0.5], 200.0, model)[0]
    assert np.sqrt(np.mean(((ours.params - reference) / scale) ** 2, axis=0)).max() < 0.02


def test_refinement_reaches_the_fit_from_a_nearby_start(model):
    _, images = snr60_images(range(20, 24))
    full = fit.fit(images, np.full(4, 0.5), 200.0, model=model)
    scale = full.std
    start = full.params + 0.5 * scale * np.array([1.0, -1.0, 1.0, -1.0, 1.0])
    refined = fit.refine(images, np.full(4, 0.5), 200.0, start, 3, stop=fit.STOP, model=model)
    assert np.abs((refined.params - full.params) / scale).max() < 0.05
    assert np.all(refined.nll <= refined.nll_start)


def test_a_fit_recovers_a_noiseless_image_exactly(model):
    """No noise: the likelihood's minimum is the truth, wherever the fit starts from."""
    truth = np.array([[2e5, 1.7, 0.42, -0.2, 0.3]])
    image = model.images(truth, [0.8])
    result = fit.fit(image, [0.8], 300.0, model=model)
    assert result.params[0] == pytest.approx(truth[0], rel=1e-4, abs=1e-5)


def test_the_posterior_of_a_well_measured_galaxy_is_its_likelihood(model):
    """At SNR ~60 inside the prior the posterior is close to Gaussian: its mean near the fit and
    its width near the bound, with at least 200 effective draws."""
    truth = np.array([[1.5e5, 2.0, 0.35, 0.1, -0.15]])
    clean = galsim_render.GalaxyRenderer().draw(*truth[0], 0.6)
    sigma = float(np.linalg.norm(clean) / 60)
    image = galsim_render.add_noise(clean, sigma, seed=3)[None]
    estimate = fit.fit(image, [0.6], sigma, model=model)
    mu, jac = model.images_and_jacobians(estimate.params, [0.6])
    covariance = bound.covariances(bound.fisher_matrices(mu, jac, np.array([sigma])))
    # the fit hands back the Fisher matrix at its estimate: the same as computed afresh
    np.testing.assert_allclose(bound.covariances(estimate.fisher), covariance, rtol=1e-6)
    result = posterior.posterior_moments(image, [0.6], [sigma], estimate.params, covariance,
                                         bound_draws=32, model=model)
    assert result.ess[0] >= 200
    assert result.std[0] / estimate.std[0] == pytest.approx(np.ones(5), rel=0.3)
    assert np.all(np.abs(result.mean[0] - estimate.params[0]) < 0.6 * estimate.std[0])
    # the bound varies by a few per cent across a posterior one bound wide: the weighted
    # mean is a small shift of the mean
    assert np.all(np.abs(result.weighted_mean[0] - result.mean[0]) < 0.5 * result.std[0])


def test_the_bound_weighted_shift_is_the_gaussian_tilt(monkeypatch):
    """Weighting a Gaussian N(m, s^2) by ``exp(-a theta)`` moves its mean to ``m - a s^2``
    (completing the square): with the bound ``c = exp(a theta / 2)``, ``u = 1 / c^2`` is that
    weight, and the resampled estimate of the shift must find ``-a s^2``."""
    from galaxies.inference.differentiable import bound as bound_module
    tilt = np.array([0.5, 1.0, -1.0, 0.3, 0.0])
    monkeypatch.setattr(bound_module, "cramer_rao_bounds",
                        lambda theta, psf, sigma, model=None: np.exp(tilt * theta / 2))
    rng = np.random.default_rng(3)
    theta = rng.normal(0.0, 1.0, (20000, 5))
    weights = np.full(len(theta), 1.0 / len(theta))
    shift = posterior._bound_weighted_shift(theta, weights, 4000, rng, 0.6, 100.0, None)
    assert shift == pytest.approx(-tilt, abs=0.1)


def test_bad_inputs_are_refused_in_one_line(model):
    from galaxies.runtime.errors import InputError
    with pytest.raises(InputError, match="shape"):
        fit.fit(np.zeros((2, 10, 10)), [0.5, 0.5], 200.0, model=model)
    with pytest.raises(InputError, match="non-finite"):
        fit.fit(np.full((1, 64, 64), np.nan), [0.5], 200.0, model=model)
    with pytest.raises(InputError, match="theta"):
        bound.cramer_rao_bounds(np.zeros((2, 4)), [0.5, 0.5], 200.0, model)
