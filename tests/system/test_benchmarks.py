"""The benchmarks' own logic at smoke sizes: benchmarks/learning_curves.py (every run on the
same validation rows, the files rewritten after each run, a run already measured not trained
again) and the targets benchmarks/xception.py prints (MET or MISSED from the predictions)."""
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from galaxies.evaluation import testsets
from galaxies.runtime import profiles
from galaxies.simulation.recipes import build_datasets
from galaxies.storage import files


def load_benchmark(name):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """A root with a 60-galaxy v3 and 8-galaxy test sets, and the profile of those sizes."""
    root = tmp_path_factory.mktemp("root")
    smoke = profiles.get("smoke")
    profile = profiles.get(smoke, epochs=2, crb_limit=4,
                           sizes={**smoke.sizes, "v3": 60, "snr60": 8, "snr30": 8, "test": 8})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(profiles, "ROOT", root)
        build_datasets(profile, ["v3", *profiles.TESTSETS], jobs=1, progress=False, log=lambda m: None)
    return root, profile


def test_learning_curves_at_smoke_sizes(tiny_root, monkeypatch):
    pytest.importorskip("keras")
    root, profile = tiny_root
    monkeypatch.setattr(profiles, "ROOT", root)
    benchmark = load_benchmark("learning_curves")
    monkeypatch.setitem(benchmark.NETS, "small", dict(entry_filters=4, block_filters=4, blocks=1,
                                                      exit_filters=4))
    assert benchmark.default_sizes(profile) == [13, 27, 54]  # 60 rows, 6 held out
    out = root / "curves"
    runs = benchmark.measure(profile, ["small"], [20, 40], out=out, log=lambda m: None)
    assert runs["train_rows"].tolist() == [20, 40] and set(runs["validation_rows"]) == {6}
    assert not (root / "models").exists()  # nothing written into models/
    for testset in profiles.FIXED_TESTSETS:
        assert runs[f"{testset} rmse/crb flux"].gt(0).all()
        assert runs[f"{testset} bias/crb g1"].notna().all()
    assert runs["test norm rmse sersic_r"].gt(0).all()
    epochs = pd.read_csv(out / benchmark.EPOCHS_FILE)
    assert len(epochs) == runs["epochs_run"].sum() and {"val_loss", "loss"} <= set(epochs)
    assert pd.read_csv(out / benchmark.RUNS_FILE)["train_rows"].tolist() == [20, 40]
    again = benchmark.measure(profile, ["small"], [40, 30], out=out, log=lambda m: None)
    assert again["train_rows"].tolist() == [20, 40, 30]  # 40 kept, 30 added
    other = benchmark.measure(profile, ["small"], [20], out=out, seed=1, log=lambda m: None)
    assert other["seed"].tolist() == [0, 0, 0, 1]  # another seed is another run
    table = benchmark.summary(other)
    assert "snr60 rmse flux" in table and len(table) == 4
    assert other.iloc[3]["snr60 rmse/crb flux"] != other.iloc[0]["snr60 rmse/crb flux"]


def test_xception_targets_from_predictions(tiny_root, monkeypatch, capsys):
    """The recommended network exact (every accuracy target met), another network at three
    times the bound on snr30 (missed), no uncertainty network (no figure), the fit 10^4 times
    slower per image (met)."""
    root, profile = tiny_root
    monkeypatch.setattr(profiles, "ROOT", root)
    benchmark = load_benchmark("xception")
    rng = np.random.default_rng(0)
    estimator, trainset = profile.recommended.rsplit("_", 1)
    for testset in profiles.TESTSETS:
        ds = files.load_dataset(profile.dataset(testset), fields=())
        rows = np.arange(len(ds))
        for name, train, pred, seconds in (
                (estimator, trainset, ds.label, 1e-4), ("lbfgsb", "fit", ds.label, 1.0),
                ("xception", "v1", ds.label + 3 * testsets.crb(profile, testset)
                 * np.sign(rng.normal(size=ds.label.shape)), 1e-4)):
            files.write_predictions(profile.predictions(name, train, testset), pred, rows,
                                    estimator=name, dataset=testset, seconds_per_image=seconds)
    benchmark.targets(profile)
    lines = {line[:42].strip(): line.split()[-1] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert lines[f"{profile.recommended} snr60 flux"] == "MET"
    assert lines[f"{profile.recommended} test g2"] == "MET"
    assert lines[f"{profile.recommended} test g1 m (SNR > 20)"] == "MET"
    assert lines["xception_v1 snr30 flux"] == "MISSED"
    assert lines[f"{profile.uncertainty} snr60"] == "figure" and lines["speed-up over the fit, test"] == "MET"
    n_met = 5 * len(profiles.FIXED_TESTSETS) + 4 + 4 + len(profiles.TESTSETS)
    assert f"{n_met} met, 1 missed" in "\n".join(lines)


def test_likelihood_benchmark_fits_only_the_rows_the_pipeline_did_not(tiny_root, monkeypatch):
    """benchmarks/likelihood_network.py's fits of the judged rows: those in the pipeline's
    lm-jax predictions read from them (values no fit gives, so not refitted), the others NaN,
    or with ``fit_missing`` fitted here by the same `fit`."""
    pytest.importorskip("jax")
    from galaxies.inference.differentiable.fit import fit
    from galaxies.inference.differentiable.model import DifferentiableModel

    root, profile = tiny_root
    monkeypatch.setattr(profiles, "ROOT", root)
    benchmark = load_benchmark("likelihood_network")
    ds = files.load_dataset(profile.dataset("snr30"), fields=("img",))
    stored = ds.label[:3] * 1.01
    files.write_predictions(profile.predictions("lm-jax", "fit", "snr30"), stored, np.arange(3),
                            estimator="lm-jax", dataset="snr30", seconds_per_image=0.1)
    model = DifferentiableModel()
    read = benchmark.judged_fits(profile, "snr30", ds, model)
    np.testing.assert_array_equal(read[:3], stored)
    assert np.isnan(read[3:]).all()
    wanted = np.arange(len(ds)) != 4  # a row without a bound is not fitted
    fitted = benchmark.judged_fits(profile, "snr30", ds, model, fit_missing=True, wanted=wanted)
    np.testing.assert_array_equal(fitted[:3], stored)
    assert np.isnan(fitted[4]).all() and np.isfinite(np.delete(fitted, 4, axis=0)).all()
    fitted = benchmark.judged_fits(profile, "snr30", ds, model, fit_missing=True)
    direct = fit(ds.img[3:], ds.psf_fwhm[3:], ds.sigma[3:], model=model).params
    np.testing.assert_allclose(fitted[3:], direct, rtol=1e-6)
    assert np.isfinite(fitted).all()
