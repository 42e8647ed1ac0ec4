"""The likelihood-trained network (`galaxies.networks.training.likelihood`): the NLL's gradient, the
surrogate loss and a few fine-tuning steps."""
import numpy as np
import pytest

from galaxies.networks.training import likelihood
from galaxies.networks import training
from galaxies.runtime.errors import InputError, OutputExistsError
from galaxies.simulation import render

TINY = dict(entry_filters=8, block_filters=8, blocks=1, exit_filters=8)


@pytest.fixture(scope="module")
def model():
    from galaxies.inference.differentiable.model import DifferentiableModel
    return DifferentiableModel()


def test_the_gradient_is_the_nll_s_derivative(model):
    """Against central differences of the NLL itself, on a noisy image away from its truth."""
    truth = np.array([[1.2e5, 2.5, 0.3, 0.1, -0.2]])
    clean = render.GalaxyRenderer().draw(*truth[0], 0.6)
    image = render.add_noise(clean, 250.0, seed=4)[None]
    theta = truth * np.array([1.05, 1.1, 0.95, 1.2, 0.9])
    nll, gradient, inside = likelihood.nll_and_gradient(image, [0.6], [250.0], theta, model)
    assert np.array_equal(inside, theta) and np.isfinite(nll).all()
    steps = np.array([100.0, 1e-3, 1e-4, 1e-4, 1e-4])
    for j, h in enumerate(steps):
        up, down = theta.copy(), theta.copy()
        up[0, j] += h
        down[0, j] -= h
        numeric = (likelihood.nll_and_gradient(image, [0.6], [250.0], up, model)[0]
                   - likelihood.nll_and_gradient(image, [0.6], [250.0], down, model)[0]) / (2 * h)
        assert gradient[0, j] == pytest.approx(numeric[0], rel=0.02), j
    with pytest.raises(InputError, match="theta"):
        likelihood.nll_and_gradient(image, [0.6], [250.0], theta[:, :4], model)


def test_an_estimate_outside_the_box_is_rendered_on_its_edge(model):
    truth = np.array([[1.2e5, 5.9, 0.3, 0.1, -0.2]])
    image = render.GalaxyRenderer().draw(*truth[0], 0.6)[None]
    theta = truth + np.array([[0, 1.0, 0, 0, 0]])  # n = 6.9, above the box
    nll, gradient, inside = likelihood.nll_and_gradient(image, [0.6], [200.0], theta, model)
    assert inside[0, 1] == 6.0 and np.isfinite(gradient).all()


def test_bad_settings_are_refused_in_one_line():
    pytest.importorskip("keras")
    with pytest.raises(InputError, match="optimizer"):
        likelihood.LikelihoodTuner(None, optimizer="rmsprop")
    with pytest.raises(InputError, match="learning_rate"):
        likelihood.LikelihoodTuner(None, learning_rate=0.0)
    with pytest.raises(InputError, match="target"):
        likelihood.LikelihoodTuner(None, target="labels")
    with pytest.raises(InputError, match="decay_steps = 0 must be a positive whole number"):
        likelihood.LikelihoodTuner(None, decay_steps=0)
    bad = likelihood.MLETargets(np.zeros((1, 5)), np.array([[1.0, np.nan, 1, 1, 1]]),
                                np.ones((1, 5, 5)), np.ones(1, bool))
    with pytest.raises(InputError, match="crb"):
        likelihood.mle_weights(bad, np.ones(5))
    bad.crb[:] = 1.0
    with pytest.raises(InputError, match="metric"):
        likelihood.mle_weights(bad, np.ones(5), metric="labels")


@pytest.fixture(scope="module")
def tiny_network(small_sets):
    """A tiny network trained one epoch on labels, and the first 8 images of its set."""
    pytest.importorskip("keras")
    from galaxies.storage import files
    saved = training.fit(training.TrainingConfig(epochs=1, batch_size=8, model_kwargs=TINY),
                         small_sets["random"], verbose=0)
    return saved, files.load_dataset(small_sets["random"], fields=("img",), rows=8)


def fresh_copy(saved):
    """The same network with its own weights, so that each test tunes its own."""
    import keras
    model = keras.models.clone_model(saved.model)
    model.set_weights(saved.model.get_weights())
    return training.SavedModel(model, saved.scalers, saved.info)


def test_a_few_steps_lower_the_nll_of_the_batch(tiny_network, model):
    """Ten steps on one batch's own NLL: the NLL of that batch (at the network's new
    estimates) falls; no label is read."""
    saved, ds = tiny_network
    saved = fresh_copy(saved)
    tuner = likelihood.LikelihoodTuner(saved, learning_rate=3e-3, model=model)
    before = likelihood.nll_and_gradient(
        ds.img, ds.psf_fwhm, ds.sigma, tuner.estimates(ds.img, ds.psf_fwhm, ds.sigma), model)[0]
    history = tuner.tune(ds.img, ds.psf_fwhm, ds.sigma, steps=10, batch_size=8)
    after = likelihood.nll_and_gradient(
        ds.img, ds.psf_fwhm, ds.sigma, tuner.estimates(ds.img, ds.psf_fwhm, ds.sigma), model)[0]
    assert len(history) == 10 and np.isfinite(history).all()
    assert after.mean() < before.mean()


def test_decay_steps_take_the_learning_rate_down_a_cosine(tiny_network, model):
    """With ``decay_steps=4``, the optimizer's rate after 2 steps is half way down the cosine
    (from 3e-3 to 1% of it: 3e-3 * (0.01 + 0.99 * (1 + cos(pi/2)) / 2)) and after 6 steps
    stays at 1%; without, it stays at 3e-3."""
    saved, ds = tiny_network
    tuner = likelihood.LikelihoodTuner(fresh_copy(saved), learning_rate=3e-3, model=model,
                                       decay_steps=4)
    optimizer = tuner.saved.model.optimizer

    def rate():
        return float(np.asarray(optimizer.learning_rate))

    tuner.tune(ds.img, ds.psf_fwhm, ds.sigma, steps=2, batch_size=4)
    assert rate() == pytest.approx(3e-3 * (0.01 + 0.99 * 0.5), rel=1e-5)
    tuner.tune(ds.img, ds.psf_fwhm, ds.sigma, steps=4, batch_size=4)
    assert rate() == pytest.approx(3e-5, rel=1e-5)
    constant = likelihood.LikelihoodTuner(fresh_copy(saved), learning_rate=3e-3, model=model)
    constant.tune(ds.img, ds.psf_fwhm, ds.sigma, steps=2, batch_size=4)
    assert float(np.asarray(constant.saved.model.optimizer.learning_rate)) == pytest.approx(3e-3)


@pytest.mark.parametrize("target", ["mle", "mle-fisher"])
def test_a_few_steps_toward_the_fits_lower_that_loss(tiny_network, model, target):
    """The fit of each image is the target (its bound or Fisher matrix the metric), no label
    read: ten steps on the fixed batch lower that loss, which is mean(((theta - fit) / crb)^2)
    (or the NLL's quadratic expansion times 2 / 5) where uncapped."""
    saved, ds = tiny_network
    saved = fresh_copy(saved)
    targets = likelihood.mle_targets(ds.img, ds.psf_fwhm, ds.sigma, model)
    ok = targets.usable
    assert ok.sum() >= 6
    std = np.asarray(saved.scalers["label"].std)
    usable = likelihood.MLETargets(targets.theta[ok], targets.crb[ok], targets.fisher[ok], ok[ok])
    bound = likelihood.mle_weights(usable, std)
    assert np.all(bound <= likelihood.WEIGHT_CAP * np.median(bound, axis=0) + 1e-9)
    tuner = likelihood.LikelihoodTuner(saved, learning_rate=3e-3, target=target, model=model)
    d = tuner.estimates(ds.img, ds.psf_fwhm, ds.sigma)[ok] - targets.theta[ok]
    if target == "mle":
        weight = (std / targets.crb[ok]) ** 2
        uncapped = np.mean((d / targets.crb[ok]) ** 2)
    else:
        weight = targets.fisher[ok] * std[:, None] * std[None, :]
        uncapped = np.mean(np.einsum("bi,bij,bj->b", d, targets.fisher[ok], d)) / 5
    first = tuner.step_toward(ds.img[ok], ds.psf_fwhm[ok], ds.sigma[ok], targets.theta[ok],
                              weight)
    assert first == pytest.approx(uncapped, rel=1e-3)
    history = tuner.tune(ds.img, ds.psf_fwhm, ds.sigma, steps=10, batch_size=8, targets=targets)
    assert len(history) == 10 and np.isfinite(history).all()
    assert history[-1] < history[0]


def test_fitted_targets_are_kept_in_a_file_and_joined(tmp_path):
    rng = np.random.default_rng(3)
    parts = [likelihood.MLETargets(rng.normal(size=(n, 5)), rng.uniform(1, 2, (n, 5)),
                                   rng.normal(size=(n, 5, 5)), rng.uniform(size=n) > 0.3)
             for n in (3, 4)]
    joined = likelihood.MLETargets.concatenate(parts)
    assert len(joined) == 7
    np.testing.assert_array_equal(joined.subset(slice(3, 7)).fisher, parts[1].fisher)
    path = tmp_path / "fits.npz"
    joined.save(path)
    back = likelihood.MLETargets.load(path)
    for name in ("theta", "crb", "fisher", "usable"):
        np.testing.assert_array_equal(getattr(back, name), getattr(joined, name))
    with pytest.raises(OutputExistsError, match="already exists"):
        joined.save(path)
    np.savez(tmp_path / "other.npz", theta=joined.theta)
    with pytest.raises(InputError, match="missing crb, fisher, usable"):
        likelihood.MLETargets.load(tmp_path / "other.npz")
