"""The accuracy-speed front and the per-galaxy normalized errors it is drawn from."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from galaxies.evaluation import evaluate, tradeoffs
from galaxies.storage import files


def test_front_by_hand():
    seconds = [1e-3, 1e-3, 0.05, 0.5, 0.6, np.nan]
    worst = [3.0, 2.0, 1.1, 1.0, 1.0, 0.5]
    # 0 is beaten by 1 (as fast, more accurate), 4 by 3 (as accurate, faster); NaN never counts
    np.testing.assert_array_equal(tradeoffs.pareto_front(seconds, worst),
                                  [False, True, True, True, False, False])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(1e-5, 10), st.floats(0.5, 20)), min_size=1, max_size=30))
def test_front_points_are_unbeaten_and_the_others_beaten(points):
    seconds, worst = map(np.array, zip(*points))
    front = tradeoffs.pareto_front(seconds, worst)
    assert front.any()
    for i in range(len(points)):
        beaten = ((seconds <= seconds[i]) & (worst <= worst[i])
                  & ((seconds < seconds[i]) | (worst < worst[i]))).any()
        assert front[i] == (not beaten)


def test_normalized_errors_use_each_galaxys_bound(small_sets, tmp_path):
    ds = files.load_dataset(small_sets["random"], fields=())
    rng = np.random.default_rng(0)
    bound = rng.uniform(0.5, 2.0, size=(len(ds), 5)) * np.array([1e4, 0.5, 0.03, 0.05, 0.05])
    z = rng.normal(size=bound.shape)
    pred = files.write_predictions(tmp_path / "p.h5", ds.label + z * bound, np.arange(len(ds)),
                                   estimator="e", dataset=ds.name, seconds_per_image=1.0)
    table = evaluate.against_crb(pred, ds, bound)
    np.testing.assert_allclose(table["norm rmse"], np.sqrt(np.mean(z**2, axis=0)), rtol=1e-5)
    np.testing.assert_allclose(table["norm bias"], z.mean(axis=0), rtol=1e-4, atol=1e-6)
    # the RMS-bound ratio weights galaxies by their bound: not the same number
    assert not np.allclose(table["rmse/crb"], table["norm rmse"], rtol=1e-3)
    fixed = evaluate.against_crb(pred, ds, bound[0])
    np.testing.assert_allclose(fixed["norm rmse"], fixed["rmse/crb"], rtol=1e-5)


def test_against_reference_differences():
    index = pd.MultiIndex.from_product([["net", "fit"], ["flux", "g1"]], names=["estimator", "parameter"])
    table = pd.DataFrame({"norm rmse": [2.0, 1.5, 1.0, 1.1], "norm bias": [-0.5, 0.2, 0.1, -0.1]},
                         index=index)
    diff = tradeoffs.against_reference(table, "fit")["minus the fit"]
    assert diff.loc["net", ("norm rmse", "flux")] == pytest.approx(1.0)
    assert diff.loc["net", ("norm bias", "flux")] == pytest.approx(0.4)  # |-0.5| - |0.1|
    assert (diff.loc["fit"] == 0).all()
