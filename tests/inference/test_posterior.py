import numpy as np
import pytest

from galaxies.inference import crb, posterior
from galaxies.runtime.errors import InputError
from galaxies.simulation.render import GalaxyRenderer, add_noise


def test_log_prior_is_the_recipes_draw():
    theta = np.array([[1e5, 3.0, 0.3, 0.1, 0.0],
                      [1e5, 3.0, 0.3, 0.0, 0.2],
                      [1e5, 6.5, 0.3, 0.1, 0.0],    # index outside [0.5, 6]
                      [1e5, 3.0, 0.3, 0.6, 0.6]])   # |g| > 0.67
    snr = np.array([50.0, 50.0, 50.0, 50.0])
    out = posterior.log_prior(theta, snr)
    assert np.isclose(out[1] - out[0], np.log(0.1 / 0.2))  # density ~ 1 / |g|
    assert np.isneginf(out[2:]).all()
    assert np.isneginf(posterior.log_prior(theta[:1], np.array([120.0])))  # the SNR cut
    assert posterior.log_prior(theta[:2], snr[:2], shear_density=False).tolist() == [0.0, 0.0]


def test_proposal_density_is_a_normalized_mixture():
    rng = np.random.default_rng(1)
    cov = np.diag([4.0, 1.0, 0.25, 1.0, 1.0])
    proposal = posterior.Proposal(np.zeros(5), cov, inflate=(1.0, 2.0))
    # importance check: E_q[p / q] = 1 for p = N(0, cov)
    x = proposal.draw(200_000, rng)
    single = posterior.Proposal(np.zeros(5), cov, inflate=(1.0,))
    ratio = np.exp(single.log_density(x) - proposal.log_density(x))
    assert abs(ratio.mean() - 1.0) < 0.02


def test_posterior_mean_and_width_of_a_simple_galaxy():
    """An exponential disc at SNR 95, where the likelihood is nearly Gaussian: the posterior's
    width is the bound's (a likelihood off by a factor 2 would make it 0.71 or 1.41 of it)."""
    sigma, psf = 200.0, 0.5
    renderer = GalaxyRenderer()
    unit = renderer.draw(1.0, 1.0, 0.4, 0.05, -0.1, psf).astype(np.float64)
    flux = 95 * sigma / np.sqrt(np.sum(unit**2))
    truth = np.array([flux, 1.0, 0.4, 0.05, -0.1])
    clean = flux * unit
    images = np.stack([add_noise(clean, sigma, seed) for seed in range(1, 7)])
    bound = crb.cramer_rao_bound(*truth, psf_fwhm=psf, sigma=sigma)
    fisher = crb.fisher_matrix(*truth, psf, sigma)
    draws = posterior.render_proposal(posterior.Proposal(truth, np.linalg.inv(fisher)), psf,
                                      samples=1500, seed=2, renderer=renderer,
                                      sersic_grid=np.linspace(0.5, 6.0, 200))
    result = posterior.posterior_means(draws, images, sigma, shear_density=False,
                                       events={"above": lambda t: t[:, 0] > truth[0],
                                               "below": lambda t: t[:, 0] <= truth[0],
                                               "all": lambda t: np.ones(len(t), bool)})
    assert (result.ess > 5).all()
    assert np.allclose(result.std.mean(axis=0) / bound, 1.0, atol=0.2)
    assert np.allclose(result.probability["all"], 1.0)
    assert np.allclose(result.probability["above"] + result.probability["below"], 1.0)
    # the truth's flux lies above the posterior median for some realizations, below for others
    assert 0 < np.sum(result.probability["above"] > 0.5) < 6
    z = (result.mean - truth) / bound
    assert np.abs(z).max() < 4.0
    with pytest.raises(InputError):
        posterior.posterior_means(draws, images[0], sigma)


def test_the_end_nodes_of_the_index_grid_take_their_own_cell_only():
    grid = np.linspace(0.5, 6.0, 200)
    cov = np.diag([1e6, 4.0, 1e-4, 1e-4, 1e-4])  # wide in n: much of it beyond 6
    proposal = posterior.Proposal(np.array([1e5, 5.5, 0.3, 0.0, 0.1]), cov, inflate=(1.0,))
    theta, log_q = posterior.draw_proposal(proposal, 200_000, seed=3, sersic_grid=grid)
    counts = np.array([np.sum(theta[:, 1] == node) for node in grid[-4:]])
    assert counts[-1] < 1.5 * counts[-2]  # not the whole tail piled on n = 6
    assert np.isin(theta[:, 1], grid).all() and len(theta) == len(log_q)


def test_the_proposal_drawn_by_the_differentiable_model_is_galsims():
    """The default renderer of the proposal (the JAX model) against GalSim's, draw by draw."""
    truth = np.array([1e5, 2.5, 0.3, 0.1, -0.05])
    proposal = posterior.Proposal(truth, np.diag([1e7, 0.2, 1e-3, 1e-3, 1e-3]))
    fast = posterior.render_proposal(proposal, 0.6, samples=60, seed=4)
    reference = posterior.render_proposal(proposal, 0.6, samples=60, seed=4,
                                          renderer=GalaxyRenderer())
    assert np.array_equal(fast.theta, reference.theta)
    error = np.linalg.norm(fast.units - reference.units, axis=1)
    assert np.max(error / np.linalg.norm(reference.units, axis=1)) < 1e-4
