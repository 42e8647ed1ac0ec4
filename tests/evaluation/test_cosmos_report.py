"""The cosmos report: the table of estimates, HSM on the set, the domain flag and its scoring."""
import numpy as np
import pytest

from galaxies.evaluation import cosmos_report
from galaxies.simulation import cosmos
from galaxies.runtime.errors import InputError
from galaxies.storage import files


@pytest.fixture(scope="module")
def small_cosmos(tmp_path_factory):
    path = tmp_path_factory.mktemp("cosmos") / "cosmos.h5"
    return cosmos.build(path, cosmos.CosmosSpec(galaxies=8, angles=2, realizations=1),
                        progress=False)


def test_hsm_on_the_set_and_the_truth_as_an_estimator(small_cosmos):
    estimates, details = cosmos_report.estimate(small_cosmos, "smoke", networks=[], fit=False)
    assert set(estimates) == set(cosmos_report.HSM)
    ds = files.load_dataset(small_cosmos, fields=("label",))
    estimates["truth"] = ds.label.astype(float)
    table = cosmos_report.report_table(small_cosmos, estimates).set_index(["estimator", "group"])
    truth = table.loc["truth"]
    assert truth.loc["all", "m"] == pytest.approx(0.0, abs=1e-9)
    assert truth.loc["all", "c1"] == pytest.approx(0.0, abs=1e-9)
    assert truth.loc["all", "flux_bias_pct"] == pytest.approx(0.0, abs=1e-4)
    ksb = table.loc["hsm-KSB"]
    assert np.isnan(ksb.loc["all", "flux_bias_pct"]) and np.isfinite(ksb.loc["all", "m"])
    assert ksb.loc["all", "rows"] + ksb.loc["all", "failed"] == len(ds)
    assert details["seconds"]["hsm-KSB"] > 0


def test_a_missing_network_or_refinement_is_a_one_line_error(small_cosmos, tmp_path):
    with pytest.raises(InputError, match="no model"):
        cosmos_report.estimate(small_cosmos, "smoke", networks=["nothing_v1"], fit=False,
                               hsm=False)
    with pytest.raises(InputError, match="refine_from"):
        cosmos_report.estimate(small_cosmos, "smoke", networks=[], refine_from=["x_v1"],
                               fit=False, hsm=False)


def test_the_fits_in_worker_processes_are_the_fits_here(small_cosmos, monkeypatch):
    """Three batches over two spawned workers give, batch by batch and in order, what the
    same batches give in this process: the Sérsic fit, the wide one and the bulge plus disc."""
    pytest.importorskip("jax")
    from types import SimpleNamespace

    ds = files.load_dataset(small_cosmos)
    rows = SimpleNamespace(img=ds.img[:9], psf_fwhm=ds.psf_fwhm[:9], sigma=ds.sigma[:9])
    monkeypatch.setattr(cosmos_report, "BATCH", 4)
    here = cosmos_report._fits(rows, bulge_disc=True, jobs=1)
    there = cosmos_report._fits(rows, bulge_disc=True, jobs=2)
    assert [len(b[cosmos_report.FIT].params) for b in there] == [4, 4, 1]
    for mine, theirs in zip(here, there):
        for name in (cosmos_report.FIT, cosmos_report.WIDE):
            np.testing.assert_allclose(theirs[name].params, mine[name].params, rtol=1e-6)
            np.testing.assert_allclose(theirs[name].nll, mine[name].nll, rtol=1e-9)
            assert theirs[name].seconds > 0
        np.testing.assert_allclose(theirs[cosmos_report.BULGE_DISC][0],
                                   mine[cosmos_report.BULGE_DISC][0], rtol=1e-6)
        assert theirs[cosmos_report.BULGE_DISC][2] > 0
    pred, nll, seconds = cosmos_report._bulge_disc_estimates(
        [b[cosmos_report.BULGE_DISC] for b in there])
    assert pred.shape == (9, 5) and np.isnan(pred[:, 1]).all() and np.isfinite(nll).all()
    assert np.all(pred[:, 2] > 0) and seconds > 0


def test_the_flag_is_quiet_on_the_model_and_raised_by_a_wrong_one():
    rng = np.random.default_rng(0)
    pixels, sigma = 4096, 10.0
    model = np.zeros((200, pixels))
    model[:, :50] = 100.0
    data = model + rng.normal(0, sigma, model.shape)
    nll_right = 0.5 * np.sum((data - model) ** 2, axis=1) / sigma**2
    wrong = model.copy()
    wrong[:, :50] = 60.0  # 4 sigma off on 50 pixels: chi-square up by 800 (the flag: 452)
    nll_wrong = 0.5 * np.sum((data - wrong) ** 2, axis=1) / sigma**2
    chi2 = cosmos_report.reduced_chi2(nll_right, pixels)
    assert chi2.mean() == pytest.approx(1.0, abs=0.01)
    assert cosmos_report.domain_flag(nll_right, pixels).mean() < 0.02
    assert cosmos_report.domain_flag(nll_wrong, pixels).mean() > 0.98


def test_large_errors_and_how_the_flag_scores():
    label = np.array([[1e5, 1.0, 0.4, 0.01, 0.0]] * 4)
    std = np.array([[1e3, 0.1, 0.01, 0.01, 0.01]] * 4)
    pred = label.copy()
    pred[1, 0] = 1.15e5        # 15% flux: large by the percent rule and by the bound
    pred[2, 2] = 0.425         # 6%, 2.5 bounds: not large
    pred[3, 3] = 0.05          # shear 4 bounds off on a single Sérsic: large
    g_total = label[:, 3:5]
    kind = np.array([0, 0, 0, 0])
    big = cosmos_report.large_errors(pred, label, std, g_total, kind)
    assert big.tolist() == [False, True, False, True]
    assert not cosmos_report.large_errors(pred, label, std, g_total, np.ones(4))[3]
    perf = cosmos_report.flag_performance([False, True, True, False], big)
    assert perf == {"large": 2, "good": 2, "caught": 0.5, "false_flags": 0.5}


def test_errors_over_the_bound_on_the_single_sersics_inside_the_box(small_cosmos):
    from galaxies.inference.differentiable.bound import cramer_rao_bounds
    rows, crb = cosmos_report.sersic_bounds(small_cosmos)
    extra = cosmos.load_extra(small_cosmos)
    assert len(rows) and (extra["kind"][rows] == cosmos.SERSIC).all() and extra["in_box"][rows].all()
    ds = files.load_dataset(small_cosmos, fields=("label", "psf_fwhm", "sigma"))
    truth = np.column_stack([ds.label[rows, :3], extra["g_total"][rows]]).astype(float)
    np.testing.assert_allclose(crb[:2], cramer_rao_bounds(truth[:2], ds.psf_fwhm[rows][:2],
                                                          ds.sigma[rows][:2]), rtol=1e-6)
    full = np.zeros((len(ds), 5))
    full[rows] = truth
    shifted = full.copy()
    shifted[rows] += 2.0 * crb  # two bounds off in every parameter
    table = cosmos_report.against_bounds({"truth": full, "shifted": shifted}, small_cosmos,
                                         rows, crb).set_index(["estimator", "statistic"])
    assert np.allclose(table.loc[("truth", "norm rmse")], 0.0)
    assert np.allclose(table.loc[("shifted", "norm bias")], 2.0)
