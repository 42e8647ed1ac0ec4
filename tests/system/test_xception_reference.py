"""benchmarks/xception.py --reference (benchmarks/xception_reference.py): the targets against the
Bayes reference, MET or MISSED from predictions and a posterior cache made up here."""

import numpy as np
import pytest

from galaxies.inference import posterior_sets
from galaxies.evaluation import testsets
from galaxies.runtime import profiles
from galaxies.simulation.recipes import build_datasets
from galaxies.storage import files

from test_benchmarks import load_benchmark


def _judged(tmp_path, monkeypatch, capsys, v1_error, v1_reference_rows: int = 6):
    """Predictions and posterior caches made up on smoke-sized snr60 and test sets (the
    posterior mean half a bound off the truth, alternately above and below; the recommended
    network 0.1 bound from it; the uncertainty network's pred_std twice the posterior's;
    ``xception_v1`` the truth plus ``v1_error(rows) * bound``, its own reference the first
    ``v1_reference_rows`` rows of each set), judged by `xception_reference.main`. Returns the
    verdict of a target line, by its start, and the verdicts' counts."""
    monkeypatch.setattr(profiles, "ROOT", tmp_path)
    smoke = profiles.get("smoke")
    profile = profiles.get(smoke, sizes={**smoke.sizes, "snr60": 8, "test": 8},
                           posterior_limit=6, posterior_limit_random=6)
    build_datasets(profile, ["snr60", "test"], jobs=1, progress=False, log=lambda m: None)
    bounds = {}
    for testset in ("snr60", "test"):
        ds = files.load_dataset(profile.dataset(testset), fields=())
        crb = 0.05 * np.abs(ds.label) + 0.01
        bounds[testset] = crb
        sign = np.where(np.arange(len(ds)) % 2, 1.0, -1.0)[:, None]
        mean = ds.label + 0.5 * crb * sign
        computed = np.arange(len(ds)) < profile.posterior_rows(testset)
        posterior_sets.store_results(profile.dataset(testset), "v3", mean, crb,
                                     np.full(len(ds), 300.0), computed, profile.sersics)
        rows = np.arange(len(ds))
        for name, pred, std in (("xception-fresh_v3", mean + 0.1 * crb, None),
                                ("xception_v1", ds.label + v1_error(rows)[:, None] * crb, None),
                                ("xception-nll_v3", mean, 2 * crb)):
            estimator, trainset = name.rsplit("_", 1)
            files.write_predictions(profile.predictions(estimator, trainset, testset), pred,
                                    rows, estimator=estimator, dataset=testset,
                                    seconds_per_image=1e-4, pred_std=std)
        # v1's prior is v3's (PSF and noise known): its cache is v3's, on its first rows
        v3 = posterior_sets.load(profile.dataset(testset), "v3")
        posterior_sets.store_results(profile.dataset(testset), "v1", v3.mean, v3.std, v3.ess,
                                     v3.computed & (rows < v1_reference_rows), profile.sersics)
    monkeypatch.setattr(testsets, "crb", lambda profile, testset: bounds[testset])
    benchmark = load_benchmark("xception")
    verdicts = benchmark.Verdicts()
    benchmark.reference_module().main(profile, verdicts)
    out = capsys.readouterr().out

    def verdict(what):
        found = [line.split()[-1] for line in out.splitlines() if line.startswith(f"  {what} ")]
        assert len(found) == 1, what
        return found[0]

    return verdict, (verdicts.met, verdicts.missed), out


def test_targets_against_the_reference(tmp_path, monkeypatch, capsys):
    """The recommended network 0.1 bound from the posterior mean (ratio 1.02: met), xception_v1 three
    bounds off the truth (the recommended one beats it: met), the uncertainty network's
    pred_std twice the posterior's (missed); sets without a posterior give no figure."""
    verdict, counts, out = _judged(tmp_path, monkeypatch, capsys, lambda rows: np.full(len(rows), 3.0))
    assert verdict("xception-fresh_v3 test flux / bound-weighted mean") == "MET"
    assert verdict("xception-fresh_v3 snr60 - posterior") == "MET"
    assert verdict("xception-fresh_v3 snr30 - posterior") == "figure"  # no set: no figure
    assert verdict("xception-fresh_v3 test norm RMS vs xception_v1") == "MET"
    assert verdict("xception-nll_v3 snr60 pred_std / post std") == "MISSED"
    assert "posterior mean" in out and "xception_v1 snr60" in out
    # met: 5 ratios, snr60's distance, the comparison with xception_v1; missed: the std ratio
    # and the coverage (100%) of the uncertainty network on both sets
    assert counts == (7, 4)


def test_the_two_networks_are_compared_on_the_same_galaxies(tmp_path, monkeypatch, capsys):
    """xception_v1 exact on the first two rows of `test`, which are all its reference holds,
    and five bounds off on the others: over every galaxy with a bound the recommended network
    (about half a bound off) beats it, though on v1's reference rows alone it would not."""
    verdict, _, out = _judged(tmp_path, monkeypatch, capsys,
                              lambda rows: np.where(rows < 2, 0.0, 5.0), v1_reference_rows=2)
    assert verdict("xception-fresh_v3 test norm RMS vs xception_v1") == "MET"
    line = next(l for l in out.splitlines() if "norm RMS vs xception_v1" in l)
    assert "(8 galaxies)" in line


def test_the_recommended_network_over_seeds(tmp_path, monkeypatch, capsys):
    """--seeds K: K networks trained in a temporary folder (models/ untouched), each judged
    against the posterior; two seeds give two different networks, hence a spread."""
    pytest.importorskip("keras")
    monkeypatch.setattr(profiles, "ROOT", tmp_path)
    smoke = profiles.get("smoke")
    profile = profiles.get(smoke, sizes={**smoke.sizes, "v3": 40, "snr60": 4},
                           posterior_limit=4, batch_size=8,
                           xception_model=dict(entry_filters=4, block_filters=4, blocks=1,
                                               exit_filters=4))
    build_datasets(profile, ["v3", "snr60"], jobs=1, progress=False, log=lambda m: None)
    ds = files.load_dataset(profile.dataset("snr60"), fields=())
    crb = 0.05 * np.abs(ds.label) + 0.01
    posterior_sets.store_results(profile.dataset("snr60"), "v3", ds.label, crb,
                                 np.full(len(ds), 300.0), np.ones(len(ds), bool), profile.sersics)
    monkeypatch.setattr(testsets, "crb", lambda profile, testset: crb)
    runs = load_benchmark("xception_reference").seeds(profile, 2, log=lambda m: None)
    assert not profile.models_dir.exists()
    assert sorted(runs["seed"].unique()) == [0, 1] and set(runs["testset"]) == {"snr60"}
    first, second = (runs[runs["seed"] == s]["rms to posterior"].to_numpy() for s in (0, 1))
    assert np.all(first > 0) and not np.allclose(first, second)
    assert "over 2 seeds" in capsys.readouterr().out


def test_more_rows_of_test_for_the_reference(tmp_path, monkeypatch, capsys):
    """--test-rows N computes the recommended network's reference for N rows of test first;
    N outside the rows with a bound is refused in one line naming it."""
    from galaxies.evaluation import against_posterior

    monkeypatch.setattr(profiles, "ROOT", tmp_path)
    calls = []
    monkeypatch.setattr(against_posterior, "reference",
                        lambda profile, testset, recipe, **kw: calls.append((testset, recipe, kw)))
    profile = profiles.get("smoke")
    assert load_benchmark("xception_reference").tables(profile, test_rows=7) == {}
    assert calls == [("test", "v3", {"compute": True, "progress": True, "rows": 7})]
    benchmark = load_benchmark("xception")
    with pytest.raises(SystemExit):
        benchmark.main(["--profile", "smoke", "--reference", "--test-rows", "0"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--test-rows 0" in err and f"1..{profile.crb_limit}" in err
