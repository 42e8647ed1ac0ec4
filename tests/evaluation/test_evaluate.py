"""Evaluation tables on synthetic predictions with known errors."""
import numpy as np
import pytest

from galaxies.evaluation import evaluate
from galaxies.storage import files


@pytest.fixture
def truth_and_predictions(small_sets, tmp_path):
    ds = files.load_dataset(small_sets["fixed"], fields=())
    rng = np.random.default_rng(0)
    scale = np.array([1000.0, 0.1, 0.01, 0.02, 0.02])
    bias = np.array([500.0, -0.05, 0.0, 0.01, 0.0])
    pred = ds.label + bias + rng.normal(size=ds.label.shape) * scale
    path = files.write_predictions(tmp_path / "est_v1__snr60.h5", pred, np.arange(len(ds)),
                                estimator="est", dataset="snr60", seconds_per_image=0.01,
                                pred_std=np.broadcast_to(scale, pred.shape))
    return ds, path, pred, scale, bias


def test_summary_and_ratios_match_numpy(truth_and_predictions):
    ds, path, pred, scale, bias = truth_and_predictions
    error = pred.astype(np.float32).astype(float) - ds.label.astype(float)
    crb = scale / 2
    table = evaluate.against_crb(path, ds, crb)
    np.testing.assert_allclose(table["bias"], error.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(table["std"], error.std(axis=0, ddof=1), rtol=1e-6)
    np.testing.assert_allclose(table["rmse"], np.sqrt((error ** 2).mean(axis=0)), rtol=1e-6)
    np.testing.assert_allclose(table["rmse/crb"], table["rmse"] / crb)
    assert list(table.index) == ["flux", "sersic_n", "sersic_r", "g1", "g2"]


def test_per_galaxy_bounds_leave_out_rows_without_a_bound(truth_and_predictions):
    ds, path, pred, scale, _ = truth_and_predictions
    crb = np.tile(scale, (len(ds), 1))
    crb[len(ds) // 2:] = np.nan  # only the first half computed
    table = evaluate.against_crb(path, ds, crb)
    assert (table["n"] == len(ds) // 2).all()
    half = evaluate.summary(files.Predictions(None, pred[: len(ds) // 2].astype(np.float32),
                                           np.arange(len(ds) // 2), "est", "snr60", 0.0), ds)
    np.testing.assert_allclose(table["rmse"], half["rmse"], rtol=1e-6)
    with pytest.raises(ValueError, match="no galaxy"):
        evaluate.against_crb(path, ds, np.full((len(ds), 5), np.nan))


def test_calibration_of_exact_standard_deviations(truth_and_predictions):
    ds, path, *_ = truth_and_predictions
    table = evaluate.calibration(path, ds)
    assert ((table["z std"] > 0.5) & (table["z std"] < 1.6)).all()  # 16 draws of a unit normal
    assert ((table["coverage 68%"] >= 0) & (table["coverage 68%"] <= 100)).all()


def test_predictions_must_fit_the_data_set(truth_and_predictions, tmp_path):
    ds, *_ = truth_and_predictions
    bad = files.write_predictions(tmp_path / "x_v1__snr60.h5", np.zeros((2, 5)), np.array([0, 999]),
                               estimator="x", dataset="snr60", seconds_per_image=0.0)
    with pytest.raises(ValueError, match="row 999"):
        evaluate.summary(bad, ds)


def test_list_predictions_parses_names(truth_and_predictions, tmp_path):
    files.write_predictions(tmp_path / "edsr-xception_v1__test.h5", np.zeros((1, 5)), np.array([0]),
                         estimator="edsr-xception", dataset="test", seconds_per_image=0.5)
    table = evaluate.list_predictions(tmp_path).set_index("estimator")
    assert table.loc["edsr-xception", "trainset"] == "v1"
    assert table.loc["edsr-xception", "testset"] == "test"
    assert table.loc["est", "testset"] == "snr60"


def test_shear_calibration_recovers_m_and_c(small_sets, tmp_path):
    ds = files.load_dataset(small_sets["random"], fields=())
    rng = np.random.default_rng(3)
    pred = ds.label.astype(np.float64).copy()
    pred[:, 3] = 1.02 * ds.label[:, 3] + 0.003 + rng.normal(0, 1e-4, len(ds))
    pred[:, 4] = 0.97 * ds.label[:, 4] - 0.001 + rng.normal(0, 1e-4, len(ds))
    path = files.write_predictions(tmp_path / "p.h5", pred, np.arange(len(ds)), estimator="e",
                                   dataset=ds.name, seconds_per_image=1.0)
    table = evaluate.shear_calibration(path, ds, min_snr=20)
    overall = table.xs("all", level="snr")
    assert overall.loc["g1", "m"] == pytest.approx(0.02, abs=1e-3)
    assert overall.loc["g1", "c"] == pytest.approx(0.003, abs=1e-4)
    assert overall.loc["g2", "m"] == pytest.approx(-0.03, abs=1e-3)
    assert overall.loc["g2", "c"] == pytest.approx(-0.001, abs=1e-4)
    # the standard errors are those of the scatter put in: 1e-4 / (std of g sqrt(N)) for m
    expected = 1e-4 / (ds.label[:, 3].std() * np.sqrt(len(ds)))
    assert overall.loc["g1", "m err"] == pytest.approx(expected, rel=0.5)
    assert overall.loc["g1", "c err"] == pytest.approx(1e-4 / np.sqrt(len(ds)), rel=0.5)
    assert overall.loc["g1", "n"] == len(ds)
    bins = table.xs("g1", level="parameter").drop(["all", "> 20"])
    assert bins["n"].sum() == len(ds)  # every galaxy in one bin (the set's SNR is 10..100)


def test_bias_variance_splits_a_known_bias_from_the_noise():
    rng = np.random.default_rng(0)
    truth = rng.uniform(1.0, 2.0, size=(40, 5))
    crb = rng.uniform(0.5, 1.5, size=(40, 5))
    bias = np.array([0.0, 1.0, 2.0, 0.0, 0.5])  # in bound units, every galaxy alike
    pred = truth[:, None] + crb[:, None] * (bias + rng.standard_normal((40, 400, 5)))
    table = evaluate.bias_variance(pred, truth, crb)
    assert np.allclose(table["rms bias"], bias, atol=0.06)
    assert np.allclose(table["rms std"], 1.0, atol=0.03)
    assert np.allclose(table["bias share"], bias**2 / (bias**2 + 1), atol=0.03)
    with pytest.raises(evaluate.InputError):
        evaluate.bias_variance(pred[:, :1], truth, crb)


def test_normalized_by_bins_the_errors_over_their_bounds():
    truth = np.zeros((6, 5))
    crb = np.full((6, 5), 2.0)
    pred = np.repeat([[2.0], [2.0], [-4.0], [4.0], [0.0], [np.nan]], 5, axis=1)
    values = np.array([0.1, 0.2, 0.6, 0.7, 0.9, 0.5])
    table = evaluate.normalized_by(pred, truth, crb, values, bins=(0.0, 0.5, 1.0))
    assert list(table["n"]) == [2, 3]  # the NaN row is left out
    assert np.allclose(table[("flux", "bias")], [1.0, 0.0])
    assert np.allclose(table[("g2", "rms")], [1.0, np.sqrt(8 / 3)])


def test_rows_with_nan_or_infinite_values_are_counted_and_said(truth_and_predictions, tmp_path):
    import dataclasses

    from click.testing import CliRunner

    from galaxies.interfaces.cli import main
    ds, _, pred, scale, _ = truth_and_predictions
    pred = pred.copy()
    pred[0, 1], pred[1, 3], pred[2, :] = np.nan, np.inf, -np.inf
    pred[:, 0] = np.nan  # a parameter not measured at all (as HSM's flux): not "dropped"
    label = ds.label.copy()
    label[3, 4] = np.nan
    path = files.write_predictions(tmp_path / "holes_v1__snr60.h5", pred, np.arange(len(ds)),
                                   estimator="holes", dataset="snr60", seconds_per_image=0.01)
    table = evaluate.summary(path, dataclasses.replace(ds, label=label))
    assert list(table["dropped"]) == [0, 2, 1, 2, 2]
    assert list(table["n"]) == [0, len(ds) - 2, len(ds) - 1, len(ds) - 2, len(ds) - 2]
    assert table.attrs == {"dropped_rows": 4, "dropped_predictions": 3, "dropped_labels": 1,
                           "rows": len(ds)}
    assert np.isfinite(table.loc["sersic_n", "rmse"])
    done = CliRunner().invoke(main, ["evaluate", str(ds.path), str(path), "--no-crb"])
    assert done.exit_code == 0, done.output
    header = done.output.splitlines()[0]
    assert f"({len(ds)} rows" in header and "3 row(s) left out" in header, header
    assert "dropped" in done.output.splitlines()[1]
