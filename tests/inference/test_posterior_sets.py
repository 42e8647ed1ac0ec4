"""The Bayes reference's cache (`galaxies.inference.posterior_sets`): values, reuse, siblings, staleness."""
import h5py
import numpy as np
import pytest

from galaxies.inference import posterior_sets
from galaxies.runtime.errors import FileFormatError, InputError
from galaxies.simulation.generate import FixedSpec, generate

#: few draws: the tests check the machinery and the high-SNR limit, not the last digit
FAST = dict(samples=256, max_samples=2048, min_ess=150.0)


@pytest.fixture(scope="module")
def model():
    from galaxies.inference.differentiable.model import DifferentiableModel
    return DifferentiableModel()


#: a galaxy whose posterior at SNR 60 is close to Gaussian (at n = 3 the posterior of n is
#: skewed: its mean lies ~0.7 bound above the fit, the bias the networks inherit)
GALAXY = (1.5e5, 2.0, 0.35, 0.1, -0.15, 0.6)


@pytest.fixture
def fixed_set(tmp_path):
    """Three noisy images of `GALAXY` at SNR 60, named snr60 (a set name of the project)."""
    from galaxies.simulation.render import GalaxyRenderer
    sigma = float(np.linalg.norm(GalaxyRenderer().draw(*GALAXY)) / 60)
    return generate(tmp_path / "snr60.h5", FixedSpec(*GALAXY, sigma),
                    size=3, seed=12, progress=False, name="snr60")


def test_a_well_measured_galaxy_has_the_fit_as_mean_and_the_bound_as_width(fixed_set, model):
    """At SNR ~60, inside the prior, the posterior is nearly the likelihood: its std within 30%
    of the bound at the fit (an independent computation: the Fisher matrix, no sampling) but
    for n, and its mean within 0.5 bound of the JAX fit for r and the shear. Not so for n: its
    posterior is skewed (towards large n, where the likelihood is flat), wider than the bound
    and its mean up to one bound above the fit at this SNR; the flux, correlated with n,
    follows its mean."""
    from galaxies.inference.differentiable.fit import fit
    from galaxies.storage import files

    post = posterior_sets.for_dataset(fixed_set, "v3", limit=2, settings=FAST, model=model,
                                      progress=False)
    assert list(post.rows) == [0, 1]
    assert np.all(np.isnan(post.mean[2]))
    ds = files.load_dataset(fixed_set, fields=("img",), rows=2)
    estimate = fit(ds.img, ds.psf_fwhm, ds.sigma, model=model)
    assert np.all(post.ess[:2] >= FAST["min_ess"])
    gap = (post.mean[:2] - estimate.params) / estimate.std
    assert np.all(np.abs(gap[:, 2:]) < 0.5)
    assert np.all(np.abs(gap[:, :2]) < 1.5)
    ratio = post.std[:2] / estimate.std
    assert ratio[:, [0, 2, 3, 4]] == pytest.approx(np.ones((2, 4)), rel=0.3)
    assert np.all((ratio[:, 1] > 0.7) & (ratio[:, 1] < 2.0))
    assert post.covers and post.path.name == "snr60.posterior-v3.h5"


def test_the_cache_is_reused_shared_with_a_sibling_prior_and_read_by_load(fixed_set, model,
                                                                         monkeypatch):
    first = posterior_sets.for_dataset(fixed_set, "v3", limit=1, settings=FAST, model=model,
                                       progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed a cached row")

    monkeypatch.setattr(posterior_sets, "_compute", refuse)
    again = posterior_sets.for_dataset(fixed_set, "v3", limit=1, settings=FAST, progress=False)
    np.testing.assert_array_equal(again.mean[0], first.mean[0])
    # v1's prior, PSF and noise given, is v3's: its file is filled from v3's, not recomputed
    sibling = posterior_sets.for_dataset(fixed_set, "v1", limit=1, settings=FAST, progress=False)
    np.testing.assert_array_equal(sibling.mean[0], first.mean[0])
    assert posterior_sets.cache_path(fixed_set, "v1").is_file()
    loaded = posterior_sets.load(fixed_set, "v1")
    assert loaded.recipe == "v1" and list(loaded.rows) == [0]
    np.testing.assert_array_equal(loaded.std[0], first.std[0])
    # other settings are another fingerprint: computed again
    with pytest.raises(AssertionError, match="recomputed"):
        posterior_sets.for_dataset(fixed_set, "v3", limit=1, settings={**FAST, "seed": 5},
                                   progress=False)


def test_the_bound_weighted_mean_is_kept_for_random_sets_only(fixed_set, model):
    """A fixed set's errors share one bound: its weighted mean is not computed (NaN) unless
    asked for, and then it is kept and read back."""
    assert posterior_sets.default_settings("test")["bound_draws"] == posterior_sets.BOUND_DRAWS
    assert posterior_sets.default_settings("snr60")["bound_draws"] == 0
    plain = posterior_sets.for_dataset(fixed_set, "v3", limit=1, settings=FAST, model=model,
                                       progress=False)
    assert np.isnan(plain.weighted_mean[0]).all()
    asked = posterior_sets.for_dataset(fixed_set, "v3", limit=1, model=model, progress=False,
                                       settings={**FAST, "bound_draws": 16})
    assert np.isfinite(asked.weighted_mean[0]).all()
    assert np.all(np.abs(asked.weighted_mean[0] - asked.mean[0]) < asked.std[0])
    loaded = posterior_sets.load(fixed_set, "v3")
    np.testing.assert_array_equal(loaded.weighted_mean[0], asked.weighted_mean[0])
    assert np.isnan(loaded.weighted_mean[1]).all()


def test_a_row_is_seeded_by_itself_not_by_its_neighbours(tmp_path, fixed_set, model):
    """Row 1 computed alone is row 1 computed with row 0."""
    both = posterior_sets.for_dataset(fixed_set, "v3", limit=2, settings=FAST, model=model,
                                      progress=False)
    other = tmp_path / "copy"
    other.mkdir()
    copy = other / "snr60.h5"
    copy.write_bytes(fixed_set.read_bytes())
    alone = posterior_sets.for_dataset(copy, "v3", rows=[1], settings=FAST, model=model,
                                       progress=False)
    # the same draws (other draws move the mean by ~0.05 std); the batched fit's last bits,
    # the proposal's centre, depend on the batch
    assert np.all(np.abs(alone.mean[1] - both.mean[1]) < 1e-3 * both.std[1])
    assert not alone.computed[0]


def test_a_stale_cache_is_refused_by_load_and_bad_requests_in_one_line(fixed_set, model):
    posterior_sets.for_dataset(fixed_set, "v3", limit=1, settings=FAST, model=model,
                               progress=False)
    with h5py.File(fixed_set, "r+") as f:  # the set changes under its cache
        f["sigma"][0] = 250.0
    with pytest.raises(FileFormatError, match="another version"):
        posterior_sets.load(fixed_set, "v3")
    with pytest.raises(FileNotFoundError, match="posterior-v2"):
        posterior_sets.load(fixed_set, "v2")
    with pytest.raises(InputError, match="fixed galaxy"):
        posterior_sets.for_dataset(fixed_set, "snr30", limit=1)
    with pytest.raises(InputError, match="unknown recipe"):
        posterior_sets.prior_record("v9")
