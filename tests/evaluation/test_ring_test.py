"""The ring test's m, c and their errors, and the table, on fake estimators of known bias."""
import numpy as np
import pytest

from galaxies.evaluation import ring_test
from galaxies.runtime.errors import InputError


def _ring(galaxies=150, angles=4, seed=0, shear=0.03):
    """Applied shears of a paired ring (rows: galaxy, angle, sign), and the galaxy of each row."""
    rng = np.random.default_rng(seed)
    phi = rng.uniform(0, np.pi, galaxies)
    g = shear * np.stack([np.cos(2 * phi), np.sin(2 * phi)], axis=1)
    galaxy = np.repeat(np.arange(galaxies), 2 * angles)
    sign = np.tile([1.0, -1.0], galaxies * angles)
    return g[galaxy] * sign[:, None], galaxy, sign


def _fake(truth, m, c, rng, pair_noise=0.05, own_noise=0.01):
    """g_hat = (1 + m) g + c + noise, the noise shared by a ± pair and a little of its own."""
    shared = np.repeat(rng.normal(0, pair_noise, (len(truth) // 2, 2)), 2, axis=0)
    return (1 + np.asarray(m)) * truth + np.asarray(c) + shared + rng.normal(0, own_noise, truth.shape)


def test_a_fake_estimator_of_known_m_and_c_is_recovered_with_honest_errors():
    truth, galaxy, _ = _ring()
    rng = np.random.default_rng(1)
    m, c = (0.05, -0.02), (0.003, -0.001)
    runs = [ring_test.shear_bias(_fake(truth, m, c, rng), truth, galaxy) for _ in range(60)]
    for key, value in (("m1", m[0]), ("m2", m[1]), ("c1", c[0]), ("c2", c[1])):
        est = np.array([r[key] for r in runs])
        se = np.array([r[f"{key}_se"] for r in runs])
        assert abs(est.mean() - value) < 4 * est.std() / np.sqrt(len(est)), key
        # the jackknife's error is the scatter of the estimate over noise realizations
        assert 0.75 < se.mean() / est.std() < 1.33, (key, se.mean(), est.std())
    one = runs[0]
    assert one["rows"] == len(truth) and one["galaxies"] == 150
    assert abs(one["m1"] - m[0]) < 4 * one["m1_se"]


def test_an_unbiased_estimator_has_m_and_c_consistent_with_zero_and_a_biased_one_not():
    truth, galaxy, _ = _ring(galaxies=200)
    rng = np.random.default_rng(2)
    fair = ring_test.shear_bias(_fake(truth, 0, 0, rng), truth, galaxy)
    for key in ("m", "m1", "m2", "c1", "c2"):
        assert abs(fair[key]) < 4 * fair[f"{key}_se"], key
    biased = ring_test.shear_bias(_fake(truth, 0.1, 0.01, rng), truth, galaxy)
    assert biased["m"] > 5 * biased["m_se"] and biased["c1"] > 5 * biased["c1_se"]


def test_paired_noise_cancels_in_the_slope():
    # the same noise for +g and -g: the slope sees none of it, the intercept all of it
    truth, galaxy, _ = _ring(galaxies=50)
    rng = np.random.default_rng(3)
    res = ring_test.shear_bias(_fake(truth, 0.02, 0.0, rng, pair_noise=0.3, own_noise=0.0),
                               truth, galaxy)
    assert res["m1"] == pytest.approx(0.02, abs=1e-12) and res["m2"] == pytest.approx(0.02, abs=1e-12)
    assert res["c1_se"] > 0.01


def test_flux_and_size_bias_in_percent():
    truth = np.tile([1e5, 1.0, 0.4, 0.0, 0.0], (4, 1))
    pred = truth.copy()
    pred[:, 0] *= [1.08, 1.12, 1.08, 1.12]
    pred[:, 2] = np.nan  # an estimator that does not measure r
    out = ring_test.flux_size_bias(pred, truth)
    assert out["flux_bias_pct"] == pytest.approx(10.0)
    assert out["flux_scatter_pct"] == pytest.approx(np.std([8, 12, 8, 12], ddof=1))
    assert np.isnan(out["r_bias_pct"])


def test_the_table_splits_by_kind_and_box_and_drops_a_failed_pair():
    truth_g, galaxy, sign = _ring(galaxies=40, angles=2)
    n = len(truth_g)
    label = np.column_stack([np.full(n, 1e5), np.ones(n), np.full(n, 0.4), truth_g])
    kind = (galaxy % 2).astype(np.int8)
    in_box = galaxy < 20
    angle = np.tile(np.repeat([0.0, 90.0], 2), 40)
    extra = dict(galaxy=galaxy, kind=kind, in_box=in_box, angle=angle,
                 realization=np.zeros(n, int), sign=sign)
    rng = np.random.default_rng(4)
    pred = label.copy()
    pred[:, 0] *= 1.05
    pred[:, 3:5] = _fake(truth_g, 0.0, 0.0, rng)
    pred[kind == 1, 3:5] = _fake(truth_g[kind == 1], 0.2, 0.0, rng)
    pred[0, 3] = np.nan  # one failed row: its pair partner goes too
    table = ring_test.table({"fake": pred}, label, extra)
    assert list(table["group"]) == [g[0] for g in ring_test.GROUPS]
    row = table.set_index("group")
    assert row.loc["all", "failed"] == 2 and row.loc["all", "rows"] == n - 2
    assert row.loc["sersic, in box", "galaxies"] == 10
    assert row.loc["bulge+disc", "m"] == pytest.approx(0.2, abs=5 * row.loc["bulge+disc", "m_se"])
    assert abs(row.loc["sersic", "m"]) < 5 * row.loc["sersic", "m_se"]
    assert row.loc["all", "flux_bias_pct"] == pytest.approx(5.0)


def test_bad_input_is_one_line_error():
    truth, galaxy, _ = _ring(galaxies=5)
    with pytest.raises(InputError, match=r"\(N, 2\)"):
        ring_test.shear_bias(truth[:, :1], truth[:, :1], galaxy)
    with pytest.raises(InputError, match="clusters"):
        ring_test.shear_bias(truth, truth, galaxy[:-1])
    bad = truth.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="finite"):
        ring_test.shear_bias(bad, truth, galaxy)
    with pytest.raises(InputError, match="two values"):
        ring_test.shear_bias(truth, np.zeros_like(truth), galaxy)
    with pytest.raises(InputError, match="expected"):
        ring_test.table({"x": np.zeros((3, 5))}, np.zeros((4, 5)),
                        dict(galaxy=np.arange(4), angle=np.zeros(4), realization=np.zeros(4),
                             kind=np.zeros(4), in_box=np.ones(4, bool)))
