"""The autoencoder: five-unit latent layer, 64 x 64 decoder, a tiny training run, saving."""
import json

import numpy as np
import pytest

from galaxies import estimators, files
from galaxies.experiments import autoencoder as ae
from galaxies.models import autoencoder as builders
from galaxies.training import SavedModel, TrainingConfig

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
                            learning_rate=3e-3, validation_fraction=0.2,
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
