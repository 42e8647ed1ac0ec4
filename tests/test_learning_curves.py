"""benchmarks/learning_curves.py at smoke sizes: every run on the same validation rows, the
files rewritten after each run, a run already measured not trained again."""
import importlib.util

import pandas as pd
import pytest

from galaxies import profiles
from galaxies.recipes import build_datasets

pytest.importorskip("keras")


def _benchmark():
    path = profiles.ROOT / "benchmarks" / "learning_curves.py"
    spec = importlib.util.spec_from_file_location("learning_curves", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_learning_curves_at_smoke_sizes(tmp_path, monkeypatch):
    benchmark = _benchmark()
    smoke = profiles.get("smoke")
    profile = profiles.get(smoke, epochs=2, crb_limit=4,
                           sizes={**smoke.sizes, "v3": 60, "snr60": 8, "snr30": 8, "test": 8})
    monkeypatch.setattr(profiles, "ROOT", tmp_path)
    build_datasets(profile, ["v3", *profiles.TESTSETS], jobs=1, progress=False, log=lambda m: None)
    monkeypatch.setitem(benchmark.NETS, "small", dict(entry_filters=4, block_filters=4, blocks=1,
                                                      exit_filters=4))
    assert benchmark.default_sizes(profile) == [13, 27, 54]  # 60 rows, 6 held out
    out = tmp_path / "curves"
    runs = benchmark.measure(profile, ["small"], [20, 40], out=out, log=lambda m: None)
    assert runs["train_rows"].tolist() == [20, 40] and set(runs["validation_rows"]) == {6}
    assert (tmp_path / "models").exists() is False  # nothing written into models/
    for testset in profiles.FIXED_TESTSETS:
        assert runs[f"{testset} rmse/crb flux"].gt(0).all()
        assert runs[f"{testset} bias/crb g1"].notna().all()
    assert runs["test norm rmse sersic_r"].gt(0).all()
    epochs = pd.read_csv(out / benchmark.EPOCHS_FILE)
    assert len(epochs) == runs["epochs_run"].sum() and {"val_loss", "loss"} <= set(epochs)
    assert pd.read_csv(out / benchmark.RUNS_FILE)["train_rows"].tolist() == [20, 40]
    again = benchmark.measure(profile, ["small"], [40, 30], out=out, log=lambda m: None)
    assert again["train_rows"].tolist() == [20, 40, 30]  # 40 kept, 30 added
    table = benchmark.summary(again)
    assert "snr60 rmse flux" in table and len(table) == 3
