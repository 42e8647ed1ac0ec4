"""The bulge plus disc model (`galaxies.inference.differentiable.bulge_disc`) against GalSim, its
own finite differences and the analytic limits, and its fit."""
import galsim
import numpy as np
import pytest

from galaxies.evaluation import cosmos_report
from galaxies.inference.differentiable import bulge_disc
from galaxies.inference.differentiable.fit import BOX, fit
from galaxies.inference.differentiable.model import DifferentiableModel

THETA = np.array([1.5e5, 0.35, 0.5, 0.3, 0.1, -0.05])  # F, f, r_d, r_b / r_d, g1, g2
FWHM = 0.6


def galsim_image(theta, fwhm=FWHM):
    flux, fraction, disc_r, ratio, g1, g2 = theta
    galaxy = galsim.Add([galsim.Sersic(4, half_light_radius=ratio * disc_r, flux=flux * fraction),
                         galsim.Sersic(1, half_light_radius=disc_r, flux=flux * (1 - fraction))])
    return galsim.Convolve(galaxy.shear(g1=g1, g2=g2), galsim.Moffat(beta=2, fwhm=fwhm)).drawImage(
        nx=64, ny=64, scale=0.23).array.astype(np.float64)


@pytest.fixture(scope="module")
def model():
    return bulge_disc.BulgeDisc(DifferentiableModel())


def test_the_image_is_galsims_bulge_plus_disc(model):
    ours = model.images(THETA[None], np.array([FWHM]))[0]
    reference = galsim_image(THETA)
    assert np.linalg.norm(ours - reference) / np.linalg.norm(reference) < 1e-5


def test_the_jacobian_is_the_chain_rule_of_the_components(model):
    _, jac = model.images_and_jacobians(THETA[None], np.array([FWHM]))
    for j, step in enumerate((100.0, 1e-3, 1e-4, 1e-3, 1e-4, 1e-4)):
        up, down = THETA.copy(), THETA.copy()
        up[j] += step
        down[j] -= step
        numeric = (model.images(up[None], np.array([FWHM]))[0]
                   - model.images(down[None], np.array([FWHM]))[0]) / (2 * step)
        assert np.linalg.norm(jac[0, j] - numeric) / np.linalg.norm(numeric) < 3e-3, j


def test_the_composite_half_light_radius_is_galsims():
    thetas = np.array([THETA, [1e5, 0.7, 0.8, 0.2, 0.0, 0.0], [1e5, 0.05, 0.3, 1.0, 0.0, 0.0]])
    ours = bulge_disc.half_light_radius(thetas)
    for theta, r in zip(thetas, ours):
        _, f, rd, rho, _, _ = theta
        galaxy = galsim.Add([galsim.Sersic(4, half_light_radius=rho * rd, flux=f),
                             galsim.Sersic(1, half_light_radius=rd, flux=1 - f)])
        assert r == pytest.approx(galaxy.calculateHLR(scale=0.002, size=4000), rel=2e-3)
    # one radius for both: each component holds half its light inside it, so the sum does
    assert bulge_disc.half_light_radius([[1.0, 0.4, 0.5, 1.0, 0, 0]])[0] == pytest.approx(0.5)
    assert bulge_disc.half_light_radius([[1.0, 0.0, 0.5, 0.3, 0, 0]])[0] == pytest.approx(0.5)


def test_a_bulge_plus_disc_is_fitted_where_a_sersic_misreads_it():
    """Noiseless bulges plus discs (weights of sigma 20): the bulge plus disc fit recovers the
    flux and half-light radius, the Sérsic fit does not."""
    thetas = np.array([[1.5e5, 0.3, 0.6, 0.25, 0.05, 0.02], [1.2e5, 0.6, 0.45, 0.3, -0.1, 0.04]])
    images = np.stack([galsim_image(t, 0.5) for t in thetas])
    psf, sigma = np.full(2, 0.5), np.full(2, 20.0)
    wide = BOX.copy()
    wide[2] = (0.02, 3.0)
    sersic = fit(images, psf, sigma, gain=None, box=wide)
    params, nll, std, converged = bulge_disc.fit_bulge_disc(images, psf, sigma, sersic.params,
                                                            gain=None)
    truth_r = bulge_disc.half_light_radius(thetas)
    assert converged.all() and params.shape == (2, 6) and np.all(std > 0)
    np.testing.assert_allclose(params[:, 0], thetas[:, 0], rtol=3e-3)
    np.testing.assert_allclose(bulge_disc.half_light_radius(params), truth_r, rtol=5e-3)
    np.testing.assert_allclose(params[:, 4:], thetas[:, 4:], atol=3e-3)
    assert np.all(nll < sersic.nll)
    assert np.max(np.abs(sersic.params[:, 2] / truth_r - 1)) > 0.01  # the Sérsic misreads r


def test_the_model_choice_is_the_information_criterion():
    threshold = 0.5 * np.log(4096)
    chosen = cosmos_report.choose_model([10.0, 10.0], [10.0 - threshold + 0.01,
                                                       10.0 - threshold - 0.01], 4096)
    assert chosen.tolist() == [False, True]
