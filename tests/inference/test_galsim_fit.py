"""The maximum-likelihood baseline: the model, exact recovery, the predictions file, bad input."""
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from galaxies.evaluation import evaluate
from galaxies.inference import crb, galsim_fit, likelihood
from galaxies.runtime.errors import ParameterRangeError
from galaxies.simulation.render import GalaxyRenderer
from galaxies.storage import files

ROOT = Path(__file__).resolve().parents[2]
SNR60 = (1e5, 3.0, 0.3, -0.069, 0.15)


def test_model_is_galsim_at_the_nodes_and_close_between_them():
    renderer = GalaxyRenderer()
    model = likelihood.SersicModel(0.7, renderer=renderer)
    at_node = model.image(3.0, 0.3, -0.069, 0.15)
    exact = renderer.draw(1.0, 3.0, 0.3, -0.069, 0.15, 0.7)
    np.testing.assert_allclose(at_node, exact, rtol=0, atol=1e-6 * exact.max())
    for n in (0.63, 2.37, 5.91):  # between nodes, near both ends of the range
        between, dn = model.image_and_dn(n, 0.45, 0.2, -0.1)
        exact = renderer.draw(1.0, n, 0.45, 0.2, -0.1, 0.7)
        assert np.linalg.norm(between - exact) < 5e-5 * np.linalg.norm(exact)
        np.testing.assert_allclose(between, model.image(n, 0.45, 0.2, -0.1), rtol=0, atol=1e-9)
        step = 1e-3
        difference = (renderer.draw(1.0, n + step, 0.45, 0.2, -0.1, 0.7)
                      - renderer.draw(1.0, n - step, 0.45, 0.2, -0.1, 0.7)) / (2 * step)
        assert np.linalg.norm(dn - difference) < 0.01 * np.linalg.norm(difference)


@pytest.mark.parametrize("params, psf, sigma", [
    (SNR60, 0.5, 200.0),
    ((2.2e5, 1.73, 0.47, 0.31, 0.18), 0.8, 300.0),  # between grid nodes, another PSF
])
def test_fit_recovers_the_truth_from_a_noiseless_image(params, psf, sigma):
    clean = GalaxyRenderer().draw(*params, psf)
    result = galsim_fit.fit_image(clean, psf, sigma)
    assert result.converged, result.message
    bound = crb.cramer_rao_bound(*params, psf_fwhm=psf, sigma=sigma)
    error = (result.params - np.array(params)) / bound
    assert np.all(np.abs(error) < 0.01), error  # a hundredth of the statistical error
    assert result.params.shape == (5,) and result.nfev > 0 and result.seconds > 0


def test_fit_of_noisy_images_is_close_to_the_truth(small_sets):
    ds = files.load_dataset(small_sets["fixed"], rows=3)
    bound = crb.cramer_rao_bound(*SNR60)
    for image in ds.img:
        result = galsim_fit.fit_image(image, 0.5, 200.0)
        assert result.converged, result.message
        assert np.all(np.abs(result.params - np.array(SNR60)) < 5 * bound)


def test_predictions_file_contract(small_sets, tmp_path):
    out = galsim_fit.fit_dataset(small_sets["fixed"], tmp_path / "lbfgsb_fit__snr60.h5", limit=3,
                               jobs=1, progress=False)
    pred = files.load_predictions(out)
    assert pred.estimator == "lbfgsb" and pred.dataset == "snr60"
    assert pred.pred.shape == (3, 5) and pred.pred.dtype == np.float32
    np.testing.assert_array_equal(pred.index, [0, 1, 2])
    assert 0 < pred.seconds_per_image < 60
    assert pred.extra["converged"].dtype == bool and pred.extra["converged"].all()
    for name in ("nfev", "nit", "seconds", "message"):
        assert len(pred.extra[name]) == 3
    assert pred.attrs["jobs"] == 1 and pred.attrs["failed"] == 0
    assert "L-BFGS-B" in pred.attrs["method"]
    table = evaluate.against_crb(pred, files.load_dataset(small_sets["fixed"], fields=()),
                                 crb.cramer_rao_bound(*SNR60))
    assert list(table.index) == ["flux", "sersic_n", "sersic_r", "g1", "g2"]
    assert (table["rmse/crb"] < 5).all()


def test_parallel_fits_equal_serial_ones(small_sets, tmp_path):
    serial = galsim_fit.fit_dataset(small_sets["fixed"], tmp_path / "a.h5", limit=2, jobs=1,
                                  progress=False)
    parallel = galsim_fit.fit_dataset(small_sets["fixed"], tmp_path / "b.h5", limit=8, jobs=2,
                                    progress=False)
    a, b = files.load_predictions(serial), files.load_predictions(parallel)
    assert b.attrs["jobs"] == 2 and len(b) == 8
    np.testing.assert_array_equal(a.pred, b.pred[:2])


@pytest.mark.parametrize("with_start", [False, True])
def test_fits_read_the_images_in_blocks_each_with_its_row(small_sets, tmp_path, monkeypatch,
                                                          with_start):
    """Blocks of 3 rows: every fit gets its own image, PSF, noise and start, in the order of
    the whole-array path (the rows of a start sorted)."""
    from galaxies.storage import chunked
    monkeypatch.setattr(chunked, "BLOCK_ROWS", 3)
    seen = []

    def fake(image, psf, sigma, start=None):
        seen.append((image.copy(), psf, sigma, None if start is None else start.copy()))
        return galsim_fit.FitResult(params=np.array([image.sum(), 1, 0.3, 0, 0]), converged=True,
                                  nfev=1, nit=1, seconds=0.0, message="ok", nll=0.0)
    monkeypatch.setattr(galsim_fit, "fit_image", fake)
    whole = files.load_dataset(small_sets["random"], fields=("img",))
    rows, start = np.arange(11), None
    if with_start:
        rows = np.random.default_rng(1).permutation(40)[:11]
        starts = np.random.default_rng(2).uniform(1, 2, (11, 5))
        start = files.write_predictions(tmp_path / "start.h5", starts, rows, estimator="x",
                                        dataset="v1", seconds_per_image=0.0)
    out = files.load_predictions(galsim_fit.fit_dataset(small_sets["random"], tmp_path / "f.h5",
                                                      limit=11, jobs=1, start=start, progress=False))
    order = np.argsort(rows)
    np.testing.assert_array_equal(out.index, rows[order])
    np.testing.assert_array_equal(np.array([s[0] for s in seen]), whole.img[rows[order]])
    np.testing.assert_array_equal([s[2] for s in seen], whole.sigma[rows[order]])
    np.testing.assert_array_equal(out.pred[:, 0], whole.img[rows[order]].sum(axis=(1, 2)).astype(np.float32))
    if with_start:
        np.testing.assert_array_equal(np.array([s[3] for s in seen]),
                                      starts.astype(np.float32)[order])


def test_a_failed_fit_is_reported_not_dropped(monkeypatch):
    calls = []

    def flaky(image, psf, sigma, start=None):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("GalSim exploded")
        return galsim_fit.FitResult(params=np.array(SNR60), converged=True, nfev=1, nit=1,
                                  seconds=0.0, message="ok", nll=0.0)
    monkeypatch.setattr(galsim_fit, "fit_image", flaky)
    rows = galsim_fit._fit_rows(np.zeros((3, 64, 64)), np.full(3, 0.5), np.full(3, 200.0),
                              np.full((3, 5), np.nan))
    assert len(rows) == 3
    params, converged, *_, message = rows[1]
    assert np.isnan(params).all() and converged is False
    assert message == "failed: RuntimeError: GalSim exploded"


def test_bad_input_to_fit_image():
    good = np.zeros((64, 64))
    with pytest.raises(ValueError, match="shape"):
        galsim_fit.fit_image(np.zeros((32, 32)), 0.5, 200.0)
    with pytest.raises(ValueError, match="non-finite"):
        galsim_fit.fit_image(np.full((64, 64), np.nan), 0.5, 200.0)
    with pytest.raises(ParameterRangeError, match="psf_fwhm = 1.5 is outside"):
        galsim_fit.fit_image(good, 1.5, 200.0)
    with pytest.raises(ParameterRangeError, match="sigma = 20 is outside"):
        galsim_fit.fit_image(good, 0.5, 20.0)
    with pytest.raises(ValueError, match="start"):
        galsim_fit.fit_image(good, 0.5, 200.0, start=[1.0, 2.0])


def test_bad_data_sets_get_clear_errors(small_sets, tmp_path, without_field):
    missing = without_field(small_sets["fixed"], "img")
    with pytest.raises(files.FileFormatError, match="img"):
        galsim_fit.fit_dataset(missing, tmp_path / "out.h5", progress=False)
    noisy = tmp_path / "loud.h5"
    noisy.write_bytes(Path(small_sets["fixed"]).read_bytes())
    with h5py.File(noisy, "r+") as f:
        f["sigma"][1] = 900.0
    with pytest.raises(ParameterRangeError, match="row 1: sigma = 900"):
        galsim_fit.fit_dataset(noisy, tmp_path / "out.h5", limit=4, progress=False)
    with pytest.raises(ValueError, match="limit = 0"):
        galsim_fit.fit_dataset(small_sets["fixed"], tmp_path / "out.h5", limit=0, progress=False)
    assert not (tmp_path / "out.h5").exists()


def test_cli_fit_and_evaluate(small_sets, tmp_path):
    out = tmp_path / "pred.h5"
    cli = [sys.executable, "-m", "galaxies.interfaces.cli"]
    done = subprocess.run(cli + ["fit", str(small_sets["fixed"]), str(out), "--limit", "1",
                                 "--jobs", "1"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "1 fits, 1 converged" in done.stdout and out.is_file()
    done = subprocess.run(cli + ["evaluate", str(small_sets["fixed"]), str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "rmse/crb" in done.stdout and "sersic_r" in done.stdout
    bad = subprocess.run(cli + ["fit", str(tmp_path / "nope.h5"), str(out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("galaxies: error:")
    assert len(bad.stderr.strip().splitlines()) == 1
