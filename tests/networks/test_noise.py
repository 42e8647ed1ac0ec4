"""Fresh noise for training: GalSim's noise model, seeded, inside the SNR window, in the loop."""
import numpy as np
import pytest

from galaxies.conventions import SNR_RANGE
from galaxies.networks.training import TrainingConfig, fit, input_fields
from galaxies.networks.training.noise import FreshNoise
from galaxies.runtime.errors import InputError
from galaxies.simulation.render import add_noise, default_renderer
from galaxies.storage import files


@pytest.fixture(scope="module")
def clean():
    return default_renderer().draw(1e5, 3.0, 0.3, -0.069, 0.15, 0.5)[24:40, 24:40]


def test_the_noise_is_galsims_noise_model(clean):
    # Monte Carlo against GalSim's own Poisson + Gaussian noise: per-pixel mean 0 and variance
    # mu + sigma^2 for both, and the same skewness of the Poisson part (mu^-1/2 in units of mu)
    sigma, n = 50.0, 3000
    ours = FreshNoise().draw(np.repeat(clean[None], n, 0), np.full(n, sigma),
                             np.random.default_rng(0)) - clean
    galsim_draws = np.array([add_noise(clean, sigma, seed) for seed in range(1, n + 1)]) - clean
    expected = clean + sigma**2
    for draws in (ours, galsim_draws):
        np.testing.assert_allclose(draws.var(axis=0) / expected, 1.0, atol=0.12)
        assert np.abs(draws.mean(axis=0) / np.sqrt(expected / n)).max() < 5
    # the two agree on the whole stamp's variance to within Monte-Carlo error (~0.5%)
    assert ours.var() == pytest.approx(galsim_draws.var(), rel=0.02)


def test_draws_are_seeded_and_never_repeat(clean):
    fresh = FreshNoise(sigma=(200.0, 400.0), seed=3)
    batch = np.repeat(clean[None], 4, 0)
    a, sa = fresh.realize(batch, np.full(4, 200.0), (0, 1))
    b, sb = fresh.realize(batch, np.full(4, 200.0), (0, 1))
    c, _ = fresh.realize(batch, np.full(4, 200.0), (1, 1))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa, sb)
    assert not np.allclose(a, c)
    assert not np.allclose(a[0], a[1]), "each image of a batch its own noise"
    other = FreshNoise(sigma=(200.0, 400.0), seed=4).realize(batch, np.full(4, 200.0), (0, 1))[0]
    assert not np.allclose(a, other)


def test_drawn_sigma_stays_in_the_range_and_the_snr_window():
    fresh = FreshNoise(sigma=(250.0, 400.0))
    rng = np.random.default_rng(1)
    norms = np.geomspace(500, 80000, 400)  # noiseless norms: SNR 1.25 to 320 at sigma 400..250
    images = np.zeros((len(norms), 4, 4))
    images[:, 0, 0] = norms
    sigma = fresh.sigmas(images, np.zeros(len(norms)), rng)
    assert ((sigma >= 250.0) & (sigma <= 400.0)).all()
    snr = norms / sigma
    inside = (norms / 400 <= SNR_RANGE.high) & (norms / 250 >= SNR_RANGE.low)
    assert ((snr[inside] >= SNR_RANGE.low * 0.999) & (snr[inside] <= SNR_RANGE.high * 1.001)).all()
    np.testing.assert_array_equal(FreshNoise().sigmas(images, np.full(len(norms), 7.0), rng), 7.0)


def test_configurations_that_cannot_work_are_refused():
    with pytest.raises(InputError, match="conditioning"):
        TrainingConfig(noise="fresh", noise_sigma=(200, 400))
    with pytest.raises(InputError, match="inputs = 'noisy'"):
        TrainingConfig(noise="fresh", inputs="noiseless")
    with pytest.raises(InputError, match="'fixed', 'fresh'"):
        TrainingConfig(noise="new")
    with pytest.raises(InputError, match="within"):
        FreshNoise(sigma=(100.0, 400.0))


def test_training_on_fresh_noise_is_seeded(small_sets):
    ds = files.load_dataset(small_sets["random"])
    config = TrainingConfig(noise="fresh", noise_sigma=(200.0, 400.0), conditioning=("sigma",),
                            epochs=2, batch_size=8, patience=2,
                            model_kwargs=dict(entry_filters=4, block_filters=4, blocks=1, exit_filters=4))
    first = fit(config, ds, verbose=0)
    again = fit(config, ds, verbose=0)
    np.testing.assert_array_equal(first.history()["loss"], again.history()["loss"])
    assert config.noise == first.info["config"]["noise"] == "fresh"
    # the network reads the noise level it is given, and predicts from the noisy images
    # (trained on the noiseless ones plus fresh noise)
    pred, _ = first.predict(ds.img[:4], sigma=ds.sigma[:4])
    assert pred.shape == (4, 5) and np.isfinite(pred).all()
    assert input_fields(first.config) == ("img",)
    assert input_fields(first.config, training=True) == ("img_nonoise",)
    from_set, _ = first.predict_dataset(ds.subset(slice(0, 4)))
    np.testing.assert_allclose(from_set, pred, rtol=1e-5)
    fixed = fit(TrainingConfig(epochs=2, batch_size=8, patience=2, conditioning=("sigma",),
                               model_kwargs=config.model_kwargs), ds, verbose=0)
    assert not np.allclose(fixed.history()["loss"], first.history()["loss"])
