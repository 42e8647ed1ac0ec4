"""The explorer app (EDA/app) through Streamlit's own testing API, page by page, and the logic
behind it (`galaxies.interfaces.app_support`, `galaxies.simulation.exploration`, `galaxies.interfaces.plots.to_rgb`).

Pages run against a temporary project root (data, models and results folders of the smoke
profile), so what they find is exactly what each test puts there. The optional parts of the
project (CRB, trained models, maximum-likelihood fit) are replaced by small stand-ins where a
test needs them present or absent; one test uses a real (tiny) Keras model.
"""
import importlib
import io as bytes_io
import shutil
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from galaxies.conventions import LABEL_COLUMNS
from galaxies.cutouts import uploads
from galaxies.interfaces import app_support as support, plots
from galaxies.runtime import profiles
from galaxies.runtime.errors import ParameterRangeError
from galaxies.simulation import exploration
from galaxies.storage import files

APP = Path(__file__).resolve().parents[2] / "EDA" / "app" / "app.py"


@pytest.fixture(autouse=True)
def project(tmp_path, monkeypatch):
    """An empty project root for the smoke profile, and fresh Streamlit caches."""
    monkeypatch.setattr(profiles, "ROOT", tmp_path)
    monkeypatch.setenv("GALAXIES_PROFILE", "smoke")
    st.cache_data.clear()
    st.cache_resource.clear()
    yield tmp_path
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def with_sets(project, small_sets):
    folder = project / "data" / "smoke"
    folder.mkdir(parents=True)
    for name, path in small_sets.items():
        shutil.copy(path, folder / Path(path).name)
    return folder


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def texts(elements) -> str:
    return " | ".join(str(e.value) for e in elements)


def fake_module(monkeypatch, name: str, **functions):
    """Replace functions of a module of the package for one test (the app reads them there)."""
    module = importlib.import_module(name)
    for key, value in functions.items():
        monkeypatch.setattr(module, key, value)
    return module


def fake_bound(flux, sersic_n, sersic_r, g1, g2, psf_fwhm=0.5, sigma=200.0):
    return np.array([0.05 * flux, 0.8, 0.03, 0.05, 0.05]) * sigma / 200.0


def fake_bound_vs_snr(flux, sersic_n, sersic_r, g1, g2, psf_fwhm=0.5, snr=None):
    import pandas as pd
    snr = np.linspace(10, 100, 5) if snr is None else np.asarray(snr)
    return pd.DataFrame({"snr": snr, "sigma": 12000 / snr,
                         **{c: 1.0 / snr for c in ("flux", "sersic_n", "sersic_r", "g1", "g2")}})


# ------------------------------------------------------------------------------ Simulator

def test_simulator_sliders_change_images_and_snr():
    at = open_app()
    snr = float(metric(at, "SNR"))
    images = at.image[0].value + at.image[1].value
    assert 10 < snr < 100 and at.success and not at.warning
    at.slider(key="_w_flux").set_value(2e5).run()
    assert not at.exception
    # the noiseless image scales with the flux, so the SNR doubles exactly
    assert float(metric(at, "SNR")) == pytest.approx(2 * snr, rel=2e-3)
    assert at.warning and "too bright" in at.warning[0].value  # the SNR cut rejects it now
    assert at.image[0].value + at.image[1].value != images
    at.radio(key="sim_stretch").set_value("log").run()
    assert at.image[0].value != images[0]


def test_simulator_shape_sliders_and_shear_range():
    at = open_app()
    at.slider(key="_w_q").set_value(0.5).run()
    at.slider(key="_w_beta").set_value(0.0).run()
    assert float(metric(at, "g1")) == pytest.approx(1 / 3, abs=1e-3)  # (1 - q) / (1 + q)
    assert float(metric(at, "g2")) == pytest.approx(0, abs=1e-3)
    at.radio(key="_w_shape_mode").set_value("shear g1, g2").run()
    at.slider(key="_w_g1").set_value(0.6).run()
    at.slider(key="_w_g2").set_value(0.6).run()
    assert not at.exception
    assert at.error and "outside the allowed range" in at.error[0].value
    assert not at.metric  # the page stopped instead of drawing a wrong galaxy


def test_parameters_survive_switching_pages():
    at = open_app()
    at.slider(key="_w_sersic_n").set_value(1.5).run()
    at.switch_page("views/your_image.py").run()
    at.switch_page("views/simulator.py").run()
    assert not at.exception
    assert at.slider(key="_w_sersic_n").value == 1.5


# --------------------------------------------------------------------------------- Bounds

def test_bounds_page_shows_the_bound_and_follows_the_sliders(monkeypatch):
    fake_module(monkeypatch, "galaxies.inference.crb", cramer_rao_bound=fake_bound,
                crb_vs_snr=fake_bound_vs_snr)
    at = open_app("bounds")
    assert not at.info
    bound = at.table[0].value["bound (1 sigma)"]
    assert bound["sersic_n"] == pytest.approx(0.8)
    assert at.image, "the bound-versus-SNR figure"
    at.slider(key="_w_sigma").set_value(400.0).run()
    assert not at.exception
    assert at.table[0].value["bound (1 sigma)"]["sersic_n"] == pytest.approx(1.6)


# ------------------------------------------------------------------------------ Data sets

def test_datasets_page_without_data_says_how_to_make_it():
    at = open_app("datasets")
    assert "make datasets PROFILE=smoke" in texts(at.info)


def test_datasets_page_filters_and_browses(with_sets):
    at = open_app("datasets")
    assert at.selectbox(key="ds_file").value.stem == "v1"
    assert "40 of 40 galaxies match" in texts(at.markdown)
    assert len(at.image[0].value) == 24  # one page of thumbnails
    frame = files.load_dataset(with_sets / "v1.h5", fields=()).labels_frame()
    cut = float(np.median(frame.snr))
    snr_slider = at.slider(key="ds_v1_snr")
    snr_slider.set_value((snr_slider.value[0], cut)).run()
    assert not at.exception
    expected = int((frame.snr <= cut).sum())
    assert f"{expected} of 40 galaxies match" in texts(at.markdown)
    assert len(at.image[0].value) == min(expected, 24)
    at.radio(key="ds_kind").set_value("noise").run()
    assert not at.exception
    at.selectbox(key="ds_file").set_value(with_sets / "snr60.h5").run()
    assert not at.exception and "16 of 16 galaxies match" in texts(at.markdown)


# --------------------------------------------------------------------------------- Models

def test_models_page_without_models_or_predictions():
    at = open_app("models")
    shown = texts(at.info)
    assert "No model has been trained yet for profile smoke" in shown
    assert "No predictions yet for profile smoke" in shown
    assert at.table[0].value["truth"]["sersic_n"] == pytest.approx(3.0)


def test_models_page_with_a_model_a_fit_and_predictions(project, with_sets, monkeypatch):
    keras = pytest.importorskip("keras")
    train = pytest.importorskip("galaxies.networks.training")
    model = keras.Sequential([keras.Input((64, 64, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(5, kernel_initializer="zeros")])
    labels = train.Standardizer(mean=[1e5, 3.0, 0.3, 0.0, 0.0], std=[1.0] * 5)
    saved = train.SavedModel(model, {"image": train.Standardizer([0.0], [100.0]),
                                     "label": labels},
                             {"config": {"epochs": 1}, "name": "tiny_v1"})
    saved.save(profiles.get("smoke").model_dir("tiny", "v1"))
    v1 = files.load_dataset(with_sets / "v1.h5", fields=())
    files.write_predictions(profiles.get("smoke").predictions("tiny", "v1", "v1"),
                         v1.label + 0.01, np.arange(len(v1)), estimator="tiny", dataset="v1",
                         seconds_per_image=1e-3)

    class Fit:
        params, converged, seconds = np.array([1.1e5, 2.5, 0.31, -0.06, 0.14]), True, 0.5

    from galaxies.inference import galsim_fit
    page = support.GalaxyParameters()  # the galaxy the page opens with
    mle = dict(zip(LABEL_COLUMNS, galsim_fit.fit_image(support.render(page).noisy, page.psf_fwhm,
                                                     page.sigma).params))
    fake_module(monkeypatch, "galaxies.inference.galsim_fit", fit_image=lambda image, psf, sigma: Fit())
    at = open_app("models")
    table = at.table[0].value
    # a zero network predicts the label means
    assert table["tiny_v1"].to_numpy() == pytest.approx([1e5, 3.0, 0.3, 0.0, 0.0])
    # the refinement from the network's estimate (g = 0, three bounds off in g2) reaches the
    # maximum-likelihood estimate of the page's image, within a fifth of its standard deviation
    refined = "tiny_v1 + 2 steps"
    std = table[f"{refined} ± 1 sigma"]
    assert (std > 0).all()
    for column in ("sersic_r", "g1", "g2"):
        assert abs(table[refined][column] - mle[column]) < 0.2 * std[column], column
    assert "Refined in" in texts(at.caption)
    at.button(key="models_fit_button").click().run()
    assert not at.exception
    table = at.table[0].value
    assert table["maximum likelihood"]["sersic_n"] == pytest.approx(2.5)
    assert "converged" in texts(at.caption)
    assert len(at.image) == 2, "the galaxy and the true-vs-predicted figure"
    bias = at.table[1].value["bias"]
    assert bias["sersic_n"] == pytest.approx(0.01, abs=1e-5)


def test_models_page_marks_predictions_outside_the_training_psf_and_noise(project, with_sets):
    from galaxies.simulation.generate import generate
    from galaxies.simulation.recipes import RECIPES

    recipe = RECIPES["compact"]
    data = generate(with_sets / "compact.h5", recipe.spec, size=8, seed=recipe.seed,
                    progress=False, name="compact")
    truth = files.load_dataset(data, fields=()).label
    for trainset in ("v1", "v3"):
        files.write_predictions(profiles.get("smoke").predictions("tiny", trainset, "compact"),
                                truth, np.arange(len(truth)), estimator="tiny",
                                dataset="compact", seconds_per_image=1e-3)
    at = open_app("models")
    box = at.selectbox(key="models_predictions")
    assert box.options == [
        "tiny trained on v1, tested on compact (8 images) †",
        "tiny trained on v3, tested on compact (8 images)"]
    assert "outside v1's PSF / noise" in texts(at.warning)
    box.select_index(1).run()
    assert not at.exception and "outside" not in texts(at.warning)
    assert support.outside_training("v1", "compact") and not support.outside_training("v3", "compact")
    assert not support.outside_training("fit", "compact")  # the fit has no training set
    assert not support.outside_training("v1", "mine")  # nor is a set of one's own a recipe


def test_models_page_reports_a_broken_model(project):
    broken = profiles.get("smoke").model_dir("xception", "v1")
    broken.mkdir(parents=True)
    (broken / "model.keras").write_bytes(b"not a model")
    at = open_app("models")
    assert at.error and "xception_v1" in at.error[0].value


# ----------------------------------------------------------------------------- Your image

def npy(array) -> bytes:
    buffer = bytes_io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def fits_bytes(array) -> bytes:
    from astropy.io import fits
    buffer = bytes_io.BytesIO()
    fits.PrimaryHDU(array).writeto(buffer)
    return buffer.getvalue()


def galaxy_image() -> np.ndarray:
    return support.render(support.GalaxyParameters()).noisy


def test_your_image_accepts_cutouts():
    at = open_app("your_image")
    assert "Upload a cutout" in texts(at.info)
    for name, content in (("galaxy.npy", npy(galaxy_image())),
                          ("galaxy.fits", fits_bytes(galaxy_image()))):
        at.file_uploader(key="up_file").upload(name, content, "application/octet-stream").run()
        assert not at.exception and not at.error, name
        assert 40 < float(metric(at, "approximate SNR")) < 80, name  # the test galaxy: SNR 60
        assert "No model has been trained yet" in texts(at.info), name


BAD_UPLOADS = [
    ("wrong.npy", lambda: npy(np.zeros((32, 48))), "32 x 48 pixels; expected 64 x 64"),
    ("notes.npy", lambda: b"these are my observing notes\n" * 10, "not a readable NumPy"),
    ("image.fits", lambda: b"GIF89a" + bytes(3000), "not a readable FITS"),
    ("nan.npy", lambda: npy(np.where(np.eye(64) > 0, np.nan, 1.0)), "64 NaN"),
    ("huge.npy", lambda: npy(np.zeros((400, 400))), "the limit is"),
    ("cube.npy", lambda: npy(np.zeros((3, 64, 64))), "3 x 64 x 64"),
    ("words.npy", lambda: npy(np.array(["a", "b"])), "expected real numbers"),
]


def test_your_image_rejects_bad_uploads_with_a_message():
    at = open_app("your_image")  # one app for every case: each AppTest start costs a second
    for name, content, message in BAD_UPLOADS:
        at.file_uploader(key="up_file").upload(name, content(), "application/octet-stream").run()
        assert not at.exception, (name, [e.message for e in at.exception])
        assert at.error and message in at.error[0].value, (name, texts(at.error))
        assert not at.metric, name


def test_your_image_measures_a_fits_cutout_of_another_pixel_scale():
    """Any FITS cutout works: 80 x 80 pixels of 0.1" (from its WCS) are resampled to the
    simulations' stamp, flagged, and fitted at their own pixels with model and residual."""
    import galsim
    from astropy.io import fits
    from astropy.wcs import WCS
    galaxy = galsim.Sersic(2.0, half_light_radius=0.35, flux=1e5).shear(g1=0.1, g2=-0.05)
    clean = galsim.Convolve(galaxy, galsim.Moffat(beta=2.0, fwhm=0.5)).drawImage(
        nx=80, ny=80, scale=0.1).array
    noisy = clean + np.random.default_rng(3).normal(0.0, 50.0, clean.shape)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype, wcs.wcs.cdelt = ["RA---TAN", "DEC--TAN"], [-0.1 / 3600, 0.1 / 3600]
    buffer = bytes_io.BytesIO()
    fits.PrimaryHDU(noisy.astype(np.float32), wcs.to_header()).writeto(buffer)
    at = open_app("your_image")
    at.number_input(key="up_sigma").set_value(50.0).run()
    at.file_uploader(key="up_file").upload("mine.fits", buffer.getvalue(),
                                           "application/octet-stream").run()
    assert not at.exception and not at.error, [e.message for e in at.exception]
    assert "80 × 80 pixels of 0.1″" in texts(at.caption)
    assert at.warning and "noise" in at.warning[0].value  # 50 e- at 0.1" is not 200-400 at 0.23"
    shown = len(at.image)
    at.button(key="up_native_fit").click().run()
    assert not at.exception and not at.error
    assert len(at.image) == shown + 3, "data, model and residual"
    assert "converged" in texts(at.caption)
    fitted = at.table[0].value["fit (own pixels)"]
    assert abs(fitted["sersic_r"] - 0.35) < 0.1 and abs(fitted["flux"] / 1e5 - 1) < 0.2


# ---------------------------------------------------------------- the logic, without the app

def test_read_cutout_formats_and_errors():
    image = galaxy_image()
    assert np.array_equal(uploads.read_cutout(npy(image), "a.npy"), image)
    assert np.array_equal(uploads.read_cutout(npy(image[None]), "a.npy"), image)
    assert np.array_equal(uploads.read_cutout(fits_bytes(image), ""), image)  # sniffed
    buffer = bytes_io.BytesIO()
    np.savez(buffer, img=image, mask=image > 0)
    assert np.array_equal(uploads.read_cutout(buffer.getvalue(), "a.npz"), image)
    buffer = bytes_io.BytesIO()
    np.savez(buffer, a=image, b=image)
    with pytest.raises(uploads.CutoutError, match="holds 2 arrays"):
        uploads.read_cutout(buffer.getvalue(), "two.npz")
    with pytest.raises(uploads.CutoutError, match="is empty"):
        uploads.read_cutout(b"", "empty.npy")
    with pytest.raises(uploads.CutoutError, match="not an image file"):
        uploads.read_cutout(b"hello", "notes.txt")
    with pytest.raises(uploads.CutoutError, match="1 infinite"):
        bad = image.copy()
        bad[3, 3] = np.inf
        uploads.read_cutout(npy(bad), "inf.npy")
    from astropy.io import fits
    table = fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column(name="x", format="E", array=np.zeros(3))])])
    buffer = bytes_io.BytesIO()
    table.writeto(buffer)
    with pytest.raises(uploads.CutoutError, match="without image data"):
        uploads.read_cutout(buffer.getvalue(), "table.fits")


def test_galaxy_parameters_and_snr_verdict():
    params = support.GalaxyParameters.from_ellipticity(0.5, 30.0)
    assert params.q == pytest.approx(0.5) and params.beta_deg == pytest.approx(30.0)
    with pytest.raises(ParameterRangeError, match="sersic_n = 7"):
        params.replace(sersic_n=7.0).check()
    assert support.snr_verdict(50)[0] and not support.snr_verdict(5)[0]
    assert "too bright" in support.snr_verdict(150)[1]
    galaxy = support.render(params)
    assert support.approximate_snr(galaxy.noisy, params.sigma) == pytest.approx(galaxy.snr, rel=0.15)


def test_filter_rows_and_listing(small_sets, project):
    frame = files.load_dataset(small_sets["random"], fields=()).labels_frame()
    rows = support.filter_rows(frame, {"sersic_n": (0, 3), "snr": (20, 100)})
    assert np.all(frame.sersic_n.iloc[rows] <= 3) and np.all(frame.snr.iloc[rows] >= 20)
    with pytest.raises(KeyError, match="no column 'size'"):
        support.filter_rows(frame, {"size": (0, 1)})
    folder = project / "data" / "smoke"
    folder.mkdir(parents=True)
    for name in ("extended.h5", "snr60.h5", "v1.h5", "mine.h5", "snr60.crb.h5", ".tmp-1-v2.h5",
                 "compact.h5"):
        (folder / name).touch()
    assert [p.name for p in support.list_datasets("smoke")] == [
        "v1.h5", "snr60.h5", "compact.h5", "extended.h5", "mine.h5"]
    assert support.list_saved_models("smoke") == []


def test_eda_sensitivity_explains_why_n_is_hard():
    table = exploration.sensitivity([1e5, 3.0, 0.3, -0.069, 0.15], psf_fwhm=0.5, sigma=200.0)
    assert table["distinct change / noise"].idxmin() == "sersic_n"
    assert table.loc["g1", "unique share"] > 0.9 > table.loc["sersic_n", "unique share"]
    doubled = exploration.sensitivity([1e5, 3.0, 0.3, -0.069, 0.15], psf_fwhm=0.5, sigma=400.0)
    ratio = table["change / noise"] / doubled["change / noise"]
    assert np.all((ratio > 1.9) & (ratio <= 2.0))  # read noise dominates the Poisson noise
    corr = exploration.derivative_correlation([1e5, 3.0, 0.3, -0.069, 0.15])
    assert np.allclose(np.diag(corr), 1) and abs(corr.loc["sersic_n", "sersic_r"]) > 0.3


def test_eda_snr_grid_and_flux_window():
    grid = exploration.snr_grid([1.0, 4.0], [0.2, 0.5], flux=1e5, sigma=200.0)
    assert grid.loc[0.2, 1.0] > grid.loc[0.5, 1.0]  # a compact galaxy stands out more
    window = exploration.flux_window(grid)
    assert window["high"].loc[0.2, 1.0] == pytest.approx(1e5 * 100 / grid.loc[0.2, 1.0])
    assert (exploration.flux_window(grid, sigma=400.0)["low"] == 2 * window["low"]).all().all()


def test_dataset_summary(small_sets):
    sets = {k: files.load_dataset(v, fields=()) for k, v in small_sets.items()}
    table = exploration.dataset_summary(sets)
    assert table.loc["random", "galaxies"] == 40 and table.loc["fixed", "distinct n"] == 1
    assert table.loc["fixed", "sigma [e-]"] == "200"


def test_to_rgb():
    image = np.outer(np.arange(64), np.ones(64)) - 10
    rgb = plots.to_rgb(image, "log", upscale=3, symmetric=True)
    assert rgb.shape == (192, 192, 3) and rgb.dtype == np.uint8
    assert not np.array_equal(rgb[0, 0], rgb[-1, -1])


# ------------------------------------------------------------- what a visitor sees first

def test_models_page_opens_on_the_recommended_network_on_test_and_a_fixed_set_as_histograms(
        project, with_sets):
    smoke = profiles.get("smoke")
    shutil.copy(with_sets / "v1.h5", with_sets / "test.h5")
    estimator, trainset = smoke.recommended.rsplit("_", 1)
    for name, train, testset in (("autoencoder", "v1", "snr60"), (estimator, trainset, "snr60"),
                                 (estimator, trainset, "test")):
        truth = files.load_dataset(with_sets / f"{testset}.h5", fields=()).label
        files.write_predictions(smoke.predictions(name, train, testset), truth + 0.01,
                                np.arange(len(truth)), estimator=name, dataset=testset,
                                seconds_per_image=1e-3)
    at = open_app("models")
    box = at.selectbox(key="models_predictions")
    assert box.value == next(k for k, text in enumerate(box.options)
                             if text.startswith(f"{estimator} trained on {trainset}, tested on test"))
    assert "Histograms" not in texts(at.caption)  # random galaxies: truth against estimate
    box.select_index(next(k for k, text in enumerate(box.options) if "on snr60" in text)).run()
    assert not at.exception, [e.message for e in at.exception]
    assert "Histograms of the estimates of one galaxy" in texts(at.caption)


def test_one_number_format():
    assert [support.number(v) for v in (10010.0, 5419.3, 0.0123456, 3.0, float("nan"))] == [
        "10010", "5419", "0.01235", "3", "-"]
    assert support.one_galaxy(np.ones((4, 5))) and not support.one_galaxy(np.eye(5))


def test_your_image_offers_the_real_cutouts_with_their_psf_image():
    from galaxies.interfaces import app_cutouts
    examples = app_cutouts.real_cutout_examples()
    assert set(examples) == {"a2744_f105w_dwarf", "a2744_f105w_neighbour", "a2744_f105w_compact"}
    at = open_app("your_image")
    at.button(key="up_real_a2744_f105w_compact").click().run()
    assert not at.exception and not at.error, [e.message for e in at.exception]
    assert "a2744_f105w_compact.fits.gz, with a2744_f105w_psf.fits.gz" in texts(at.caption)
    assert float(metric(at, "approximate SNR")) > 5


def test_your_image_takes_a_psf_image():
    """A PSF image replaces the Moffat of the FWHM field: the networks are then told the PSF
    the image gives (here a Moffat of 0.8", where the field says 0.5")."""
    import galsim
    from astropy.io import fits
    galaxy = galsim.Sersic(2.0, half_light_radius=0.3, flux=1e5)
    psf = galsim.Moffat(beta=2.0, fwhm=0.8)
    clean = galsim.Convolve(galaxy, psf).drawImage(nx=64, ny=64, scale=0.23).array
    noisy = clean + np.random.default_rng(5).normal(0.0, 200.0, clean.shape)
    psf_image = psf.drawImage(nx=41, ny=41, scale=0.23).array
    buffers = []
    for array in (noisy, psf_image):
        buffer = bytes_io.BytesIO()
        header = fits.Header({"PIXSCALE": 0.23})
        fits.PrimaryHDU(array.astype(np.float32), header).writeto(buffer)
        buffers.append(buffer.getvalue())
    at = open_app("your_image")
    at.file_uploader(key="up_file").upload("g.fits", buffers[0], "application/octet-stream").run()
    without = texts(at.caption)
    at.file_uploader(key="up_psf_file").upload("psf.fits", buffers[1],
                                               "application/octet-stream").run()
    assert not at.exception and not at.error, [e.message for e in at.exception]
    with_psf = texts(at.caption)
    fwhm = lambda text: float(text.split("a PSF FWHM of ")[1].split("″")[0])  # noqa: E731
    assert abs(fwhm(without) - 0.5) < 0.05 and abs(fwhm(with_psf) - 0.8) < 0.08
