"""Denoisers (EDSR, RDN), their training and saving, and the PSNR / SSIM measures."""
import json

import numpy as np
import pytest

from galaxies.evaluation.experiments import denoise
from galaxies.evaluation.image_quality import psnr, ssim
from galaxies.networks.training import denoiser as denoiser_training
from galaxies.runtime import profiles

TINY = {"edsr": dict(blocks=2, filters=8, downscale=2),
        "rdn": dict(blocks=2, layers_per_block=2, growth=8, features=8, downscale=2)}


# ------------------------------------------------------------------------------ networks

@pytest.mark.parametrize("name", ["edsr", "rdn"])
@pytest.mark.parametrize("downscale", [1, 2])
def test_output_has_the_input_shape(name, downscale):
    from galaxies.networks.models.denoisers import get_denoiser
    sizes = {**TINY[name], "downscale": downscale}
    model = get_denoiser(name)(input_shape=(64, 64, 1), **sizes)
    out = model.predict(np.random.default_rng(0).normal(size=(3, 64, 64, 1)).astype("float32"),
                        verbose=0)
    assert out.shape == (3, 64, 64, 1)
    assert np.all(np.isfinite(out))


def test_seed_sizes_have_the_seed_parameter_counts():
    from galaxies.networks.models.denoisers import build_edsr, build_rdn
    edsr = build_edsr(**profiles.SEED_DENOISERS["edsr"]).count_params()
    rdn = build_rdn(**profiles.SEED_DENOISERS["rdn"]).count_params()
    assert 19.3e6 < edsr < 19.7e6  # the seed: about 19.5 M
    assert 5.3e6 < rdn < 5.6e6  # the seed: about 5.5 M


def test_edsr_has_no_batch_normalization_and_rdn_fuses_every_block():
    from galaxies.networks.models.denoisers import build_edsr, build_rdn
    edsr = build_edsr(blocks=3, filters=8)
    assert not [l for l in edsr.layers if "Normalization" in type(l).__name__]
    assert len([l for l in edsr.layers if l.name.endswith("_scale")]) == 3  # residual scaling
    rdn = build_rdn(blocks=3, layers_per_block=2, growth=4, features=8)
    fusion = rdn.get_layer("gff_cat")
    assert len(fusion.input) == 3  # global feature fusion sees every block's output


@pytest.mark.parametrize("bad", [dict(blocks=0), dict(filters=2.5), dict(res_scale=0)])
def test_bad_sizes_are_refused(bad):
    from galaxies.networks.models.denoisers import build_edsr
    with pytest.raises(ValueError, match=next(iter(bad))):
        build_edsr(**{**TINY["edsr"], **bad})


def test_unknown_denoiser_is_refused():
    from galaxies.networks.models.denoisers import get_denoiser
    with pytest.raises(ValueError, match="unknown denoiser 'unet'"):
        get_denoiser("unet")


# ------------------------------------------------------------------------------ quality

def _galaxy(shift=(0.0, 0.0)):
    y, x = np.mgrid[:64, :64] - 31.5
    return 1000.0 * np.exp(-((x - shift[0]) ** 2 + (y - shift[1]) ** 2) / 50.0)


def test_identical_images_score_perfectly():
    image = np.stack([_galaxy(), _galaxy((2, -1))])
    assert np.all(np.isinf(psnr(image, image)))
    np.testing.assert_allclose(ssim(image, image), 1.0, atol=1e-12)


def test_psnr_of_a_constant_offset():
    reference = _galaxy()
    # MSE = 10**2 and the scale is the reference's range: PSNR = 20 log10(range / 10)
    top = reference.max() - reference.min()
    np.testing.assert_allclose(psnr(reference + 10.0, reference), 20 * np.log10(top / 10.0))
    np.testing.assert_allclose(psnr(reference + 10.0, reference, data_range=100.0), 20.0)


def test_ssim_of_a_shifted_flat_image_is_its_luminance_term():
    # flat images: no variance, so SSIM reduces to (2 a b + C1) / (a^2 + b^2 + C1)
    a, b, top = 50.0, 60.0, 100.0
    c1 = (0.01 * top) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    got = ssim(np.full((64, 64), b), np.full((64, 64), a), data_range=top)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_ssim_falls_as_the_image_moves_and_as_noise_grows():
    reference = _galaxy()
    shifted = [ssim(_galaxy((s, 0)), reference)[0] for s in (0.5, 2, 6)]
    assert 1 > shifted[0] > shifted[1] > shifted[2]
    rng = np.random.default_rng(1)
    noisy = [ssim(reference + rng.normal(0, s, reference.shape), reference)[0] for s in (10, 100, 400)]
    assert 1 > noisy[0] > noisy[1] > noisy[2]
    # symmetric in its two images
    np.testing.assert_allclose(ssim(_galaxy((2, 0)), reference, data_range=1000.0),
                               ssim(reference, _galaxy((2, 0)), data_range=1000.0))


def test_quality_measures_reject_bad_input():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(np.zeros((2, 64, 64)), np.zeros((3, 64, 64)))
    with pytest.raises(ValueError, match="explicit data_range"):
        ssim(np.ones((64, 64)), np.ones((64, 64)))


# ----------------------------------------------------------------------- training, saving

@pytest.fixture(scope="module")
def trained(small_sets, tmp_path_factory):
    """A tiny EDSR trained for a few epochs on the small random set."""
    config = denoise.DenoiserConfig(model="edsr", model_kwargs=TINY["edsr"], epochs=4,
                                    batch_size=8, patience=4, learning_rate=3e-3)
    out = tmp_path_factory.mktemp("models") / "edsr_v1a"
    return denoiser_training.fit(config, small_sets["random"], out, verbose=0)


def test_training_lowers_the_loss_and_saves_the_model_directory(trained):
    history = trained.history()
    assert len(history) == 4
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    for name in ("model.keras", "scalers.json", "training.json", "history.csv"):
        assert (trained.path / name).is_file()
    info = json.loads((trained.path / "training.json").read_text())
    assert info["task"] == "denoise" and info["config"]["model"] == "edsr"
    assert info["config"]["noise"] == "fresh" and info["config"]["augment"] is True
    assert info["train_rows"] + info["validation_rows"] == 40


def _unscaled_pairs(batches, scaler, epochs):
    """The (noisy input, target) images of every batch of ``epochs`` epochs, in photo-electrons."""
    noisy, target = [], []
    for _ in range(epochs):
        for k in range(len(batches)):
            x, y = batches[k]
            noisy.append(scaler.inverse(x)[..., 0])
            target.append(scaler.inverse(y)[..., 0])
        batches.on_epoch_end()
    return np.concatenate(noisy), np.concatenate(target)


def test_the_stream_gives_fresh_noise_around_the_noiseless_target(
        small_sets, faint_read_noise, check_noise_model, find_orientation):
    from galaxies.networks.training import split_rows
    from galaxies.storage import files
    ds = faint_read_noise(files.load_dataset(small_sets["random"], fields=("img_nonoise",)))
    config = denoise.DenoiserConfig(model="edsr", model_kwargs=TINY["edsr"], batch_size=8)
    train, val = split_rows(len(ds), config.validation_fraction, config.seed)
    batches, (x_val, y_val), scaler = denoiser_training.stream(config, ds, train, val)
    noisy, target = _unscaled_pairs(batches, scaler, epochs=5)
    # the target is a training galaxy's noiseless image, turned; the input the same, plus noise
    found = find_orientation(target, ds.img_nonoise[train])
    # a noiseless galaxy is symmetric under the half turn (element 6): four classes to tell
    assert len({min(e, e ^ 6) for _, e in found}) == 4, "the orientations are drawn"
    check_noise_model(noisy, target, ds.sigma[train][[r for r, _ in found]])
    # the validation pairs: one fixed draw around the noiseless validation images
    np.testing.assert_allclose(scaler.inverse(y_val)[..., 0], ds.img_nonoise[val], atol=0.05)
    assert not np.allclose(scaler.inverse(x_val)[..., 0], ds.img_nonoise[val], atol=1.0)
    # seeded: the same configuration, the same batches; another seed, others
    first, again = (denoiser_training.stream(config, ds, train, val)[0][0][0] for _ in range(2))
    np.testing.assert_array_equal(first, again)
    config.seed = 1
    assert not np.allclose(denoiser_training.stream(config, ds, train, val)[0][0][0], first)


def test_the_fixed_way_pairs_the_sets_noisy_and_noiseless_images(small_sets, find_orientation):
    from galaxies.networks.training import dihedral, split_rows
    from galaxies.storage import files
    ds = files.load_dataset(small_sets["random"], fields=("img", "img_nonoise"))
    config = denoise.DenoiserConfig(model="edsr", model_kwargs=TINY["edsr"], batch_size=8,
                                    noise="fixed")
    train, val = split_rows(len(ds), config.validation_fraction, config.seed)
    batches, _, scaler = denoiser_training.stream(config, ds, train, val)
    noisy, target = _unscaled_pairs(batches, scaler, epochs=1)
    for k, (row, element) in enumerate(find_orientation(target, ds.img_nonoise[train])):
        # the input is the same row's noisy image, turned alike (or by the half turn more,
        # which leaves the noiseless target as it is)
        turned = [dihedral(ds.img[train][row:row + 1], np.zeros((1, 5)), e)[0][0]
                  for e in (element, element ^ 6)]
        assert min(np.abs(t - noisy[k]).max() for t in turned) < 0.1
    with pytest.raises(ValueError, match="img and img_nonoise"):
        denoiser_training.fit(config, files.load_dataset(small_sets["random"], fields=("img_nonoise",)))
    with pytest.raises(ValueError, match="noise = 'new'"):
        denoise.DenoiserConfig(noise="new")


def test_one_seed_trains_one_denoiser(small_sets):
    from galaxies.storage import files
    ds = files.load_dataset(small_sets["random"], fields=("img", "img_nonoise"))
    config = dict(model="rdn", model_kwargs=TINY["rdn"], epochs=2, batch_size=8)
    runs = [denoiser_training.fit(denoise.DenoiserConfig(**config, seed=seed), ds, verbose=0)
            for seed in (0, 0, 1)]
    out = [run.denoise(ds.img[:4], progress=False) for run in runs]
    np.testing.assert_array_equal(out[0], out[1])
    assert not np.allclose(out[0], out[2])
    assert runs[0].info["config"]["noise"] == "fresh"


def test_saved_denoiser_loads_and_denoises_the_same(trained, small_sets):
    from galaxies.storage import files
    images = files.load_dataset(small_sets["random"], fields=("img",)).img[:11]
    before = trained.denoise(images, batch_size=4, progress=False)  # 11 = 2 x 4 + a padded 3
    again = denoise.Denoiser.load(trained.path)
    after = again.denoise(images, batch_size=4, progress=False)
    assert before.shape == (11, 64, 64) and before.dtype == np.float32
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(trained.denoise(images, batch_size=64, progress=False), before,
                               rtol=1e-5, atol=1e-3)
    assert again.kind == "edsr" and again.throughput(images, batch_size=4) > 0


def test_denoiser_refuses_to_train_on_a_test_set(small_sets, tmp_path):
    config = denoise.DenoiserConfig(model="rdn", model_kwargs=TINY["rdn"], epochs=1)
    with pytest.raises(ValueError, match="evaluated on 'snr60'"):
        denoiser_training.fit(config, small_sets["fixed"], tmp_path / "rdn")


def test_an_estimator_directory_is_not_a_denoiser(trained, tmp_path):
    info = json.loads((trained.path / "training.json").read_text())
    info.pop("task")
    import shutil
    shutil.copytree(trained.path, tmp_path / "m")
    (tmp_path / "m" / "training.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="not a denoiser"):
        denoise.Denoiser.load(tmp_path / "m")


def test_a_record_from_before_the_stream_reads_as_fixed_noise(trained, tmp_path):
    import shutil
    shutil.copytree(trained.path, tmp_path / "old")
    info = json.loads((tmp_path / "old" / "training.json").read_text())
    for key in ("noise", "augment"):
        info["config"].pop(key)
    (tmp_path / "old" / "training.json").write_text(json.dumps(info))
    config = denoise.Denoiser.load(tmp_path / "old").config
    assert config.noise == "fixed" and config.augment is False
    assert trained.config.noise == "fresh"


def test_profiles_size_the_denoisers():
    for name in profiles.PROFILES:
        for model in denoise.DENOISERS:
            config = denoise.DenoiserConfig.from_profile(name, model)
            assert config.model_kwargs == profiles.get(name).denoiser_sizes[model]
            assert config.noise == "fresh"
        # the two-stage estimator and its control: fixed images (a denoiser pass per step else)
        assert denoise.estimator_config(name).noise == "fixed"
    assert profiles.get("full").denoiser_sizes == profiles.SEED_DENOISERS
    with pytest.raises(ValueError, match="loss"):
        denoise.DenoiserConfig(loss="huber")


# ------------------------------------------------------------------- comparing estimators

def test_compare_and_rmse_change_read_the_predictions_files(small_sets, tmp_path, monkeypatch):
    import shutil

    from galaxies.storage import files
    monkeypatch.setattr(profiles, "ROOT", tmp_path)
    profile = profiles.get("smoke")
    profile.data_dir.mkdir(parents=True)
    shutil.copy(small_sets["fixed"], profile.dataset("snr60"))
    truth = files.load_dataset(profile.dataset("snr60"), fields=()).label.astype(np.float64)
    # constant offsets, large enough for float32 predictions of a flux of 1e5
    errors = {"xception": 200.0, denoise.CONTROL: 100.0, "edsr-xception": 90.0}
    for estimator, offset in errors.items():
        files.write_predictions(profile.predictions(estimator, "v1", "snr60"), truth + offset,
                             np.arange(len(truth)), estimator=estimator, dataset="snr60",
                             seconds_per_image=1e-3)
    table = denoise.compare(profile, denoisers=("edsr", "rdn"), testsets=("snr60",),
                            with_crb=False)
    assert list(table.index.get_level_values("estimator").unique()) == list(errors)
    np.testing.assert_allclose(table.xs(("snr60", "edsr-xception"))["rmse"], 90.0, rtol=1e-3)
    change = denoise.rmse_change(table)  # against the control when there is one
    assert list(change.index) == [("snr60", "xception"), ("snr60", "edsr-xception")]
    np.testing.assert_allclose(change.loc[("snr60", "edsr-xception")], -10.0, rtol=1e-3)
    np.testing.assert_allclose(denoise.rmse_change(table, "xception").loc[("snr60", "edsr-xception")],
                               -55.0, rtol=1e-3)


def test_a_control_is_trained_where_the_plain_xception_trains_otherwise(monkeypatch):
    import dataclasses

    from galaxies.evaluation.experiments import xception
    # the plain Xception trains on the stream, the two-stage one on fixed images: every
    # profile needs the control, whatever its budgets
    for name in profiles.PROFILES:
        assert denoise.needs_control(name)
    # were the plain one on fixed images too, only a profile with other budgets (quick) would
    fixed = dataclasses.replace(xception.VARIANTS["xception_v1"], options={})
    monkeypatch.setitem(xception.VARIANTS, "xception_v1", fixed)
    assert not denoise.needs_control("smoke") and denoise.needs_control("quick")


def test_a_denoiser_names_the_images_it_lacks(small_sets):
    from galaxies.storage import files
    config = denoise.DenoiserConfig(model="rdn", model_kwargs=TINY["rdn"], epochs=1)
    only_noisy = files.load_dataset(small_sets["random"], fields=("img",))
    with pytest.raises(ValueError, match="a denoiser with fresh noise needs img_nonoise loaded"):
        denoiser_training.fit(config, only_noisy)
    fixed = denoise.DenoiserConfig(model="rdn", model_kwargs=TINY["rdn"], epochs=1, noise="fixed")
    with pytest.raises(ValueError, match="with fixed noise needs img and img_nonoise loaded"):
        denoiser_training.fit(fixed, files.load_dataset(small_sets["random"], fields=("img_nonoise",)))
