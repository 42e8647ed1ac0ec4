"""The JAX model's fit, refinement and bounds of a data set: the GalSim path's files and numbers."""
import h5py
import numpy as np
import pytest

from galaxies.inference import crb_sets, galsim_fit
from galaxies.inference.differentiable import datasets
from galaxies.inference.refine import FLAGS
from galaxies.runtime.errors import InputError
from galaxies.storage import files

#: the bound of snr60's galaxy (`galaxies crb`)
SNR60_CRB = np.array([5648.0, 0.777, 0.0287, 0.0543, 0.0549])


def test_the_fit_of_a_set_is_the_galsim_fits_file_and_estimates(small_sets, tmp_path):
    out = datasets.fit_dataset(small_sets["fixed"], tmp_path / "lm-jax_fit__snr60.h5", limit=4,
                               progress=False)
    pred = files.load_predictions(out)
    assert pred.estimator == datasets.FIT_ESTIMATOR == "lm-jax" and pred.dataset == "snr60"
    assert list(pred.index) == [0, 1, 2, 3] and pred.pred_std is not None
    galsim = files.load_predictions(galsim_fit.fit_dataset(
        small_sets["fixed"], tmp_path / "lbfgsb.h5", limit=4, jobs=1, progress=False))
    assert set(galsim.extra) <= set(pred.extra)  # converged, nfev, nit, seconds, message
    assert pred.extra["converged"].all() and (pred.extra["nfev"] > pred.extra["nit"]).all()
    assert pred.seconds_per_image > 0 and pred.attrs["converged_fraction"] == 1.0
    # the same maximum of the same likelihood: far inside the bound of each other
    np.testing.assert_array_less(np.abs(pred.pred - galsim.pred) / SNR60_CRB, 0.05)
    np.testing.assert_allclose(pred.pred_std, np.tile(SNR60_CRB, (4, 1)), rtol=0.3)
    with pytest.raises(InputError, match="limit = 0"):
        datasets.fit_dataset(small_sets["fixed"], tmp_path / "x.h5", limit=0, progress=False)
    assert not (tmp_path / "x.h5").exists()


def _start(path, truth, index, nan_row=None):
    pred = truth * (1 + 0.03 * np.random.default_rng(5).standard_normal(truth.shape))
    if nan_row is not None:
        pred[nan_row] = np.nan
    return files.write_predictions(path, pred, index, estimator="net", dataset="snr60",
                                   seconds_per_image=0.001)


def test_the_refinement_keeps_the_starts_rows_flags_failures_and_counts_both_stages(small_sets,
                                                                                  tmp_path):
    truth = files.load_dataset(small_sets["fixed"], fields=()).label
    index = [5, 3, 4, 0, 1, 2]
    start = _start(tmp_path / "net__snr60.h5", truth[index].astype(float), index, nan_row=2)
    out = datasets.refine_dataset(start, small_sets["fixed"], tmp_path / "refined.h5", steps=2,
                                  progress=False)
    pred = files.load_predictions(out)
    assert pred.estimator == datasets.refined_name("net", 2) == "net+newton2-jax"
    assert list(pred.index) == index
    assert pred.extra["flags"][2] == FLAGS["failed"] and np.isnan(pred.pred[2]).all()
    kept = np.delete(np.arange(6), 2)
    assert (pred.extra["steps"][kept] >= 1).all() and (pred.extra["steps"] <= 2).all()
    assert pred.attrs["failed"] == 1 and pred.attrs["start_estimator"] == "net"
    assert pred.seconds_per_image == pytest.approx(0.001 + pred.attrs["refine_seconds_per_image"])
    # two steps from 3% off: the likelihood's maximum, which the fit finds too
    fit = files.load_predictions(datasets.fit_dataset(
        small_sets["fixed"], tmp_path / "fit.h5", limit=6, progress=False))
    np.testing.assert_array_less(np.abs(pred.pred[kept] - fit.pred[np.array(index)[kept]])
                                 / SNR60_CRB, 0.05)


def test_the_bounds_of_a_set_by_renderer_are_cached_apart(small_sets, tmp_path):
    import shutil
    data = shutil.copy(small_sets["random"], tmp_path / "v1.h5")
    jax = crb_sets.for_dataset(data, limit=6, progress=False, renderer="jax")
    assert crb_sets.cache_path(data, "jax").name == "v1.crb-jax.h5"
    assert not crb_sets.cache_path(data).exists()  # GalSim's cache is not JAX's
    galsim = crb_sets.for_dataset(data, limit=6, jobs=1, progress=False)
    np.testing.assert_allclose(jax[:6], galsim[:6], rtol=0.01)
    for renderer in ("jax", "galsim"):
        with h5py.File(crb_sets.cache_path(data, renderer)) as f:
            assert f.attrs["renderer"] == renderer
    # a cache under the other's name is not read as this renderer's
    shutil.copy(crb_sets.cache_path(data, "galsim"), crb_sets.cache_path(data, "jax"))
    again = crb_sets.for_dataset(data, limit=2, progress=False, renderer="jax")
    np.testing.assert_allclose(again[:2], jax[:2], rtol=1e-5)
    assert np.isnan(again[2:]).all()
    with pytest.raises(InputError, match="renderer 'gpu'"):
        crb_sets.for_dataset(data, renderer="gpu")
