"""The autoencoder: five-unit latent layer, 64 x 64 decoder, a tiny training run, saving."""
import json

import numpy as np
import pytest

from galaxies.evaluation import estimators
from galaxies.evaluation.experiments import autoencoder as ae
from galaxies.networks.models import autoencoder as builders
from galaxies.networks.training import SavedModel, TrainingConfig
from galaxies.storage import files

TINY = dict(entry_filters=4, block_filters=8, blocks=1, exit_filters=8)


def test_encoder_latent_layer_has_the_five_labels():
    encoder = builders.build_encoder((64, 64, 1), **TINY)
    assert encoder.output_shape == (None, 5)
    assert encoder.get_layer("labels").units == 5


def test_decoder_returns_a_64_by_64_image():
    decoder = builders.build_decoder(filters=2)
    assert decoder.input_shape == (None, 5)
    out = decoder.predict(np.zeros((3, 5), np.float32), verbose=0)
    assert out.shape == (3, 64, 64, 1)


def test_decoder_rejects_sizes_it_cannot_reach():
    with pytest.raises(ValueError, match="multiple of 8"):
        builders.build_decoder(filters=2, image_size=60)
    with pytest.raises(ValueError, match="filters = 0"):
        builders.build_decoder(filters=0)


def test_bad_settings_are_refused(small_sets, tmp_path):
    config = TrainingConfig(model="autoencoder", epochs=1,
                            model_kwargs=dict(image_weight=-1.0, encoder=TINY))
    with pytest.raises(ValueError, match="image_weight = -1.0"):
        ae.fit(config, small_sets["random"], tmp_path / "ae")
    config = TrainingConfig(model="autoencoder", epochs=1, model_kwargs=dict(code_size=3))
    with pytest.raises(ValueError, match="code_size"):
        ae.fit(config, small_sets["random"], tmp_path / "ae")
    assert not (tmp_path / "ae").exists()


@pytest.fixture(scope="module")
def trained(small_sets, tmp_path_factory):
    config = TrainingConfig(model="autoencoder", epochs=8, batch_size=8, patience=8,
                            learning_rate=3e-3, validation_fraction=0.2, noise="fresh",
                            model_kwargs=dict(image_weight=1.0, encoder=TINY, decoder_filters=4))
    folder = tmp_path_factory.mktemp("ae") / "autoencoder_v1"
    return ae.fit(config, small_sets["random"], folder, verbose=0), folder


def test_a_tiny_training_run_lowers_both_losses(trained):
    model, folder = trained
    history = np.genfromtxt(folder / "history.csv", delimiter=",", names=True)
    for term in ("labels_loss", "image_loss"):
        assert history[term][-1] < 0.9 * history[term][0], (term, history[term])


def test_the_saved_directory_works_as_any_estimator(trained, small_sets, tmp_path):
    model, folder = trained
    for name in ("model.keras", "decoder.keras", "scalers.json", "training.json", "history.csv"):
        assert (folder / name).is_file(), name
    assert set(json.loads((folder / "scalers.json").read_text())) == {"image", "label", "target_image"}
    encoder = SavedModel.load(folder)
    assert encoder.estimator == "autoencoder" and encoder.config.model == "autoencoder"
    assert json.loads((folder / "training.json").read_text())["config"]["noise"] == "fresh"
    ds = files.load_dataset(small_sets["fixed"])
    out = estimators.load(folder).predict_file(ds.path, tmp_path / "pred.h5")
    pred = files.load_predictions(out)
    assert pred.pred.shape == (len(ds), 5) and pred.estimator == "autoencoder"
    np.testing.assert_allclose(pred.pred, model.predict(ds.img), rtol=1e-4)


def test_reload_reconstructs_and_decodes(trained, small_sets):
    _, folder = trained
    model = ae.Autoencoder.load(folder)
    ds = files.load_dataset(small_sets["fixed"])
    recon = model.reconstruct(ds.img[:3])
    assert recon.shape == (3, 64, 64) and recon.dtype == np.float32
    assert model.decode(ds.label[:2]).shape == (2, 64, 64)
    losses = ae.losses_on(model, files.load_dataset(small_sets["random"]))
    assert set(losses) == {"labels", "image"} and all(np.isfinite(v) for v in losses.values())
    images, titles = ae.reconstruction_panels(model, ds, [0, 5])
    assert len(images) == len(titles) == 8


def test_reconstruction_errors_locate_the_residual():
    clean = np.zeros((4, 64, 64))
    recon = clean.copy()
    recon[:, 32, 32] = 3.0  # an error in the centre only
    noisy = clean + np.random.default_rng(0).normal(0, 1, clean.shape)
    errors = ae.reconstruction_errors(noisy, clean, recon, sigma=1.0)
    assert errors["rms_map"].shape == (64, 64)
    assert errors["rms_map"][32, 32] == pytest.approx(3.0) and errors["rms_map"][0, 0] == 0
    assert errors["rms_by_radius"][0] > 0 and errors["rms_by_radius"][10] == 0
    assert errors["per_image"] == pytest.approx(np.full(4, 3.0 / 64))
    assert errors["noise_rms_map"].mean() == pytest.approx(1.0, rel=0.1)
    with pytest.raises(ValueError, match="shapes"):
        ae.reconstruction_errors(noisy, clean, recon[:2], sigma=1.0)


def test_config_from_profile_reads_the_profile():
    config = ae.config_from_profile("smoke", epochs=3, model_kwargs={"image_weight": 0.5})
    assert config.model == "autoencoder" and config.epochs == 3
    assert config.model_kwargs["image_weight"] == 0.5
    assert config.model_kwargs["encoder"]["blocks"] >= 1
    assert config.noise == "fresh" and ae.config_from_profile("smoke", noise="fixed").noise == "fixed"


def test_the_stream_shows_fresh_noise_and_the_noiseless_target(
        small_sets, faint_read_noise, check_noise_model, find_orientation):
    from galaxies.networks.training import dihedral, split_rows
    from galaxies.networks.training.autoencoder import stream
    ds = faint_read_noise(files.load_dataset(small_sets["random"], fields=("img_nonoise",)))
    config = ae.config_from_profile("smoke", batch_size=8, limit=None)
    train, val = split_rows(len(ds), config.validation_fraction, config.seed)
    batches, (x_val, y_val), scalers = stream(config, ds, train, val)
    noisy, target, labels = [], [], []
    for _ in range(5):
        for k in range(len(batches)):
            x, y = batches[k]
            noisy.append(scalers["image"].inverse(x)[..., 0])
            target.append(scalers["target_image"].inverse(y["image"])[..., 0])
            labels.append(scalers["label"].inverse(y["labels"]))
        batches.on_epoch_end()
    noisy, target, labels = (np.concatenate(a) for a in (noisy, target, labels))
    # the decoder's target: a training galaxy's noiseless image, turned, with its labels turned alike
    found = find_orientation(target, ds.img_nonoise[train])
    for k, (row, element) in enumerate(found):
        turned = dihedral(ds.img_nonoise[train][row:row + 1], ds.label[train][row:row + 1], element)[1]
        np.testing.assert_allclose(labels[k], turned[0], rtol=1e-4, atol=1e-5)
    # the encoder's input: the same galaxy in the same orientation, with fresh noise
    check_noise_model(noisy, target, ds.sigma[train][[r for r, _ in found]])
    np.testing.assert_allclose(scalers["target_image"].inverse(y_val["image"])[..., 0],
                               ds.img_nonoise[val], atol=0.05)
    with pytest.raises(ValueError, match="img and img_nonoise"):
        ae.fit(ae.config_from_profile("smoke", noise="fixed"), ds)


def test_one_seed_trains_one_autoencoder(small_sets):
    ds = files.load_dataset(small_sets["random"])
    runs = [ae.fit(ae.config_from_profile("smoke", epochs=2, batch_size=8, limit=None, seed=seed),
                   ds, verbose=0) for seed in (0, 0, 1)]
    pred = [run.predict(ds.img[:4]) for run in runs]
    recon = [run.reconstruct(ds.img[:4]) for run in runs]
    np.testing.assert_array_equal(pred[0], pred[1])
    np.testing.assert_array_equal(recon[0], recon[1])
    assert not np.allclose(pred[0], pred[2])
    assert runs[0].info["config"]["noise"] == "fresh"
