"""A constant sky fitted with the galaxy (`galaxies.inference.differentiable.sky`): its Jacobian,
its bound against GalSim's finite differences and against the analytic limits, and the fit.
"""
import galsim
import numpy as np
import pytest

from galaxies.cutouts import measure
from galaxies.cutouts.fits_files import Cutout
from galaxies.inference import crb
from galaxies.inference.differentiable import bound
from galaxies.inference.differentiable.cutouts import cutout_model, fit_cutout
from galaxies.inference.differentiable.sky import WithSky
from galaxies.simulation import render

from cutout_files import TRUTH, simulated

SCALE, SIZE, SIGMA = 0.3, 41, 150.0


@pytest.fixture(scope="module")
def stamp():
    psf = galsim.Moffat(beta=2.0, fwhm=0.7)
    return render.Stamp(SCALE, (SIZE, SIZE), psf)


def test_the_sky_adds_a_level_and_a_row_of_ones(stamp):
    model = cutout_model(stamp)
    theta = np.array([[*TRUTH, 0.0], [*TRUTH, 37.5]])
    mu, jac = WithSky(model).images_and_jacobians(theta)
    plain, plain_jac = model.images_and_jacobians(theta[:, :5])
    np.testing.assert_allclose(mu[1] - mu[0], 37.5)
    np.testing.assert_allclose(mu[0], plain[0])
    np.testing.assert_array_equal(jac[:, :5], plain_jac)
    assert np.all(jac[:, 5] == 1.0)
    np.testing.assert_allclose(WithSky(model).images(theta), mu, rtol=1e-4, atol=1e-3)


def test_the_bound_with_the_sky_is_galsims_and_lies_between_the_analytic_limits(stamp):
    """With the sky unknown no label is known better than with it known; the sky itself no
    better than ``sigma / sqrt(pixels)``, its bound with the galaxy known."""
    known = crb.cutout_bound(TRUTH, stamp, SIGMA, gain=None)
    with_sky = crb.cutout_bound(TRUTH, stamp, SIGMA, gain=None, sky=True)
    assert with_sky.shape == (6,)
    assert np.all(with_sky[:5] >= known * (1 - 1e-9)) and with_sky[0] > 1.02 * known[0]
    assert with_sky[5] > SIGMA / SIZE
    # the JAX model's exact Jacobian against GalSim's central differences
    mu, jac = WithSky(cutout_model(stamp)).images_and_jacobians(np.array([[*TRUTH, 0.0]]))
    jax_bound = np.sqrt(np.diag(bound.covariances(
        bound.fisher_matrices(mu, jac, np.array([SIGMA]), poisson=False))[0]))
    np.testing.assert_allclose(jax_bound, with_sky, rtol=2e-3)


def test_a_sky_level_is_recovered_and_the_labels_as_without_it(stamp):
    noisy, _ = simulated(SCALE, SIZE, SIGMA, seed=5)
    model, box = cutout_model(stamp), measure.fit_box(stamp)
    flux_range = (1.0, np.inf)
    noise = np.full(noisy.shape, SIGMA)
    plain = fit_cutout(model, noisy, noise, box, flux_range)
    sky = fit_cutout(model, noisy + 80.0, noise, box, flux_range, sky=True)
    assert plain.params.shape == (1, 5) and sky.params.shape == (1, 6)
    assert bool(sky.converged[0])
    assert abs(sky.params[0, 5] - 80.0) < 4 * sky.std[0, 5]
    # the same image up to the level: the labels agree within a fraction of their spread
    assert np.all(np.abs(sky.params[0, :5] - plain.params[0]) < 0.5 * sky.std[0, :5])
    np.testing.assert_allclose(sky.std[0], crb.cutout_bound(sky.params[0, :5], stamp, SIGMA,
                                                            gain=None, sky=True), rtol=0.02)


def test_measure_fits_the_sky_unless_it_is_given():
    noisy, psf = simulated(SCALE, SIZE, SIGMA, seed=7)
    cutout = Cutout(noisy + 300.0, "sim.fits", 0, None, SCALE)
    fitted = measure.measure_cutout(cutout, "fit", psf_image=psf, sigma=SIGMA)
    given = measure.measure_cutout(cutout, "fit", psf_image=psf, sigma=SIGMA, background=300.0)
    assert fitted.renderer == "jax" and fitted.background_std > 0
    assert abs(fitted.background - 300.0) < 4 * fitted.background_std
    assert given.background == 300.0 and given.background_std == 0.0
    assert np.all(fitted.std >= given.std * 0.98)  # an unknown sky costs information
    assert np.all(np.abs(fitted.params - TRUTH) < 4 * fitted.std)
    assert fitted.row()["background_std"] == fitted.background_std
