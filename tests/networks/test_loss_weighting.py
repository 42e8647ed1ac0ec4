"""Bound-weighted training (`galaxies.networks.training.weighting`): the loss, the weights,
the configuration, and a fit whose validation loss is the measured normalized error."""
import numpy as np
import pytest

from galaxies.conventions import LABEL_COLUMNS
from galaxies.inference import crb_sets
from galaxies.networks import training
from galaxies.networks.training import weighting
from galaxies.networks.training.scaling import Standardizer
from galaxies.runtime.errors import InputError
from galaxies.storage import files

TINY = dict(entry_filters=8, block_filters=8, blocks=1, exit_filters=8)


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def test_weighted_loss_is_the_hand_computed_value(keras):
    from keras import ops
    labels = np.array([[0.0, 1.0, -1.0, 0.5, 0.0], [2.0, 0.0, 0.0, 0.0, 1.0]], np.float32)
    pred = labels + np.array([[0.1, -0.2, 0.0, 0.3, 1.0], [0.0, 0.5, 2.0, -1.0, 0.1]], np.float32)
    weights = np.array([[4.0, 1.0, 9.0, 0.0, 0.5], [1.0, 2.0, 0.25, 1.0, 100.0]], np.float32)
    got = ops.convert_to_numpy(weighting.bound_weighted_mse(np.concatenate([labels, weights], 1), pred))
    by_hand = [(4 * 0.01 + 1 * 0.04 + 0 + 0 + 0.5 * 1.0) / 5,
               (0 + 2 * 0.25 + 0.25 * 4.0 + 1.0 + 100 * 0.01) / 5]
    np.testing.assert_allclose(got, by_hand, rtol=1e-6)


def test_weights_are_inverse_squared_scaled_bounds():
    bounds = np.array([[10.0, 0.5, np.nan, 0.1, 0.0]])
    std = np.array([100.0, 1.0, 1.0, 0.2, 0.2])
    np.testing.assert_allclose(weighting.label_weights(bounds, std), [[100.0, 4.0, 0.0, 4.0, 0.0]])


def test_sigma_grid_spans_the_range_in_steps_of_at_most_the_ratio():
    np.testing.assert_allclose(weighting.sigma_grid(200.0, 400.0), [200.0, 400.0])
    grid = weighting.sigma_grid(200.0, 900.0)
    assert grid[0] == pytest.approx(200.0) and grid[-1] == pytest.approx(900.0)
    assert np.all(grid[1:] / grid[:-1] <= weighting.GRID_RATIO + 1e-9) and len(grid) == 4
    assert list(weighting.sigma_grid(300.0, 300.0)) == [300.0]


def test_drawn_noise_bounds_interpolate_log_log_and_decode_sigma():
    """A bound growing like sigma^p is a straight line in log-log: interpolated exactly; the
    sigma of each row is read back from the scaled conditioning input."""
    sigmas = np.array([200.0, 400.0])
    base = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 1.0, 1.0, 1.0]])
    power = np.array([1.0, 1.5, 1.0, 0.5, 1.0])
    table = base[:, None, :] * (sigmas[None, :, None] / 200.0) ** power
    scaler = Standardizer(mean=[0.7, 300.0], std=[0.1, 50.0])  # psf_fwhm, sigma
    bounds = weighting.BoundWeights(table, np.ones((2, 5)), sigmas, 1, scaler)
    sigma = np.array([283.0, 350.0])
    expected = base * (sigma[:, None] / 200.0) ** power
    np.testing.assert_allclose(bounds.at(np.array([0, 1]), sigma), expected, rtol=1e-9)
    extras = (scaler.transform(np.column_stack([[0.6, 0.9], sigma])),)
    np.testing.assert_allclose(bounds(np.array([0, 1]), extras), 1 / expected**2, rtol=1e-5)
    with pytest.raises(InputError, match="sigma"):
        bounds.at(np.array([0]))


def test_config_rejects_bad_weighting():
    with pytest.raises(InputError, match=r"loss_weighting = 'crb'; choose from \('none', 'bound'"):
        training.TrainingConfig(loss_weighting="crb")
    with pytest.raises(InputError, match="uncertainty"):
        training.TrainingConfig(loss_weighting="bound", uncertainty=True)
    assert training.TrainingConfig().loss_weighting == "none"


def test_validation_loss_is_the_mean_squared_normalized_error(small_sets, tmp_path, keras):
    """With the set's own noise, the validation loss of a one-epoch fit is the mean over the
    validation galaxies and labels of ((prediction - truth) / bound)^2, bounds from the JAX
    model; the bounds are cached in the folder given, not beside the set."""
    config = training.TrainingConfig(epochs=1, batch_size=8, model_kwargs=TINY,
                                     loss_weighting="bound", augment=False)
    saved = training.fit(config, small_sets["random"], verbose=0, bound_cache=tmp_path)
    assert crb_sets.cache_path(small_sets["random"], "jax", folder=tmp_path).is_file()
    assert not crb_sets.cache_path(small_sets["random"], "jax").exists()
    ds = files.load_dataset(small_sets["random"])
    _, val = training.split_rows(len(ds), config.validation_fraction, config.seed)
    pred, _ = saved.predict_dataset(ds.subset(val))
    crb = crb_sets.for_dataset(small_sets["random"], renderer="jax", cache_dir=tmp_path,
                               progress=False)[val]
    expected = np.mean(((pred - ds.label[val]) / crb) ** 2)
    assert saved.info["best_val_loss"] == pytest.approx(expected, rel=2e-3)
    assert saved.info["config"]["loss_weighting"] == "bound"


def test_logarithmic_labels_are_weighed_by_the_bound_of_their_logarithm(small_sets, tmp_path, keras):
    """Flux and r learned as logarithms: their weight is the bound of the logarithm,
    bound / value (first order), so the validation loss is the mean over galaxies and labels of
    (log(prediction / truth) * truth / bound)^2 for those two and ((prediction - truth) /
    bound)^2 for the others."""
    logs = ("flux", "sersic_r")
    config = training.TrainingConfig(epochs=1, batch_size=8, model_kwargs=TINY, augment=False,
                                     loss_weighting="bound", log_labels=logs)
    saved = training.fit(config, small_sets["random"], verbose=0, bound_cache=tmp_path)
    ds = files.load_dataset(small_sets["random"])
    _, val = training.split_rows(len(ds), config.validation_fraction, config.seed)
    pred, _ = saved.predict_dataset(ds.subset(val))
    truth = ds.label[val]
    crb = crb_sets.for_dataset(small_sets["random"], renderer="jax", cache_dir=tmp_path,
                               progress=False)[val]
    log = np.array([p in logs for p in LABEL_COLUMNS])
    error = np.where(log, np.log(pred / truth) * truth, pred - truth) / crb
    assert saved.info["best_val_loss"] == pytest.approx(np.mean(error**2), rel=2e-3)


def test_drawn_noise_fit_caches_bounds_per_noise_level(small_sets, tmp_path, keras):
    config = training.TrainingConfig(epochs=1, batch_size=8, model_kwargs=TINY, noise="fresh",
                                     noise_sigma=(200.0, 400.0), conditioning=("sigma",),
                                     loss_weighting="bound")
    saved = training.fit(config, small_sets["random"], verbose=0, bound_cache=tmp_path)
    assert np.isfinite(saved.info["best_val_loss"])
    for sigma in (200.0, 400.0):
        assert crb_sets.cache_path(small_sets["random"], "jax", sigma, tmp_path).is_file()


def test_per_label_weights_have_mean_one_over_the_training_rows(small_sets, tmp_path):
    ds = files.load_dataset(small_sets["random"], fields=())
    scalers = {"label": Standardizer.fit(ds.label, axis=0)}
    train = np.arange(0, len(ds), 2)
    config = training.TrainingConfig(loss_weighting="bound-per-label")
    bounds = weighting.BoundWeights.for_training(ds, config, scalers, tmp_path, train=train)
    np.testing.assert_allclose(bounds(train).mean(axis=0), 1.0, rtol=1e-5)
    plain = weighting.BoundWeights.for_training(ds, training.TrainingConfig(loss_weighting="bound"),
                                                scalers, tmp_path)
    assert plain.scale is None
    np.testing.assert_allclose(bounds(train), plain(train) * bounds.scale, rtol=1e-6)


def test_cap_limits_each_label_to_a_multiple_of_its_median(small_sets, tmp_path):
    ds = files.load_dataset(small_sets["random"], fields=())
    scalers = {"label": Standardizer.fit(ds.label, axis=0)}
    config = training.TrainingConfig(loss_weighting="bound", loss_weight_cap=2.0)
    capped = weighting.BoundWeights.for_training(ds, config, scalers, tmp_path)
    plain = weighting.BoundWeights.for_training(ds, training.TrainingConfig(loss_weighting="bound"),
                                                scalers, tmp_path)
    rows = np.arange(len(ds))
    limit = 2.0 * np.median(plain(rows), axis=0)
    np.testing.assert_allclose(capped(rows), np.minimum(plain(rows), limit), rtol=1e-6)
    assert (capped(rows) < plain(rows)).any()
    with pytest.raises(InputError, match="needs a bound weighting"):
        training.TrainingConfig(loss_weight_cap=10.0)
    with pytest.raises(InputError, match="loss_weight_cap = 0.5 must be"):
        training.TrainingConfig(loss_weighting="bound", loss_weight_cap=0.5)


def test_weighted_labels_leave_the_others_the_plain_error(small_sets, tmp_path):
    ds = files.load_dataset(small_sets["random"], fields=())
    scalers = {"label": Standardizer.fit(ds.label, axis=0)}
    train = np.arange(0, len(ds), 2)
    labels = ("flux", "sersic_r")
    config = training.TrainingConfig(loss_weighting="bound-per-label", loss_weighted_labels=labels)
    some = weighting.BoundWeights.for_training(ds, config, scalers, tmp_path, train=train)
    every = weighting.BoundWeights.for_training(
        ds, training.TrainingConfig(loss_weighting="bound-per-label"), scalers, tmp_path, train=train)
    rows = np.arange(len(ds))
    chosen = [LABEL_COLUMNS.index(p) for p in labels]
    others = [j for j in range(len(LABEL_COLUMNS)) if j not in chosen]
    np.testing.assert_allclose(some(rows)[:, chosen], every(rows)[:, chosen], rtol=1e-6)
    np.testing.assert_array_equal(some(rows)[:, others], 1.0)
    np.testing.assert_allclose(some(train)[:, chosen].mean(axis=0), 1.0, rtol=1e-5)
    assert not np.allclose(every(rows)[:, others], 1.0)  # the option changed something
    with pytest.raises(InputError, match=r"loss_weighted_labels \['size'\] not understood; "
                                         r"choose one or more of \('flux'"):
        training.TrainingConfig(loss_weighting="bound-per-label", loss_weighted_labels=("flux", "size"))
    with pytest.raises(InputError, match="needs loss_weighting = 'bound-per-label'"):
        training.TrainingConfig(loss_weighting="bound", loss_weighted_labels=("flux",))


def test_label_bound_weights_are_each_labels_inverse_mean_squared_bound(small_sets, tmp_path):
    """``"label-bound"``: one weight per label, 1 / mean over the training rows of (bound in
    standardized units)^2, the same for every row; a network whose error on every galaxy is c
    bounds then has each label's weighted term c^2, as the metric does."""
    ds = files.load_dataset(small_sets["random"], fields=())
    logs = ("flux", "sersic_r")
    scalers = {"label": Standardizer.fit(ds.label, axis=0, log=[p in logs for p in LABEL_COLUMNS])}
    train = np.arange(0, len(ds), 2)
    config = training.TrainingConfig(loss_weighting="label-bound", log_labels=logs)
    weights = weighting.LabelWeights.for_training(ds, config, scalers, tmp_path, train=train)
    crb = crb_sets.for_dataset(small_sets["random"], renderer="jax", cache_dir=tmp_path,
                               progress=False)
    scaled = crb[train] / scalers["label"].units_per_step(ds.label[train])
    np.testing.assert_allclose(weights.weights, 1 / np.mean(scaled**2, axis=0), rtol=1e-5)
    rows = np.array([3, 0, 7])
    np.testing.assert_allclose(weights(rows), np.tile(weights.weights, (3, 1)))
    error = 1.7 * scaled  # every galaxy 1.7 bounds off, in standardized units
    np.testing.assert_allclose(np.mean(weights(train) * error**2, axis=0), 1.7**2, rtol=1e-5)
    sample = weighting.LabelWeights.for_training(ds, config, scalers, tmp_path, train=train, sample=5)
    assert not np.allclose(sample.weights, weights.weights)  # a sample of 5 rows, not all 20
    with pytest.raises(InputError, match="needs a bound weighting"):
        training.TrainingConfig(loss_weighting="label-bound", loss_weight_cap=10.0)


def test_label_bound_fit_weighs_its_validation_loss_and_records_the_weights(small_sets, tmp_path, keras):
    """The validation loss of a one-epoch fit is the mean over labels of each label's weight
    times its mean squared standardized error, and training.json keeps the five weights."""
    config = training.TrainingConfig(epochs=1, batch_size=8, model_kwargs=TINY, augment=False,
                                     loss_weighting="label-bound")
    saved = training.fit(config, small_sets["random"], verbose=0, bound_cache=tmp_path)
    weights = np.array(saved.info["label_loss_weights"])
    assert weights.shape == (5,) and np.all(weights > 0)
    ds = files.load_dataset(small_sets["random"])
    _, val = training.split_rows(len(ds), config.validation_fraction, config.seed)
    pred, _ = saved.predict_dataset(ds.subset(val))
    error = (pred - ds.label[val]) / np.asarray(saved.scalers["label"].std)
    expected = np.mean(weights * np.mean(error**2, axis=0))
    assert saved.info["best_val_loss"] == pytest.approx(expected, rel=2e-3)


def test_label_weights_multiply_each_labels_squared_error(small_sets, keras):
    """Explicit ``label_weights``: the validation loss is the mean over labels of each weight
    times the label's mean squared standardized error; bad weights get one-line errors."""
    chosen = (4.0, 1.0, 0.5, 2.0, 1.0)
    config = training.TrainingConfig(epochs=1, batch_size=8, model_kwargs=TINY, augment=False,
                                     label_weights=chosen)
    saved = training.fit(config, small_sets["random"], verbose=0)
    assert saved.info["label_loss_weights"] == list(chosen)
    ds = files.load_dataset(small_sets["random"])
    _, val = training.split_rows(len(ds), config.validation_fraction, config.seed)
    pred, _ = saved.predict_dataset(ds.subset(val))
    error = (pred - ds.label[val]) / np.asarray(saved.scalers["label"].std)
    expected = np.mean(np.array(chosen) * np.mean(error**2, axis=0))
    assert saved.info["best_val_loss"] == pytest.approx(expected, rel=2e-3)
    with pytest.raises(InputError, match=r"label_weights = \(1.0, 1.0\) must be 5 positive numbers"):
        training.TrainingConfig(label_weights=(1, 1))
    with pytest.raises(InputError, match="must be 5 positive"):
        training.TrainingConfig(label_weights=(1, 1, 0, 1, 1))
    with pytest.raises(InputError, match="needs loss_weighting = 'none'"):
        training.TrainingConfig(label_weights=(2, 1, 1, 1, 1), loss_weighting="bound")
