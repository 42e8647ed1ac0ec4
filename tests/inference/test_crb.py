"""The Cramér–Rao bound: the seed's reference values, closed forms, Monte Carlo, caching."""
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from galaxies.conventions import LABEL_COLUMNS
from galaxies.inference import crb, crb_sets
from galaxies.runtime.errors import ParameterRangeError
from galaxies.simulation.render import GalaxyRenderer, add_noise
from galaxies.storage import files

ROOT = Path(__file__).resolve().parents[2]
GALAXY = dict(flux=1e5, sersic_n=3.0, sersic_r=0.3, g1=-0.069, g2=0.15, psf_fwhm=0.5)
#: the seed's report, sigma 200 (SNR ~ 60)
REFERENCE = np.array([0.056e5, 0.78, 0.028, 0.054, 0.054])


def realizations_of(clean: np.ndarray, sigma: float, count: int, seed: int) -> np.ndarray:
    """``count`` noisy copies of ``clean`` drawn by the generator's noise (one GalSim call on
    the copies side by side, which is fast)."""
    wide = add_noise(np.tile(clean, (1, count)), sigma, seed)
    return wide.reshape(clean.shape[0], count, clean.shape[1]).transpose(1, 0, 2).astype(np.float64)


@pytest.mark.parametrize("sigma, factor", [(200.0, 1.0), (400.0, 2.0)])
def test_reference_values_of_the_seed(sigma, factor):
    bound = crb.cramer_rao_bound(**GALAXY, sigma=sigma)
    np.testing.assert_allclose(bound, factor * REFERENCE, rtol=0.05)


def test_bound_is_stable_when_the_difference_steps_change():
    fisher = {}
    for k, factor in enumerate((1 / 3, 1.0, 3.0)):
        steps = {name: h * factor for name, h in crb.STEPS.items()}
        fisher[k] = crb.cramer_rao_bound(**GALAXY, sigma=200.0, steps=steps,
                                         renderer=GalaxyRenderer())
    np.testing.assert_allclose(fisher[0], fisher[1], rtol=1e-3)
    np.testing.assert_allclose(fisher[2], fisher[1], rtol=1e-3)


def test_flux_information_has_its_closed_form():
    """Gaussian read noise alone: I_flux = SNR^2 / flux^2 with SNR = ||mu|| / sigma."""
    renderer = GalaxyRenderer()
    mu = renderer.draw(**GALAXY).astype(np.float64)
    for sigma in (200.0, 350.0):
        fisher = crb.fisher_matrix(**GALAXY, sigma=sigma, poisson=False, renderer=renderer)
        snr = np.sqrt(np.sum(mu**2)) / sigma
        assert fisher[0, 0] == pytest.approx(snr**2 / GALAXY["flux"] ** 2, rel=1e-6)
        # with the Poisson variance, each pixel weighs 1/(sigma^2 + mu) + 1/(2 (sigma^2 + mu)^2)
        with_poisson = crb.fisher_matrix(**GALAXY, sigma=sigma, renderer=renderer)
        v = sigma**2 + mu
        expected = np.sum((mu / GALAXY["flux"]) ** 2 * (1 / v + 0.5 / v**2))
        assert with_poisson[0, 0] == pytest.approx(expected, rel=1e-6)
        assert with_poisson[0, 0] < fisher[0, 0]  # more noise, less information
    # the information is symmetric and positive definite
    assert np.allclose(fisher, fisher.T) and np.all(np.linalg.eigvalsh(fisher) > 0)


def test_monte_carlo_of_an_efficient_flux_estimator():
    """With the shape known, the weighted least-squares flux is efficient: over noise drawn by
    the generator (GalSim's Poisson + Gaussian), its spread matches 1 / sqrt(I_flux)."""
    renderer = GalaxyRenderer()
    sigma = 200.0
    mu = renderer.draw(**GALAXY).astype(np.float64)
    u = mu / GALAXY["flux"]
    w = 1.0 / (sigma**2 + mu)
    realizations = 2000
    noisy = realizations_of(mu, sigma, realizations, seed=7)
    estimates = np.einsum("kij,ij->k", noisy, w * u) / np.sum(w * u * u)
    bound = 1.0 / np.sqrt(crb.fisher_matrix(**GALAXY, sigma=sigma, renderer=renderer)[0, 0])
    # the standard deviation of a standard deviation from 2000 draws is ~1.6%
    assert np.std(estimates, ddof=1) == pytest.approx(bound, rel=0.05)
    assert abs(np.mean(estimates) - GALAXY["flux"]) < 4 * bound / np.sqrt(realizations)


def test_monte_carlo_of_the_score_reproduces_the_fisher_matrix():
    """The covariance of the score d log L / d theta over the generator's noise is the Fisher
    matrix; the bounds from it agree with ours (an independent check of the noise model)."""
    renderer = GalaxyRenderer()
    sigma = 200.0
    mu, jac = crb.jacobian(**GALAXY, renderer=renderer)
    v = sigma**2 + mu
    r = realizations_of(mu, sigma, 1000, seed=8) - mu
    scores = np.einsum("kij,pij->kp", r / v + 0.5 * (r * r - v) / v**2, jac)
    covariance = np.cov(scores.T)
    from_scores = np.sqrt(np.diag(np.linalg.inv(covariance)))
    # 1000 draws: each bound within a few percent (the worst of five, over seeds, ~5%)
    np.testing.assert_allclose(from_scores, crb.cramer_rao_bound(**GALAXY, sigma=sigma), rtol=0.12)


def test_bound_versus_snr_falls_like_one_over_snr():
    table = crb.crb_vs_snr(**GALAXY, snr=[20.0, 40.0, 80.0])
    assert list(table.columns) == ["snr", "sigma", *LABEL_COLUMNS]
    ratio = table[list(LABEL_COLUMNS)].to_numpy()
    assert np.all(np.diff(ratio, axis=0) < 0)
    # read noise dominates, so doubling the SNR nearly halves every bound
    np.testing.assert_allclose(ratio[0] / ratio[1], 2.0, rtol=0.03)
    # the row whose sigma is 200 gives the bound at sigma 200
    mu = GalaxyRenderer().draw(**GALAXY).astype(np.float64)
    snr = np.sqrt(np.sum(mu**2)) / 200.0
    row = crb.crb_vs_snr(**GALAXY, snr=[snr])
    np.testing.assert_allclose(row[list(LABEL_COLUMNS)].to_numpy()[0],
                               crb.cramer_rao_bound(**GALAXY, sigma=200.0), rtol=1e-6)


@pytest.mark.parametrize("change, message", [
    (dict(sersic_n=7.0), "sersic_n = 7 is outside"),
    (dict(flux=1e3), "flux = 1000 is outside"),
    (dict(g1=0.6, g2=0.6), "shear"),
    (dict(psf_fwhm=2.0), "psf_fwhm = 2 is outside"),
])
def test_out_of_range_parameters_are_refused(change, message):
    with pytest.raises(ParameterRangeError, match=message):
        crb.cramer_rao_bound(**{**GALAXY, **change})
    with pytest.raises(ParameterRangeError, match="sigma = 50"):
        crb.cramer_rao_bound(**GALAXY, sigma=50.0)


def test_for_dataset_fixed_set_computes_once_and_caches(small_sets, tmp_path, monkeypatch):
    path = tmp_path / "snr60.h5"
    path.write_bytes(Path(small_sets["fixed"]).read_bytes())
    bounds = crb_sets.for_dataset(path, jobs=1, progress=False)
    ds = files.load_dataset(path, fields=())
    assert bounds.shape == (len(ds), 5)
    np.testing.assert_allclose(bounds, np.broadcast_to(crb.cramer_rao_bound(**GALAXY), bounds.shape),
                               rtol=1e-6)
    assert crb_sets.cache_path(path) == tmp_path / "snr60.crb.h5" and crb_sets.cache_path(path).is_file()

    def no_work(rows):
        raise AssertionError("the cache should have been used")
    monkeypatch.setattr(crb_sets, "_bounds_of", no_work)
    np.testing.assert_array_equal(crb_sets.for_dataset(path, jobs=1, progress=False), bounds)
    # a changed data set is not served from a stale cache
    with h5py.File(path, "r+") as f:
        f["sigma"][...] = 400.0
    with pytest.raises(AssertionError, match="cache"):
        crb_sets.for_dataset(path, jobs=1, progress=False)


def test_for_dataset_random_set_limit_and_rows(small_sets, tmp_path):
    path = tmp_path / "v1.h5"
    path.write_bytes(Path(small_sets["random"]).read_bytes())
    ds = files.load_dataset(path, fields=())
    bounds = crb_sets.for_dataset(path, limit=2, jobs=1, progress=False)
    assert np.isnan(bounds[2:]).all() and np.isfinite(bounds[:2]).all()
    for i in range(2):
        expected = crb.cramer_rao_bound(*ds.label[i].astype(float), psf_fwhm=float(ds.psf_fwhm[i]),
                                        sigma=float(ds.sigma[i]))
        np.testing.assert_allclose(bounds[i], expected, rtol=1e-5)
    picked = crb_sets.for_dataset(path, rows=[1, 5], jobs=1, progress=False)
    assert np.isfinite(picked[[1, 5]]).all() and np.isnan(np.delete(picked, [1, 5], axis=0)).all()
    np.testing.assert_array_equal(picked[1], bounds[1])  # from the cache


def test_for_dataset_bad_input(small_sets, tmp_path, without_field):
    broken = without_field(small_sets["fixed"], "sigma")
    with pytest.raises(files.FileFormatError, match="sigma"):
        crb_sets.for_dataset(broken, progress=False)
    wrong = tmp_path / "wrong.h5"
    wrong.write_bytes(Path(small_sets["fixed"]).read_bytes())
    with h5py.File(wrong, "r+") as f:
        f["psf_fwhm"][3] = 3.0
    with pytest.raises(ParameterRangeError, match="row 3: psf_fwhm = 3"):
        crb_sets.for_dataset(wrong, progress=False)
    with pytest.raises(FileNotFoundError):
        crb_sets.for_dataset(tmp_path / "missing.h5", progress=False)


def test_cli_prints_the_bounds_as_json():
    done = subprocess.run(
        [sys.executable, "-m", "galaxies.interfaces.cli", "crb", "--flux", "1e5", "--sersic-n", "3",
         "--sersic-r", "0.3", "--g1", "-0.069", "--g2", "0.15", "--psf-fwhm", "0.5", "--sigma",
         "200", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    values = json.loads(done.stdout)
    assert list(values) == list(LABEL_COLUMNS)
    np.testing.assert_allclose(list(values.values()), REFERENCE, rtol=0.05)
    bad = subprocess.run([sys.executable, "-m", "galaxies.interfaces.cli", "crb", "--sersic-r", "2"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "galaxies: error: sersic_r = 2 is outside the allowed range [0.1, 0.6] arcsec (half-light radius)"]
