"""The Xception estimator: builder, training, saved models, predictions files, uncertainty."""
import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest

from galaxies.evaluation import estimators
from galaxies.networks import training
from galaxies.networks.training import losses
from galaxies.networks.training import saved as saved_format
from galaxies.networks.training.uncertainty_head import check_base
from galaxies.simulation.render import GalaxyRenderer
from galaxies.storage import files

TINY = dict(entry_filters=8, block_filters=8, blocks=1, exit_filters=8)


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


@pytest.fixture(scope="module")
def trained(small_sets, tmp_path_factory, keras):
    """Two tiny models trained on the 40-galaxy set: a plain one and one with sigma as a known
    input and a standard deviation per label."""
    folder = tmp_path_factory.mktemp("models")
    plain = training.fit(training.TrainingConfig(epochs=6, batch_size=8, learning_rate=3e-3,
                                           model_kwargs=TINY, patience=6),
                      small_sets["random"], folder / "xception_v1", verbose=0)
    nll = training.fit(training.TrainingConfig(epochs=2, batch_size=8, uncertainty=True,
                                         conditioning=("sigma",), model_kwargs=TINY),
                    small_sets["random"], folder / "xception-nll_v1", estimator="xception-nll",
                    verbose=0)
    return {"plain": plain, "nll": nll}


# ------------------------------------------------------------------------------ builder

@pytest.mark.parametrize("kwargs, n_conditioning, n_outputs", [
    ({}, 0, 5), ({"stem": "conv"}, 0, 5), ({"patch": 8}, 2, 10), ({"patch": 2, **TINY}, 1, 5)])
def test_builder_output_shape(keras, kwargs, n_conditioning, n_outputs):
    from galaxies.networks.models import get_builder
    model = get_builder("xception")((64, 64, 2), n_conditioning, n_outputs, **kwargs)
    x = [np.zeros((3, 64, 64, 2), np.float32)]
    if n_conditioning:
        x.append(np.zeros((3, n_conditioning), np.float32))
    assert model.predict_on_batch(x if len(x) > 1 else x[0]).shape == (3, n_outputs)


def test_seed_architecture_is_kept(keras):
    from galaxies.networks.models.xception import ORIGINAL_STUDY, build
    model = build((64, 64, 1), **ORIGINAL_STUDY)
    assert model.count_params() == 86821  # the seed's layout: 5x5/2 conv, 8 blocks at 32 x 32
    assert model.get_layer(index=1).strides == (2, 2)


@pytest.mark.parametrize("n_conditioning", [0, 2])
def test_linear_features_reach_the_output_past_every_activation(keras, n_conditioning):
    """With every weight but the linear path's at zero, the output is the projection of the
    pixels itself (here their sum): an amplitude no activation has bent."""
    from galaxies.networks.models.xception import build
    model = build((64, 64, 1), n_conditioning, 5, linear_features=3, **TINY)
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    projection = model.get_layer("linear_features")
    projection.set_weights([np.ones_like(projection.get_weights()[0]), np.zeros(3, np.float32)])
    out = model.get_layer("labels")
    kernel = np.zeros_like(out.get_weights()[0])
    kernel[-3, 0] = 1.0  # the first projection, the last inputs of the output layer, to flux
    out.set_weights([kernel, np.zeros(5, np.float32)])
    image = np.random.default_rng(1).normal(size=(4, 64, 64, 1)).astype(np.float32) * 50
    x = [image, np.ones((4, n_conditioning), np.float32)] if n_conditioning else image
    flux = model.predict_on_batch(x)[:, 0]
    np.testing.assert_allclose(flux, image.sum(axis=(1, 2, 3)), rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("kwargs, message", [({"stem": "pixels"}, "stem"), ({"patch": 5}, "multiple"),
                                            ({"blocks": -1}, "blocks"), ({"block_filters": 0}, "block_filters"),
                                            ({"linear_features": -2}, "linear_features")])
def test_builder_rejects_bad_sizes(keras, kwargs, message):
    from galaxies.networks.models.xception import build
    with pytest.raises(ValueError, match=message):
        build((64, 64, 1), **kwargs)


# ------------------------------------------------------------------------- augmentation

@pytest.mark.parametrize("element", range(8))
def test_dihedral_matches_the_simulation(element):
    """Turning or mirroring a rendered galaxy gives the galaxy rendered with the transformed
    shear: the augmentation teaches the network nothing false."""
    renderer = GalaxyRenderer()
    label = np.array([[1e5, 1.5, 0.4, 0.3, -0.2]])
    image = renderer.draw(*label[0], 0.6)[None]
    turned, new_label = training.dihedral(image, label, element)
    expected = renderer.draw(*new_label[0], 0.6)
    np.testing.assert_allclose(turned[0], expected, atol=1e-3 * image.max())
    assert new_label[0, :3].tolist() == label[0, :3].tolist()


def test_dihedral_rejects_unknown_element():
    with pytest.raises(ValueError, match="0..7"):
        training.dihedral(np.zeros((1, 4, 4)), np.zeros((1, 5)), 8)


# ------------------------------------------------------------------------------ training

def test_training_lowers_the_loss(trained):
    history = trained["plain"].history()
    assert list(history.columns[:1]) == ["epoch"] and "learning_rate" in history
    assert history["loss"].iloc[-1] < 0.8 * history["loss"].iloc[0]
    info = trained["plain"].info
    assert info["train_rows"] + info["validation_rows"] == 40 and info["epochs_run"] >= 1


def test_config_validation():
    with pytest.raises(ValueError, match="conditioning"):
        training.TrainingConfig(conditioning=("snr",))
    with pytest.raises(ValueError, match="schedule"):
        training.TrainingConfig(schedule="step")
    with pytest.raises(ValueError, match="learning_rate"):
        training.TrainingConfig(learning_rate=0)
    config = training.TrainingConfig.from_profile("smoke", epochs=3)
    assert config.epochs == 3 and config.batch_size == 64


def test_scalers_fitted_on_training_rows_only(trained, small_sets):
    saved = trained["plain"]
    ds = files.load_dataset(small_sets["random"])
    train_rows, _ = training.split_rows(len(ds), 0.1, 0)
    np.testing.assert_allclose(saved.scalers["label"].mean, ds.label[train_rows].mean(axis=0), rtol=1e-5)


def test_train_rows_keeps_the_validation_rows(small_sets, keras):
    """``train_rows`` trains on the first rows of the seeded training split; the validation
    rows are the whole split's, whatever the number of training rows."""
    config = training.TrainingConfig(epochs=1, batch_size=8, model_kwargs=TINY, train_rows=12)
    saved = training.fit(config, small_sets["random"], verbose=0)
    ds = files.load_dataset(small_sets["random"])
    train, val = training.split_rows(len(ds), 0.1, 0)
    assert saved.info["train_rows"] == 12 and saved.info["validation_rows"] == len(val) == 4
    np.testing.assert_allclose(saved.scalers["label"].mean, ds.label[train[:12]].mean(axis=0), rtol=1e-5)
    with pytest.raises(ValueError, match="leaves 36 to train on"):
        training.fit(training.TrainingConfig(epochs=1, model_kwargs=TINY, train_rows=37),
                     small_sets["random"], verbose=0)
    with pytest.raises(ValueError, match="train_rows"):
        training.TrainingConfig(train_rows=0)


def test_weight_average_sets_the_mean_of_the_last_epochs_weights(keras):
    """The callback leaves the model at the mean of its weights at the end of the last two of
    three epochs, recorded independently by a callback before it."""
    from galaxies.networks.training.loop import weight_average

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append([w.copy() for w in model.get_weights()]))
    average = weight_average(last=2)
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(16, 3)), rng.normal(size=(16, 2)), epochs=3, batch_size=4,
              callbacks=[record, average], verbose=0)
    assert average.averaged == 2 and len(seen) == 3
    for kept, first, second in zip(model.get_weights(), seen[1], seen[2]):
        np.testing.assert_allclose(kept, (first + second) / 2, rtol=1e-6)
    assert not np.allclose(seen[1][0], seen[2][0])  # the mean is not one epoch's weights


def test_average_epochs_keeps_and_records_the_averaged_network(small_sets, keras):
    """``average_epochs``: training.json says how many epochs were averaged and the averaged
    weights' validation loss, which is the saved network's (its mean squared standardized
    error on the validation rows); bad values get one-line errors."""
    config = training.TrainingConfig(epochs=3, batch_size=8, model_kwargs=TINY, augment=False,
                                     average_epochs=2, patience=3)
    saved = training.fit(config, small_sets["random"], verbose=0)
    assert saved.info["averaged_epochs"] == 2
    ds = files.load_dataset(small_sets["random"])
    _, val = training.split_rows(len(ds), config.validation_fraction, config.seed)
    pred, _ = saved.predict_dataset(ds.subset(val))
    error = (pred - ds.label[val]) / np.asarray(saved.scalers["label"].std)
    assert saved.info["averaged_val_loss"] == pytest.approx(np.mean(error**2), rel=2e-3)
    with pytest.raises(ValueError, match=r"average_epochs = 4 must be a whole number from 0 to epochs = 3"):
        training.TrainingConfig(epochs=3, average_epochs=4)
    with pytest.raises(ValueError, match="average_epochs = -1"):
        training.TrainingConfig(average_epochs=-1)


# ---------------------------------------------------------------------- saved models

def test_save_load_round_trip_gives_identical_predictions(trained, small_sets, tmp_path):
    saved = trained["nll"]
    ds = files.load_dataset(small_sets["fixed"])
    before = saved.predict_dataset(ds)
    copy = saved.save(tmp_path / "copy")
    loaded = training.SavedModel.load(copy)
    after = loaded.predict_dataset(ds)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert json.loads((copy / saved_format.SCALERS_FILE).read_text()).keys() == {"image", "conditioning", "label"}
    assert loaded.info["config"]["conditioning"] == ["sigma"] and loaded.uncertainty


def test_load_names_what_is_missing(tmp_path):
    (tmp_path / "model.keras").write_text("")
    with pytest.raises(FileNotFoundError, match="scalers.json"):
        training.SavedModel.load(tmp_path)


def test_predict_checks_its_inputs(trained):
    with pytest.raises(ValueError, match=r"\(N, 64, 64\)"):
        trained["plain"].predict(np.zeros((2, 32, 32)))
    with pytest.raises(ValueError, match="needs sigma"):
        trained["nll"].predict(np.zeros((2, 64, 64)))


# ------------------------------------------------------------------------- predictions

def test_predictions_file_contract(trained, small_sets, tmp_path):
    out = estimators.load(trained["plain"].path).predict_file(small_sets["fixed"], tmp_path / "p.h5", limit=10)
    pred = files.load_predictions(out)
    assert pred.pred.shape == (10, 5) and pred.pred.dtype == np.float32
    assert pred.index.tolist() == list(range(10)) and pred.pred_std is None
    assert pred.estimator == "xception" and pred.dataset == "snr60"
    assert pred.attrs["trainset"] == "v1" and 0 < pred.seconds_per_image < 1
    assert np.all(np.isfinite(pred.pred)) and np.all(pred.pred[:, 0] > 0)  # flux in e-, not scaled


@pytest.mark.parametrize("limit", [33, 36, 40])
def test_predictions_in_blocks_are_bitwise_those_of_one_pass(trained, small_sets, tmp_path,
                                                              monkeypatch, limit):
    """Blocks of 8 rows, batches of 4 (a short last block joined to the one before, so the last
    batch is padded as in one pass) and a two-stage estimator (batches of 2 and 4): the same
    bits as the whole set predicted at once."""
    monkeypatch.setattr(estimators, "BLOCK_ROWS", 8)
    network = estimators.Network(trained["plain"])
    network.batch_size = 4
    whole = files.load_dataset(small_sets["random"], rows=limit)
    expected, _ = trained["plain"].predict_dataset(whole, batch_size=4)
    out = files.load_predictions(network.predict_file(small_sets["random"], tmp_path / "p.h5", limit=limit))
    np.testing.assert_array_equal(out.pred, expected.astype(np.float32))
    np.testing.assert_array_equal(out.index, np.arange(limit))

    class Halve:  # a denoiser whose numbers depend on its batches (as a network's may)
        path = "halve"

        def denoise(self, images, batch_size=64, progress=True):
            return np.concatenate([im / (2 + len(im)) for im in
                                   np.array_split(images, range(batch_size, len(images), batch_size))])
    two = estimators.TwoStage(Halve(), network)
    two.denoise_batch = 2
    clean = Halve().denoise(whole.img, batch_size=2)
    expected, _ = trained["plain"].predict_dataset(whole, images=clean, batch_size=4)
    out = files.load_predictions(two.predict_file(small_sets["random"], tmp_path / "t.h5", limit=limit))
    np.testing.assert_array_equal(out.pred, expected.astype(np.float32))


def test_predicting_a_file_that_breaks_the_contract(trained, small_sets, tmp_path, without_field):
    from click.testing import CliRunner

    from galaxies.interfaces.cli import main
    broken = without_field(small_sets["fixed"], "sigma")
    with pytest.raises(files.FileFormatError, match="sigma"):
        estimators.load(trained["plain"].path).predict_file(broken, tmp_path / "p.h5")
    result = CliRunner().invoke(main, ["predict", str(trained["plain"].path), str(broken),
                                       str(tmp_path / "p.h5")])
    assert result.exit_code == 2 and "galaxies: error:" in result.output and "sigma" in result.output
    assert not (tmp_path / "p.h5").exists()


def test_uncertainty_output(trained, small_sets, tmp_path):
    from galaxies.evaluation import evaluate
    out = estimators.Network(trained["nll"]).predict_file(small_sets["fixed"], tmp_path / "nll.h5")
    pred = files.load_predictions(out)
    assert pred.pred_std.shape == (16, 5) and np.all(pred.pred_std > 0)
    assert pred.estimator == "xception-nll"
    table = evaluate.calibration(pred, small_sets["fixed"])
    assert np.all(np.isfinite(table["z std"])) and table["coverage 68%"].between(0, 100).all()


def test_std_head_keeps_the_estimators_means(trained, small_sets, tmp_path):
    """A standard-deviation head on a trained estimator: its means are the estimator's to the
    last digit after training and reloading, only the head's weights move, it trains on the
    estimator's split and scalers, and the head's own error falls."""
    plain = trained["plain"]
    frozen = [w.copy() for w in plain.model.get_weights()]
    config = training.TrainingConfig(**{**plain.info["config"], "uncertainty": True,
                                        "epochs": 8, "learning_rate": 1e-2, "patience": 8})
    head = training.fit(config, small_sets["random"], tmp_path / "head", base=plain, verbose=0)
    for before, after in zip(frozen, plain.model.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert all(layer.trainable for layer in plain.model.layers)  # the estimator is not touched
    again = training.SavedModel.load(tmp_path / "head")
    assert again.uncertainty and again.info["frozen_base"] == str(plain.path)
    assert again.info["train_rows"] == plain.info["train_rows"]
    assert again.scalers["label"] == plain.scalers["label"]
    assert again.scalers["image"] == plain.scalers["image"]
    ds = files.load_dataset(small_sets["fixed"])
    mean, _ = plain.predict_dataset(ds)
    head_mean, std = again.predict_dataset(ds)
    np.testing.assert_array_equal(head_mean, mean)
    assert std.shape == (16, 5) and np.all(np.isfinite(std) & (std > 0))
    history = head.history()
    nll = (history["loss"] - history["mean_mse"]).to_numpy()  # the head's own term
    assert nll[-1] < nll[0]
    assert head.info["parameters"] > plain.info["parameters"]


def test_std_head_refuses_another_recipe(trained, small_sets, tmp_path):
    plain = trained["plain"]
    wrong = training.TrainingConfig(**{**plain.info["config"], "uncertainty": True, "crop": 48})
    with pytest.raises(ValueError, match="crop = 48"):
        training.fit(wrong, small_sets["random"], base=plain, verbose=0)
    with pytest.raises(ValueError, match="uncertainty = True"):
        training.fit(plain.config, small_sets["random"], base=plain, verbose=0)
    with pytest.raises(ValueError, match="already predicts"):
        training.fit(trained["nll"].config, small_sets["random"], base=trained["nll"], verbose=0)
    assert not (tmp_path / "head").exists()


def test_std_head_ignores_the_estimators_label_weights():
    """The estimator's label weights shaped its means; the head, its means frozen, trains by
    the negative log-likelihood and may leave them out, while the data and inputs must match."""
    estimator = training.TrainingConfig(label_weights=(4, 1, 1, 1, 1), crop=48)
    base = SimpleNamespace(name="weighted", uncertainty=False, config=estimator)
    head = dataclasses.replace(estimator, uncertainty=True, label_weights=None)
    check_base(head, base)
    with pytest.raises(ValueError, match="crop = 40"):
        check_base(dataclasses.replace(head, crop=40), base)


def test_decoupled_loss_trains_means_like_mse(keras):
    """The means' gradient of the decoupled loss is the MSE's: asking for an uncertainty does
    not change what the means learn."""
    from keras import ops
    y = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    out = np.random.default_rng(1).normal(size=(4, 10)).astype(np.float32)
    value = float(ops.convert_to_numpy(ops.mean(losses.decoupled_nll(y, out))))
    mse = float(np.mean((y - out[:, :5]) ** 2))
    log_std = out[:, 5:]
    nll = float(np.mean(0.5 * ((y - out[:, :5]) * np.exp(-log_std)) ** 2 + log_std))
    assert value == pytest.approx(mse + nll, rel=1e-5)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        variable = tf.Variable(out)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(losses.decoupled_nll(y, variable))
        grad = tape.gradient(loss, variable).numpy()
        np.testing.assert_allclose(grad[:, :5], -2 * (y - out[:, :5]) / y.size, rtol=1e-4)


def test_cli_train_and_predict(small_sets, tmp_path, keras):
    from click.testing import CliRunner

    from galaxies.interfaces.cli import main
    runner = CliRunner()
    result = runner.invoke(main, ["train", str(small_sets["random"]), str(tmp_path / "m"),
                                  "--model", "xception", "--epochs", "1", "--limit", "20",
                                  "--condition", "sigma", "--arch", "blocks=1",
                                  "--arch", "block_filters=8"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m" / "training.json").read_text())["train_rows"] == 18
    result = runner.invoke(main, ["predict", str(tmp_path / "m"), str(small_sets["fixed"]),
                                  str(tmp_path / "p.h5")])
    assert result.exit_code == 0, result.output
    assert len(files.load_predictions(tmp_path / "p.h5")) == 16
    result = runner.invoke(main, ["train", str(small_sets["random"]), str(tmp_path / "m2"),
                                  "--condition", "snr"])
    assert result.exit_code == 2 and "galaxies: error:" in result.output


def test_variants_name_their_files_and_options():
    from galaxies.evaluation.experiments import xception as variants
    from galaxies.runtime import profiles
    smoke = profiles.get("smoke")
    assert variants.model_dir("xception-noiseless_v1", smoke) == smoke.models_dir / "xception-noiseless_v1"
    assert variants.config("xception_v3", smoke).conditioning == ("psf_fwhm", "sigma")
    assert variants.config("xception-noiseless_v1", smoke).inputs == "noiseless"
    nll = variants.config(smoke.uncertainty, smoke, epochs=2)
    assert nll.uncertainty and nll.epochs == 2 and nll.learning_rate == smoke.xception_learning_rate
    # every profile trains its recommended and uncertainty networks, and a head after the
    # network it is trained on
    for each in profiles.PROFILES.values():
        order = list(each.xception_variants)
        assert {each.recommended, each.uncertainty} <= set(order), each.name
        for name in order:
            base = variants.variant(name).head_on
            assert base is None or order.index(base) < order.index(name), (each.name, name)
    # the uncertainty network is a head on the recommended network, on its recipe
    assert variants.variant(smoke.uncertainty).head_on == smoke.recommended
    recommended = variants.config(smoke.recommended, smoke)
    assert (nll.conditioning, nll.noise_sigma, nll.log_labels, nll.crop) == (
        recommended.conditioning, recommended.noise_sigma, recommended.log_labels, recommended.crop)
    # ... whose head takes it as its base, the recommended network's label weights its own
    for each in profiles.PROFILES.values():
        base = SimpleNamespace(name=each.recommended, uncertainty=False,
                               config=variants.config(each.recommended, each))
        check_base(variants.config(each.uncertainty, each), base)
    # the recommended network takes the profile's own epochs where it has them; the others
    # (its head included) not
    quick = profiles.get("quick")
    assert variants.config(quick.recommended, quick).epochs == quick.recommended_epochs
    assert variants.config(quick.uncertainty, quick).epochs == quick.epochs
    # ... and their whole schedule, early stopping never halting it
    assert variants.config(quick.recommended, quick).patience == quick.recommended_epochs
    assert variants.config("xception_v1", quick).patience == quick.patience
    assert variants.config("xception_v1", quick).epochs == quick.epochs
    assert variants.config(quick.recommended, quick, epochs=3).epochs == 3
    assert variants.config(smoke.recommended, smoke).epochs == smoke.epochs
    # the recommended recipe's levers, and its fixed-noise ablation's, but not v1's
    for name in (quick.recommended, "xception_v3"):
        config = variants.config(name, quick)
        assert config.log_labels == ("flux", "sersic_n", "sersic_r") and config.crop == 48
    assert variants.config("xception_v1", quick).log_labels == () and variants.config("xception_v1", quick).crop is None
    with pytest.raises(ValueError, match="xception_v1"):
        variants.variant("xception_v9")
