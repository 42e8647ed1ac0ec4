"""The final report's timing table, from fake model records and predictions files."""
import json

import numpy as np
import pytest

from galaxies import files, profiles, report


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
    at = names.index(report.BASELINE)
    assert names[at + 1:at + 4] == ["xception+newton1_v1", "xception+newton2_v1", "xception+lbfgsb_v1"]
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
