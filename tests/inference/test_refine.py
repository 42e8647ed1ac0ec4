"""Likelihood refinement: the truth from a noiseless image, never uphill, the bound from one step,
the predictions file, refusals."""
import numpy as np
import pytest

from galaxies.inference import crb, refine
from galaxies.inference.likelihood import BOUNDS
from galaxies.runtime.errors import InputError, ParameterRangeError
from galaxies.simulation.render import GalaxyRenderer, add_noise
from galaxies.storage import files

SNR60 = np.array([1e5, 3.0, 0.3, -0.069, 0.15])


@pytest.fixture(scope="module")
def clean():
    return GalaxyRenderer().draw(*SNR60, 0.5).astype(np.float64)


@pytest.fixture(scope="module")
def bound():
    return crb.cramer_rao_bound(*SNR60, psf_fwhm=0.5, sigma=200.0)


@pytest.mark.parametrize("params, psf, sigma", [
    (tuple(SNR60), 0.5, 200.0),
    ((2.2e5, 1.73, 0.47, 0.31, 0.18), 0.8, 300.0),  # between grid nodes, another PSF
])
def test_noiseless_image_gives_the_truth_and_the_bound(params, psf, sigma):
    params = np.array(params)
    clean = GalaxyRenderer().draw(*params, psf)
    fisher = crb.fisher_matrix(*params, psf, sigma)
    bound = crb.cramer_rao_bound(*params, psf_fwhm=psf, sigma=sigma)
    start = params + 2 * bound * np.random.default_rng(1).standard_normal(5)  # inside the box
    result = refine.refine_image(clean, psf, sigma, start, steps=8, stop=1e-3)
    assert result.converged and not result.hit_bound and not result.nll_rose
    assert 1 <= result.steps < 8 and result.flags == 0
    error = (result.params - params) / bound
    assert np.all(np.abs(error) < 0.005), error
    # the full 5 x 5 Fisher matrix at the estimate is crb's at the truth
    np.testing.assert_allclose(result.std, bound, rtol=0.01)
    inverse = np.linalg.inv(fisher)
    correlation = inverse / np.outer(bound, bound)
    np.testing.assert_allclose(result.covariance / np.outer(result.std, result.std), correlation,
                               atol=0.01)


def test_the_likelihood_never_rises(clean, bound):
    rng = np.random.default_rng(4)
    starts = [SNR60 + 3 * bound * rng.standard_normal(5) for _ in range(5)]
    starts.append(np.array([1e5, 6.0, 0.6, 0.6, -0.6]))  # a corner of the box
    starts.append(np.array([1e5, 9.0, 0.05, 0.0, 0.0]))  # outside it: moved onto it, flagged
    for seed, start in enumerate(starts, start=1):
        result = refine.refine_image(add_noise(clean, 200.0, seed), 0.5, 200.0, start, steps=4)
        assert len(result.nll) == result.steps + 1
        assert np.all(np.diff(result.nll) <= 0), result.nll
        assert not result.nll_rose
        theta = result.params[1:]
        assert np.all((theta >= BOUNDS[:, 0]) & (theta <= BOUNDS[:, 1]))
        assert np.all(np.isfinite(result.std)) and np.all(result.std > 0)
    assert result.hit_bound and result.flags & refine.FLAGS["bound"]


def test_one_step_from_the_truth_has_the_bound_as_covariance(clean, bound):
    results = [refine.refine_image(add_noise(clean, 200.0, seed), 0.5, 200.0, SNR60, steps=1)
               for seed in range(1, 151)]
    estimates = np.array([r.params for r in results])
    ratio = estimates.std(axis=0, ddof=1) / bound
    assert np.all((ratio > 0.75) & (ratio < 1.3)), ratio
    assert np.all(np.abs(estimates.mean(axis=0) - SNR60) < 0.4 * bound)
    mean_std = np.mean([r.std for r in results], axis=0)
    np.testing.assert_allclose(mean_std, bound, rtol=0.05)
    assert all(r.steps == 1 and r.renders <= 8 + 6 for r in results)


def _start_file(path, n_rows, dataset, index=None, nan_row=None):
    noise = np.random.default_rng(5).standard_normal((n_rows, 5))
    pred = np.tile(SNR60, (n_rows, 1)) * (1 + 0.03 * noise)
    if nan_row is not None:
        pred[nan_row] = np.nan
    index = np.arange(n_rows) if index is None else np.asarray(index)
    return files.write_predictions(path, pred, index, estimator="net", dataset=dataset,
                                   seconds_per_image=0.001)


def test_predictions_file_contract(small_sets, tmp_path):
    index = [5, 3, 4, 0, 1, 2]  # any order: rows are the start's
    start = _start_file(tmp_path / "net__snr60.h5", 6, "snr60", index=index, nan_row=2)
    out = refine.refine_dataset(start, small_sets["fixed"], tmp_path / "refined.h5", steps=2,
                                jobs=1, progress=False)
    pred = files.load_predictions(out)
    assert pred.estimator == "net+newton2" and pred.dataset == "snr60"
    np.testing.assert_array_equal(pred.index, index)
    assert pred.pred.shape == pred.pred_std.shape == (6, 5)
    failed = (pred.extra["flags"] & refine.FLAGS["failed"]) > 0
    np.testing.assert_array_equal(failed, [False, False, True, False, False, False])
    assert np.isnan(pred.pred[2]).all() and np.isnan(pred.pred_std[2]).all()
    assert b"five finite numbers" in pred.extra["message"][2]
    assert pred.extra["converged"].dtype == bool and not pred.extra["converged"][2]
    seconds = pred.extra["seconds"]
    assert pred.seconds_per_image == pytest.approx(0.001 + seconds.mean(), rel=1e-5)
    assert pred.attrs["start_estimator"] == "net" and pred.attrs["steps"] == 2
    # the same numbers as refining the image directly
    ds = files.load_dataset(small_sets["fixed"], rows=np.array([5]))
    direct = refine.refine_image(ds.img[0], 0.5, 200.0, files.load_predictions(start).pred[0],
                                 steps=2)
    np.testing.assert_allclose(pred.pred[0], direct.params, rtol=1e-6)
    np.testing.assert_allclose(pred.pred_std[0], direct.std, rtol=1e-6)


def test_parallel_refinement_equals_serial(small_sets, tmp_path):
    start = _start_file(tmp_path / "net__snr60.h5", 8, "snr60")
    serial = refine.refine_dataset(start, small_sets["fixed"], tmp_path / "a.h5", steps=1,
                                   jobs=1, progress=False)
    parallel = refine.refine_dataset(start, small_sets["fixed"], tmp_path / "b.h5", steps=1,
                                     jobs=2, progress=False)
    a, b = files.load_predictions(serial), files.load_predictions(parallel)
    assert b.attrs["jobs"] == 2
    np.testing.assert_array_equal(a.pred, b.pred)
    np.testing.assert_array_equal(a.pred_std, b.pred_std)


def test_predictions_of_another_data_set_are_refused(small_sets, tmp_path):
    other = _start_file(tmp_path / "net__snr30.h5", 4, "snr30")
    with pytest.raises(InputError, match="data set 'snr30'.*'snr60'"):
        refine.refine_dataset(other, small_sets["fixed"], tmp_path / "out.h5", progress=False)
    bigger = _start_file(tmp_path / "net__big.h5", 20, "snr60")  # the set has 16 rows
    with pytest.raises(InputError, match="rows 0..15"):
        refine.refine_dataset(bigger, small_sets["fixed"], tmp_path / "out.h5", progress=False)
    twice = _start_file(tmp_path / "net__twice.h5", 4, "snr60", index=[0, 1, 1, 2])
    with pytest.raises(InputError, match="each once: False"):
        refine.refine_dataset(twice, small_sets["fixed"], tmp_path / "out.h5", progress=False)
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("change, message", [
    (dict(image=np.zeros((32, 32))), r"shape \(32, 32\)"),
    (dict(image=np.full((64, 64), np.nan)), "4096 non-finite"),
    (dict(start=[1e5, np.nan, 0.3, 0.0, 0.0]), r"start = \[.*nan"),
    (dict(start=[1e5, 3.0]), "five finite numbers"),
    (dict(steps=0), "steps = 0"),
    (dict(steps=1.5), "steps = 1.5"),
    (dict(stop=0.0), "stop = 0.0"),
    (dict(psf_fwhm=2.0), "psf_fwhm"),
])
def test_bad_input_is_refused_naming_the_value(clean, change, message):
    args = dict(image=clean, psf_fwhm=0.5, sigma=200.0, start=SNR60, steps=2)
    args.update(change)
    with pytest.raises(InputError, match=message):
        refine.refine_image(**args)


def test_bad_dataset_arguments_are_refused(small_sets, tmp_path):
    start = _start_file(tmp_path / "net__snr60.h5", 4, "snr60")
    with pytest.raises(InputError, match="steps = 0"):
        refine.refine_dataset(start, small_sets["fixed"], tmp_path / "out.h5", steps=0)
    with pytest.raises(InputError, match="limit = 0"):
        refine.refine_dataset(start, small_sets["fixed"], tmp_path / "out.h5", limit=0)
    assert issubclass(ParameterRangeError, InputError)


# ------------------------------------------------------------------------ the command line

@pytest.mark.parametrize("renderer, refined_name, fit_name", [
    ("galsim", "net+newton1", "lbfgsb+net"), ("jax", "net+newton1-jax", "lm-jax+net")])
def test_cli_refines_predictions_and_fits_from_them(small_sets, tmp_path, renderer,
                                                    refined_name, fit_name):
    from click.testing import CliRunner

    from galaxies.interfaces.cli import main
    start = _start_file(tmp_path / "net__snr60.h5", 4, "snr60")
    runner = CliRunner()
    result = runner.invoke(main, ["refine", "--start", str(start), str(small_sets["fixed"]),
                                  str(tmp_path / "refined.h5"), "--steps", "1", "--jobs", "1",
                                  "--renderer", renderer])
    assert result.exit_code == 0, result.output
    refined = files.load_predictions(tmp_path / "refined.h5")
    assert refined.estimator == refined_name and refined.pred_std is not None and len(refined) == 4
    assert refined.extra["steps"].max() <= 1
    result = runner.invoke(main, ["fit", str(small_sets["fixed"]), str(tmp_path / "fit.h5"),
                                  "--start", str(start), "--limit", "2", "--jobs", "1",
                                  "--renderer", renderer])
    assert result.exit_code == 0, result.output
    fit = files.load_predictions(tmp_path / "fit.h5")
    assert fit.estimator == fit_name and len(fit) == 2 and fit.extra["converged"].all()
    assert fit.seconds_per_image > fit.attrs["fit_seconds_per_image"]  # both stages counted
    np.testing.assert_allclose(fit.pred[:, 1], 3.0, atol=1.0)  # near the truth at SNR 60


def test_cli_refuses_a_start_of_another_set_and_a_wrong_path_count(small_sets, tmp_path):
    from click.testing import CliRunner

    from galaxies.interfaces.cli import main
    other = _start_file(tmp_path / "net__snr30.h5", 4, "snr30")
    runner = CliRunner()
    for args in (["fit", str(small_sets["fixed"]), str(tmp_path / "f.h5"), "--start", str(other)],
                 ["refine", "--start", str(other), str(small_sets["fixed"]), str(tmp_path / "r.h5")]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2 and "'snr30'" in result.output, result.output
    result = runner.invoke(main, ["refine", str(small_sets["fixed"]), str(tmp_path / "r.h5")])
    assert result.exit_code == 2 and "MODEL_DIR DATA OUT" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net__snr30.h5"]
