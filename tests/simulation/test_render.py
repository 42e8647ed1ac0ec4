"""The simulation against GalSim itself and against independent reasoning."""
import galsim
import numpy as np
import pytest

from galaxies import conventions
from galaxies.conventions import check_parameters, ellipticity_to_shear, shear_to_ellipticity
from galaxies.runtime.errors import ParameterRangeError
from galaxies.simulation import render
from galaxies.simulation.render import GalaxyRenderer, add_noise, simulate as sim

CASES = [  # flux, n, r, g1, g2, psf
    (1e5, 3.0, 0.3, -0.069, 0.15, 0.5),
    (3e4, 0.5, 0.6, 0.4, -0.3, 1.0),
    (4e5, 6.0, 0.1, 0.0, 0.0, 0.7),
    (2e5, 1.3, 0.45, -0.5, 0.2, 0.5),
]


def direct_render(flux, n, r, g1, g2, psf):
    """The seed's way: a fresh GalSim profile drawn with GalSim's default method."""
    gal = galsim.Sersic(n, half_light_radius=r, flux=flux).shear(g1=g1, g2=g2)
    return galsim.Convolve(gal, galsim.Moffat(beta=2, fwhm=psf)).drawImage(
        nx=64, ny=64, scale=0.23).array


@pytest.mark.parametrize("params", CASES)
def test_renderer_matches_a_direct_galsim_render(params):
    renderer = GalaxyRenderer()
    ours = renderer.draw(*params)
    again = renderer.draw(*params)  # now from the cached table and PSF k-images
    reference = direct_render(*params)
    assert ours.shape == (64, 64) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, again)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6 * reference.max())


def test_noise_matches_galsim_noise_with_the_same_seed():
    clean = direct_render(*CASES[0])
    image = galsim.ImageF(clean.copy(), scale=0.23)
    rng = galsim.BaseDeviate(1234)
    image.addNoise(galsim.PoissonNoise(rng, sky_level=0.0))
    image.addNoise(galsim.GaussianNoise(rng, sigma=200.0))
    np.testing.assert_array_equal(add_noise(clean, 200.0, 1234), image.array)
    assert not np.array_equal(add_noise(clean, 200.0, 1235), image.array)


def test_noise_has_the_variance_of_poisson_plus_read_noise():
    """Monte Carlo: pixel variance is sigma^2 + mu (independent of GalSim's own tests)."""
    clean = direct_render(4e5, 1.0, 0.3, 0.0, 0.0, 0.5)
    noisy = np.stack([add_noise(clean, 200.0, s) for s in range(1, 801)])
    bright = clean > 0.5 * clean.max()
    predicted = 200.0**2 + clean[bright]
    measured = noisy[:, bright].var(axis=0, ddof=1)
    # 800 draws: the sample variance has a relative error of about sqrt(2/800) = 5%
    assert abs(np.mean(measured / predicted) - 1) < 0.02
    assert abs(noisy.mean(axis=0)[bright] / clean[bright] - 1).max() < 0.05


def test_flux_of_a_compact_galaxy_lands_in_the_stamp():
    image = GalaxyRenderer().draw(1e5, 1.0, 0.2, 0.1, 0.1, 0.5)
    assert image.sum() == pytest.approx(1e5, rel=0.01)


def test_shear_orientation_matches_adaptive_moments():
    """The sheared image is elongated along beta, as GalSim's HSM moments measure it."""
    renderer = GalaxyRenderer()
    for beta in np.radians([0, 30, 75, 120]):
        g1, g2 = conventions.shear_components(0.4, beta)
        image = renderer.draw(1e5, 1.0, 0.5, g1, g2, 0.5)
        shape = galsim.hsm.FindAdaptiveMom(galsim.ImageF(image, scale=0.23)).observed_shape
        measured = np.mod(0.5 * np.arctan2(shape.e2, shape.e1), np.pi)
        assert abs(np.angle(np.exp(2j * (measured - beta)))) / 2 < np.radians(1)


def test_snr_definition():
    galaxy = sim(1e5, 3.0, 0.3, -0.069, 0.15, 0.5, 200.0, seed=3)
    assert galaxy.snr == pytest.approx(np.sqrt(np.sum(galaxy.clean.astype(float) ** 2)) / 200.0)
    assert 55 < galaxy.snr < 65  # the snr60 test galaxy
    assert galaxy.psf.sum() == pytest.approx(1.0, abs=0.02)
    np.testing.assert_allclose(galaxy.noise, galaxy.noisy - galaxy.clean)


def test_shear_conversions_round_trip():
    rng = np.random.default_rng(0)
    q, beta = rng.uniform(0.2, 1.0, 200), rng.uniform(0, np.pi, 200)
    g1, g2 = ellipticity_to_shear(q, beta)
    q2, beta2 = shear_to_ellipticity(g1, g2)
    np.testing.assert_allclose(q2, q, atol=1e-12)
    round_q = q < 0.999  # orientation of a circle is undefined
    np.testing.assert_allclose(np.cos(2 * beta2[round_q]), np.cos(2 * beta[round_q]), atol=1e-9)
    np.testing.assert_allclose(np.sin(2 * beta2[round_q]), np.sin(2 * beta[round_q]), atol=1e-9)
    # GalSim's own convention agrees
    shear = galsim.Shear(q=0.5, beta=0.3 * galsim.radians)
    np.testing.assert_allclose(ellipticity_to_shear(0.5, 0.3), (shear.g1, shear.g2), atol=1e-12)
    assert shear_to_ellipticity(0.0, 0.67)[0] == pytest.approx(0.1976, abs=1e-4)


@pytest.mark.parametrize("name, kwargs", [
    ("flux", dict(flux=1e6)), ("flux", dict(flux=float("nan"))), ("sersic_n", dict(sersic_n=0.3)),
    ("sersic_n", dict(sersic_n=6.5)), ("sersic_r", dict(sersic_r=0.05)), ("sersic_r", dict(sersic_r=0.7)),
    ("shear", dict(g1=0.6, g2=0.4)), ("psf_fwhm", dict(psf_fwhm=1.2)), ("sigma", dict(sigma=100.0)),
])
def test_out_of_range_values_name_the_parameter_and_its_range(name, kwargs):
    params = dict(flux=1e5, sersic_n=3.0, sersic_r=0.3, g1=0.0, g2=0.0, psf_fwhm=0.5, sigma=200.0)
    params.update(kwargs)
    with pytest.raises(ParameterRangeError, match=rf"^{name}.*outside the allowed range \["):
        check_parameters(**params)
    with pytest.raises(ParameterRangeError):
        sim(**params)


def test_noise_seed_must_be_positive():
    with pytest.raises(ValueError, match="seed"):
        add_noise(np.zeros((64, 64)), 200.0, 0)
