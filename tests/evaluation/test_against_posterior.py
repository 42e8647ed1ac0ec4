"""Estimators against the Bayes reference (`galaxies.evaluation.against_posterior`)."""
import numpy as np
import pytest

from galaxies.evaluation import against_posterior
from galaxies.inference import posterior_sets
from galaxies.runtime.errors import InputError
from galaxies.storage import files


def draws(n=4000, seed=0):
    """Galaxies whose truth is drawn from a Gaussian posterior: mean, std, truth, crb."""
    rng = np.random.default_rng(seed)
    crb = rng.uniform(0.5, 2.0, (n, 5))
    std = crb * rng.uniform(0.8, 1.2, (n, 5))
    mean = rng.normal(0, 3, (n, 5))
    truth = mean + std * rng.standard_normal((n, 5))
    return mean, std, truth, crb


def test_the_posterior_mean_against_itself_and_a_shifted_estimator():
    mean, std, truth, crb = draws()
    own = against_posterior.compare(mean, truth, crb, mean, std, std)
    assert np.allclose(own["ratio"], 1) and np.allclose(own["rms to posterior"], 0)
    # truth drawn from the posterior: mean +- std covers 68%, and pred_std is the std
    assert own["posterior coverage"].to_numpy() == pytest.approx(np.full(5, 0.683), abs=0.03)
    assert np.allclose(own["std ratio"], 1) and np.allclose(own["coverage"], own["posterior coverage"])
    shifted = against_posterior.compare(mean + 0.5 * crb, truth, crb, mean, std, 2 * std)
    assert shifted["rms to posterior"].to_numpy() == pytest.approx(np.full(5, 0.5))
    assert shifted["bias to posterior"].to_numpy() == pytest.approx(np.full(5, 0.5))
    assert np.all(shifted["ratio"] > 1.05)
    assert np.allclose(shifted["std ratio"], 2) and np.all(shifted["coverage"] > 0.9)
    no_std = against_posterior.compare(mean, truth, crb, mean, std)
    assert no_std["coverage"].isna().all()
    with pytest.raises(InputError, match="arrays"):
        against_posterior.compare(mean[:, :4], truth, crb, mean, std)


def test_where_the_bound_follows_the_truth_the_weighted_mean_beats_the_mean():
    """Truths drawn from Gaussian posteriors N(m, s^2), each error over the bound at its truth,
    ``c = exp(a theta / 2)``: the normalized risk's minimizer is the mean tilted by
    ``1 / c^2``, ``m - a s^2`` (completing the square). Judged in that metric the posterior
    mean loses to it, and the ratio is taken against it."""
    rng = np.random.default_rng(4)
    n, a = 20000, 1.0
    mean = rng.normal(0, 1, (n, 5))
    std = np.full((n, 5), 0.8)
    truth = mean + std * rng.standard_normal((n, 5))
    crb = np.exp(a * truth / 2)
    weighted = mean - a * std**2
    plain = against_posterior.compare(mean, truth, crb, mean, std, best=weighted)
    best = against_posterior.compare(weighted, truth, crb, mean, std, best=weighted)
    assert np.allclose(best["ratio"], 1.0)
    assert np.all(plain["ratio"] > 1.05)
    assert np.all(best["norm rmse"] < plain["norm rmse"])
    with pytest.raises(InputError, match="best"):
        against_posterior.compare(mean, truth, crb, mean, std, best=weighted[:, :4])


def test_rows_without_a_posterior_or_a_bound_are_left_out():
    mean, std, truth, crb = draws(50)
    crb[:10, 2] = np.nan
    mean[10:20] = np.nan
    table = against_posterior.compare(truth, truth, crb, mean, std)
    assert table.loc["sersic_r", "n"] == 30 and table.loc["flux", "n"] == 40
    assert table["norm rmse"].eq(0).all()


@pytest.fixture
def snr60_profile(tmp_path, monkeypatch):
    """The smoke profile with its folders in ``tmp_path``: a fixed set of 12 images whose bounds
    are all 1, and a posterior mean near each truth. Returns ``(profile, ds, mean)``."""
    from galaxies.evaluation import testsets
    from galaxies.runtime import profiles
    from galaxies.simulation.generate import FixedSpec, generate

    monkeypatch.setattr(profiles, "ROOT", tmp_path)
    profile = profiles.get("smoke")
    profile.data_dir.mkdir(parents=True)
    generate(profile.dataset("snr60"), FixedSpec(1e5, 3.0, 0.3, -0.069, 0.15, 0.5, 200.0),
             size=12, seed=12, progress=False, name="snr60")
    ds = files.load_dataset(profile.dataset("snr60"), fields=())
    monkeypatch.setattr(testsets, "crb", lambda profile, testset: np.full((12, 5), 1.0))
    mean = ds.label + 0.3 * np.random.default_rng(1).standard_normal((12, 5))
    return profile, ds, mean


def test_a_profile_table_has_the_reference_row_and_each_estimator(snr60_profile):
    """`table` on a profile whose folders are a temporary copy: a fixed set with a cached
    posterior (written here, not sampled) and two predictions files."""
    profile, ds, mean = snr60_profile
    computed = np.arange(12) < profile.posterior_rows("snr60")
    posterior_sets.store_results(profile.dataset("snr60"), "v3",
                                 np.where(computed[:, None], mean, np.nan), np.ones((12, 5)),
                                 np.where(np.arange(12) == 0, 10.0, 300.0), computed)
    profile.predictions_dir.mkdir(parents=True)
    files.write_predictions(profile.predictions("net", "v3", "snr60"), mean + 0.2, np.arange(12),
                            estimator="net", dataset="snr60", seconds_per_image=0.0,
                            pred_std=np.full((12, 5), 2.0))
    files.write_predictions(profile.predictions("lm-jax", "fit", "snr60"), ds.label, np.arange(12),
                            estimator="lm-jax", dataset="snr60", seconds_per_image=0.0)
    assert against_posterior.predicted(profile, "snr60") == ["lm-jax_fit", "net_v3"]
    table = against_posterior.table(profile, "snr60")
    assert list(table.index.get_level_values(0).unique()) == [against_posterior.POSTERIOR,
                                                               "lm-jax_fit", "net_v3"]
    net = table.loc["net_v3"]
    # row 0's posterior has 10 effective draws: left out
    assert (net["n"] == profile.posterior_rows("snr60") - 1).all()
    # predictions are float32: a flux of 1e5 is rounded to 1/128
    assert net["rms to posterior"].to_numpy() == pytest.approx(np.full(5, 0.2), abs=0.01)
    assert np.allclose(net["std ratio"], 2.0)
    assert np.allclose(table.loc["lm-jax_fit", "norm rmse"], 0.0)  # the truth itself
    wide = against_posterior.wide({"snr60": table}, "rms to posterior")
    assert wide.loc[("net_v3", "snr60"), "g1"] == pytest.approx(0.2, rel=1e-4)


def test_a_network_outside_the_pipeline_is_judged_under_its_own_training_prior(snr60_profile):
    """`judge_network` on a network whose predictions are not kept: the posterior of its own
    training recipe (written here for v3 only), its standard deviation judged too."""
    profile, ds, mean = snr60_profile
    posterior_sets.store_results(profile.dataset("snr60"), "v3", mean, np.ones((12, 5)),
                                 np.full(12, 300.0), np.ones(12, bool))

    class Network:
        def __init__(self, trainset):
            self.trainset = trainset

        def predict_dataset(self, dataset):
            return mean + 0.2, np.full((12, 5), 2.0)

    judged = against_posterior.judge_network(Network("v3"), profile).set_index("parameter")
    assert list(judged["testset"].unique()) == ["snr60"]
    assert judged["rms to posterior"].to_numpy() == pytest.approx(np.full(5, 0.2), abs=0.01)
    assert np.allclose(judged["std ratio"], 2.0) and judged["coverage"].between(0, 1).all()
    assert judged["norm rmse"].to_numpy() == pytest.approx(
        np.sqrt(np.mean((mean + 0.2 - ds.label) ** 2, axis=0)), rel=1e-4)
    alone = against_posterior.judge_network(Network("v1"), profile)  # no posterior under v1
    assert "ratio" not in alone and np.isfinite(alone["norm rmse"]).all()
