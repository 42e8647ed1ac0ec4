"""Two levers of the training recipe: labels learned as their logarithm (`Standardizer.log`) and
a centred crop of the input (`centre_crop`), each through training, saving and predicting."""
import dataclasses

import numpy as np
import pytest

from galaxies.conventions import LABEL_COLUMNS
from galaxies.networks import training
from galaxies.networks.training import likelihood
from galaxies.networks.training.scaling import Standardizer, centre_crop
from galaxies.runtime.errors import InputError
from galaxies.storage import files

TINY = dict(entry_filters=8, block_filters=8, blocks=1, exit_filters=8)
LOG = [True, False, True, False, False]  # flux and radius


def labels(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(3e4, 4e5, n), rng.uniform(0.5, 6, n), rng.uniform(0.1, 0.6, n),
                            rng.uniform(-0.5, 0.5, n), rng.uniform(-0.5, 0.5, n)])


def test_a_logarithmic_label_is_standardized_after_its_logarithm_and_comes_back():
    y = labels()
    scaler = Standardizer.fit(y, axis=0, log=LOG)
    z = scaler.transform(y)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, rtol=1e-4)
    np.testing.assert_allclose(scaler.mean[0], np.log(y[:, 0]).mean(), rtol=1e-12)
    np.testing.assert_allclose(scaler.inverse(z), y, rtol=2e-6)
    assert Standardizer.fit(y, axis=0, log=[False] * 5).log == []  # stored as plain when none


def test_a_linear_label_comes_back_without_an_exponential(recwarn):
    """A linear flux beside logarithmic n and r (a lever): its value in the thousands is never
    put through the exponential, so no overflow is warned of and it comes back as itself."""
    y = labels()
    scaler = Standardizer.fit(y, axis=0, log=[False, True, True, False, False])
    np.testing.assert_allclose(scaler.inverse(scaler.transform(y)), y, rtol=2e-6)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_units_per_step_is_the_derivative_of_the_inverse():
    """Against central differences of `inverse`, on logarithmic and linear labels alike."""
    scaler = Standardizer.fit(labels(), axis=0, log=LOG)
    z = np.array([[0.3, -0.4, 1.1, 0.2, -0.7]])
    h = 1e-6
    numeric = np.array([(scaler.inverse(z + h * e) - scaler.inverse(z - h * e))[0, j] / (2 * h)
                        for j, e in enumerate(np.eye(5))])
    np.testing.assert_allclose(scaler.units_per_step(scaler.inverse(z))[0], numeric, rtol=1e-6)


def test_a_scaler_saved_before_the_logarithm_existed_still_loads():
    old = Standardizer(mean=[1.0, 2.0], std=[3.0, 4.0])  # scalers.json without "log"
    np.testing.assert_allclose(old.inverse(old.transform([[4.0, 6.0]])), [[4.0, 6.0]], rtol=1e-6)
    np.testing.assert_allclose(old.units_per_step([[4.0, 6.0]]), [[3.0, 4.0]])


def test_a_non_positive_logarithmic_label_is_refused_in_one_line():
    y = labels(5)
    y[2, 0] = -1.0
    with pytest.raises(InputError, match="logarithm is -1.*positive"):
        Standardizer.fit(y, axis=0, log=LOG)


def test_the_crop_is_centred_and_keeps_the_grid_symmetries():
    images = np.random.default_rng(1).normal(size=(3, 64, 64))
    crop = centre_crop(images, 48)
    np.testing.assert_array_equal(crop, images[:, 8:56, 8:56])
    y = labels(3)
    for element in range(8):  # oriented then cropped = cropped then oriented
        turned, _ = training.dihedral(images, y, element)
        both, _ = training.dihedral(crop, y, element)
        np.testing.assert_array_equal(centre_crop(turned, 48), both)
    assert centre_crop(images, None) is images
    with pytest.raises(InputError, match="crop = 47"):
        centre_crop(images, 47)
    with pytest.raises(InputError, match="crop = 66"):
        centre_crop(images, 66)


@pytest.mark.parametrize("kwargs, message", [
    (dict(log_labels=("g1",)), "log_labels"),
    (dict(log_labels=("flux", "flux")), "log_labels"),
    (dict(crop=47), "crop"), (dict(crop=8), "crop"), (dict(crop=True), "crop")])
def test_config_refuses_bad_levers(kwargs, message):
    with pytest.raises(InputError, match=message):
        training.TrainingConfig(**kwargs)


@pytest.fixture(scope="module")
def levered(small_sets, tmp_path_factory):
    """A tiny network with the flux and radius as logarithms and a 48 x 48 crop, one with a
    standard deviation per label too; both saved."""
    pytest.importorskip("keras")
    folder = tmp_path_factory.mktemp("levers")
    config = training.TrainingConfig(epochs=2, batch_size=8, model_kwargs=TINY, crop=48,
                                     log_labels=("flux", "sersic_r"))
    plain = training.fit(config, small_sets["random"], folder / "log-crop_v1", verbose=0)
    nll = training.fit(dataclasses.replace(config, uncertainty=True, noise="fresh"),
                       small_sets["random"], folder / "log-crop-nll_v1", verbose=0)
    return plain, nll


def test_a_levered_network_reads_the_crop_and_predicts_in_label_units(levered, small_sets):
    plain, _ = levered
    assert tuple(plain.model.inputs[0].shape[1:3]) == (48, 48)
    ds = files.load_dataset(small_sets["random"])
    train, _ = training.split_rows(len(ds), 0.1, 0)
    np.testing.assert_allclose(plain.scalers["label"].mean[0], np.log(ds.label[train, 0]).mean(), rtol=1e-5)
    pred, _ = plain.predict_dataset(ds)
    assert pred.shape == (len(ds), 5) and np.all(pred[:, [0, 2]] > 0)
    loaded = training.SavedModel.load(plain.path)
    assert loaded.config.crop == 48 and loaded.scalers["label"].log == LOG
    np.testing.assert_array_equal(loaded.predict_dataset(ds)[0], pred)


def test_a_logarithmic_label_s_std_is_carried_to_label_units(levered, small_sets):
    """``pred_std`` is exp(s) standardized units times the label per unit at the estimate."""
    _, nll = levered
    ds = files.load_dataset(small_sets["fixed"])
    pred, std = nll.predict_dataset(ds)
    out = nll.forward(nll.inputs(ds.img, ds.psf_fwhm, ds.sigma))
    scaler = nll.scalers["label"]
    expected = np.exp(out[:, 5:]) * np.asarray(scaler.std) * np.where(LOG, pred, 1.0)
    np.testing.assert_allclose(std, expected, rtol=1e-5)


def test_the_likelihood_tuner_works_in_a_logarithmic_label_space(levered, small_sets):
    """Toward the network's own estimate the loss is zero; the weights at each image follow
    the label per standardized unit there (the Fisher matrix scaled by it on both sides)."""
    plain, _ = levered
    ds = files.load_dataset(small_sets["fixed"])
    tuner = likelihood.LikelihoodTuner(plain, target="mle-fisher")
    own = tuner.estimates(ds.img[:4], ds.psf_fwhm[:4], ds.sigma[:4])
    weight = np.broadcast_to(np.eye(5), (4, 5, 5))
    assert tuner.step_toward(ds.img[:4], ds.psf_fwhm[:4], ds.sigma[:4], own, weight) < 1e-8
    per_step = plain.scalers["label"].units_per_step(own)
    fisher = np.broadcast_to(np.diag([1e-8, 4.0, 400.0, 100.0, 100.0]), (4, 5, 5)).copy()
    targets = likelihood.MLETargets(own, np.ones((4, 5)), fisher, np.ones(4, bool))
    w = likelihood.mle_weights(targets, per_step, "fisher", cap=1e9)
    for b in range(4):
        np.testing.assert_allclose(w[b], np.diag(per_step[b]) @ fisher[b] @ np.diag(per_step[b]))
    assert LABEL_COLUMNS[0] == "flux"
