"""The final report's tables, from fake model records and predictions files."""
import json

import numpy as np
import pandas as pd
import pytest

from galaxies.evaluation import report, tradeoffs
from galaxies.runtime import profiles
from galaxies.storage import files


@pytest.fixture
def profile(tmp_path, monkeypatch):
    monkeypatch.setattr(profiles, "ROOT", tmp_path)
    return profiles.get("smoke")


def _model(profile, name: str, seconds: float, **info) -> None:
    folder = profile.models_dir / name
    folder.mkdir(parents=True)
    (folder / "training.json").write_text(json.dumps({"training_seconds": seconds, **info}))


def _predictions(profile, estimator: str, trainset: str, seconds_per_image: float) -> None:
    path = profile.predictions(estimator, trainset, "snr60")
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_predictions(path, np.zeros((3, 5)), np.arange(3), estimator=estimator,
                         dataset="snr60", seconds_per_image=seconds_per_image)


def test_timing_adds_the_denoiser_to_a_two_stage_estimator(profile):
    _predictions(profile, "lbfgsb", "fit", 0.5)
    _model(profile, "xception_v1", 100.0)
    _predictions(profile, "xception", "v1", 0.001)
    _model(profile, "edsr_v1a", 30.0)
    # the denoiser's path as another machine wrote it: looked up by name under this profile
    _model(profile, "edsr-xception_v1", 15.0, denoiser="/elsewhere/models/smoke/edsr_v1a")
    _predictions(profile, "edsr-xception", "v1", 0.002)
    _model(profile, "rdn-xception_v1", 15.0, denoiser="/elsewhere/models/smoke/rdn_v1a")

    table = report.timing(profile)
    assert table.loc["Xception (v1)", "training [s]"] == 100.0
    assert table.loc["EDSR + Xception (v1)", "training [s]"] == 45.0
    assert np.isnan(table.loc["RDN + Xception (v1)", "training [s]"])  # denoiser record missing
    assert np.isnan(table.loc["Autoencoder (v1)", "training [s]"])  # not trained
    assert table.loc["Xception (v1)", "speed-up over L-BFGS-B"] == pytest.approx(500.0)
    assert table.loc["EDSR + Xception (v1)", "speed-up over L-BFGS-B"] == pytest.approx(250.0)


def test_the_profiles_refinements_are_listed_with_their_network(profile):
    names = [e.name for e in report.estimators(profile)]
    at = names.index(report.GALSIM_FIT)
    assert names[at + 1:at + 4] == ["xception+newton1_v1", "xception+newton2_v1", "xception+lbfgsb_v1"]
    # the JAX model's fit, then its refinements of the same network
    at = names.index(report.JAX_FIT)
    assert names[at + 1:at + 3] == ["xception+newton1-jax_v1", "xception+newton2-jax_v1"]
    assert report.by_name("xception+newton2-jax_v1", profile).label == (
        "Xception (v1) + 2 Gauss-Newton steps (JAX model)")
    other = profiles.get("smoke", refine_start="xception_v3", refine_steps=(3,))
    entry = report.by_name("xception+newton3_v3", other)
    assert entry.label == "Xception (v3: varying PSF), fixed noise + 3 Gauss-Newton steps"
    with pytest.raises(Exception, match="unknown estimator"):
        report.by_name("xception+newton1_v1", other)
    # a refinement's training time is its network's; HSM has none
    _predictions(profile, "lbfgsb", "fit", 0.5)
    _model(profile, "xception_v1", 100.0)
    _predictions(profile, "xception+newton2", "v1", 0.05)
    _predictions(profile, "hsm-ksb", "galsim", 0.002)
    table = report.timing(profile)
    label = report.by_name("xception+newton2_v1", profile).label
    assert table.loc[label, "training [s]"] == 100.0
    assert table.loc[label, "speed-up over L-BFGS-B"] == pytest.approx(10.0)
    assert np.isnan(table.loc["GalSim HSM KSB (shear only)", "training [s]"])
    assert report.availability(profile).loc["GalSim HSM KSB (shear only)", "model"] == "-"


@pytest.fixture
def every_test_set(profile):
    """The profile's test sets at 8 rows, and predictions on the fixed ones (truth plus noise):
    the fit, the v1 network (the most accurate), the v3 uncertainty network with a standard
    deviation, and the recommended v3 network."""
    from galaxies.simulation.recipes import build_datasets

    small = profiles.get(profile, sizes={**profile.sizes, **{t: 8 for t in profiles.TESTSETS}})
    build_datasets(small, profiles.TESTSETS, jobs=1, progress=False, log=lambda m: None)
    rng = np.random.default_rng(1)
    for testset in profiles.FIXED_TESTSETS:
        truth = files.load_dataset(small.dataset(testset), fields=()).label
        # xception_v1, the most accurate, saw none of these PSFs and noise levels but snr60's
        for estimator, trainset, scale in (("lbfgsb", "fit", 0.1), ("xception", "v1", 0.02),
                                           ("xception-nll", "v3", 0.05), ("xception-fresh", "v3", 0.1)):
            spread = scale * (np.abs(truth) + 0.1)
            path = small.predictions(estimator, trainset, testset)
            path.parent.mkdir(parents=True, exist_ok=True)
            files.write_predictions(
                path, truth + spread * rng.normal(size=truth.shape), np.arange(len(truth)),
                estimator=estimator, dataset=testset, seconds_per_image=0.01,
                pred_std=spread if estimator == "xception-nll" else None)
    return small


def test_every_table_has_every_test_set_and_marks_networks_outside_their_training(every_test_set,
                                                                                  tmp_path):
    cfg = every_test_set
    v1, fit = "Xception (v1)", "L-BFGS-B fit"
    nll, fresh = ("Xception + uncertainty (v3): the recommended network with a std head",
                   "Xception, fresh noise (v3): recommended")
    dagger = report.OUT_OF_DOMAIN
    assert list(report.availability(cfg).columns) == ["name", "model", *profiles.TESTSETS]
    assert report.availability(cfg).loc[v1, "compact"] == "yes"
    tables = {t: report.comparison(cfg, t) for t in profiles.TESTSETS}
    for testset in profiles.FIXED_TESTSETS:
        shown = report.ratio_table(report.marked(tables[testset], cfg, testset))
        # v1 saw PSF 0.5" and sigma 200 only: the mark on snr30, compact and extended alone
        outside = testset != "snr60"
        assert (f"{v1} {dagger}" in shown.index) == outside and (v1 in shown.index) != outside
        assert {nll, fresh, fit} <= set(shown.index), testset  # v3 covers them all; the fit trains on nothing
        assert (report.note(report.marked(tables[testset], cfg, testset)) != "") == outside
    assert report.note(report.marked(tables["snr60"], cfg, "snr60")) == ""

    written = report.save_tables(cfg, tmp_path, tables=tables)
    assert {"compact", "extended"} <= set(written)
    csv = pd.read_csv(written["compact"]).set_index(["estimator", "parameter"])
    domain = csv["in training domain"].groupby(level="estimator").first()
    assert domain.to_dict() == {v1: False, nll: True, fresh: True, fit: True}
    assert pd.read_csv(written["snr60"])["in training domain"].all()

    # the uncertainty network's training set (v3) covers every fixed set: no mark
    uncertainty = report.marked(report.uncertainty(cfg), cfg)
    assert set(uncertainty.index) == {(nll, t) for t in profiles.FIXED_TESTSETS}
    assert report.note(uncertainty) == ""

    front = report.marked(tradeoffs.accuracy_speed(cfg, tables), cfg)
    assert {("compact", fit), ("extended", f"{v1} {dagger}"), ("extended", fresh)} <= set(front.index)

    lines = report.conclusions(cfg, tables)
    for testset in profiles.FIXED_TESTSETS:
        best = next(line for line in lines if line.startswith(f"On {testset}, the lowest RMSE/CRB"))
        assert best.count(v1) == 5, best  # the most accurate on every parameter
        assert best.count(f"{v1} {dagger}") == (0 if testset == "snr60" else 5), best
    assert report.OUT_OF_DOMAIN_NOTE + "." in lines


def test_the_jax_model_estimators_join_every_table_and_the_front(every_test_set):
    """The JAX fit and a JAX refinement, given predictions files, are rows of the comparison
    and points of the accuracy-speed chart like the GalSim ones, marked like their network."""
    cfg = every_test_set
    rng = np.random.default_rng(2)
    for testset in profiles.FIXED_TESTSETS:
        truth = files.load_dataset(cfg.dataset(testset), fields=()).label
        for estimator, trainset in (("lm-jax", "fit"), ("xception+newton1-jax", "v1")):
            files.write_predictions(
                cfg.predictions(estimator, trainset, testset),
                truth + 0.1 * (np.abs(truth) + 0.1) * rng.normal(size=truth.shape),
                np.arange(len(truth)), estimator=estimator, dataset=testset,
                seconds_per_image=0.003)
    fit = report.by_name(report.JAX_FIT, cfg).label
    refined = report.by_name("xception+newton1-jax_v1", cfg).label
    assert fit == "Levenberg–Marquardt fit (JAX model)"
    tables = {t: report.comparison(cfg, t) for t in profiles.TESTSETS}
    for testset in profiles.FIXED_TESTSETS:
        shown = report.ratio_table(report.marked(tables[testset], cfg, testset))
        assert fit in shown.index and "L-BFGS-B fit" in shown.index, testset
        mark = f" {report.OUT_OF_DOMAIN}" if testset != "snr60" else ""  # v1's domain
        assert refined + mark in shown.index, testset
    assert report.availability(cfg).loc[fit, "snr60"] == "yes"
    front = tradeoffs.accuracy_speed(cfg, tables)
    assert front.loc[("snr60", fit), "seconds per image"] == pytest.approx(0.003)
    assert {("compact", refined), ("extended", fit)} <= set(front.index)
