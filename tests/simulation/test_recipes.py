"""The fixed-galaxy test sets: the new galaxies inside the prior and the SNR window (drawn by
GalSim itself), built at the smoke size with their bound, and which training sets cover them."""
import math

import galsim
import numpy as np
import pytest

from galaxies.conventions import (IMAGE_SIZE, MOFFAT_BETA, PIXEL_SCALE, RANGES, SNR_RANGE,
                                  TEST_GALAXY, snr)
from galaxies.evaluation import testsets
from galaxies.inference import crb_sets
from galaxies.runtime import profiles
from galaxies.runtime.errors import InputError
from galaxies.simulation import recipes
from galaxies.simulation.recipes import RECIPES, covers, observing_range
from galaxies.simulation.render import GalaxyRenderer
from galaxies.storage import files

NEW = ("compact", "extended")


def galsim_snr(spec) -> float:
    """The SNR of a fixed galaxy drawn by plain GalSim calls (no renderer cache of ours)."""
    galaxy = galsim.Sersic(spec.sersic_n, half_light_radius=spec.sersic_r, flux=spec.flux)
    profile = galsim.Convolve(galaxy.shear(g1=spec.g1, g2=spec.g2),
                              galsim.Moffat(beta=MOFFAT_BETA, fwhm=spec.psf_fwhm))
    clean = profile.drawImage(nx=IMAGE_SIZE, ny=IMAGE_SIZE, scale=PIXEL_SCALE).array
    return float(np.sqrt(np.sum(clean.astype(np.float64) ** 2)) / spec.sigma)


def test_test_sets_fixed_first_random_last_and_all_recipes():
    assert profiles.TESTSETS == ("snr60", "snr30", "compact", "extended", "test")
    assert profiles.FIXED_TESTSETS == profiles.TESTSETS[:-1]
    assert profiles.RANDOM_TESTSET == profiles.TESTSETS[-1]
    for name in profiles.FIXED_TESTSETS:
        assert RECIPES[name].spec.kind == "fixed", name
    assert RECIPES[profiles.RANDOM_TESTSET].spec.kind == "random"
    seeds = [r.seed for r in RECIPES.values()]
    assert len(set(seeds)) == len(seeds)
    sizes = {"smoke": 64, "quick": 1000, "full": 10_000}
    for profile, size in sizes.items():
        for name in profiles.FIXED_TESTSETS:
            assert profiles.get(profile).sizes[name] == size, (profile, name)


def test_fit_rows_per_test_set():
    quick = profiles.get("quick")
    assert [quick.fit_rows(t) for t in profiles.TESTSETS] == [120, 120, 120, 120, 100]
    with pytest.raises(InputError, match="unknown test set 'v1'"):
        quick.fit_rows("v1")


@pytest.mark.parametrize("name", NEW)
def test_new_galaxies_lie_inside_the_prior_and_the_snr_window(name):
    spec = RECIPES[name].spec
    for key in ("flux", "sersic_n", "sersic_r", "psf_fwhm", "sigma"):
        assert getattr(spec, key) in RANGES[key], key
    g = math.hypot(spec.g1, spec.g2)
    assert 0.1 < g <= RANGES["shear"].high  # a shear worth measuring
    # another PSF and noise level than the seed's galaxy
    assert spec.psf_fwhm != TEST_GALAXY["psf_fwhm"] and spec.sigma not in (200.0, 400.0)
    value = galsim_snr(spec)
    assert value in SNR_RANGE and 40 <= value <= 60  # well inside the training cut [10, 100]
    ours = snr(GalaxyRenderer().draw(spec.flux, spec.sersic_n, spec.sersic_r, spec.g1, spec.g2,
                                     spec.psf_fwhm), spec.sigma)
    assert ours == pytest.approx(value, rel=1e-4)
    assert covers("v3", name)  # the training recipe v3 draws this PSF and noise


def test_compact_is_small_and_concentrated_extended_large_and_flat():
    compact, extended = RECIPES["compact"].spec, RECIPES["extended"].spec
    seed = TEST_GALAXY
    assert compact.sersic_n > seed["sersic_n"] and compact.sersic_r < seed["sersic_r"]
    assert extended.sersic_n < seed["sersic_n"] and extended.sersic_r > seed["sersic_r"]
    assert compact.sersic_r < compact.psf_fwhm / 2  # smaller than its PSF's core


def test_the_new_sets_built_at_smoke_with_their_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(profiles, "ROOT", tmp_path)
    smoke = profiles.get("smoke")
    status = recipes.build_datasets(smoke, NEW, jobs=1, progress=False, log=lambda m: None)
    assert status == {name: "built" for name in NEW}
    for name in NEW:
        spec = RECIPES[name].spec
        ds = files.load_dataset(smoke.dataset(name))
        assert len(ds) == smoke.sizes[name] == 64 and ds.name == name
        truth = [spec.flux, spec.sersic_n, spec.sersic_r, spec.g1, spec.g2]
        np.testing.assert_allclose(ds.label, np.tile(truth, (len(ds), 1)), rtol=1e-6)
        assert (ds.psf_fwhm == np.float32(spec.psf_fwhm)).all()
        assert (ds.sigma == np.float32(spec.sigma)).all()
        assert ds.snr[0] == pytest.approx(galsim_snr(spec), rel=1e-4)
        assert len({img.tobytes() for img in ds.img}) == len(ds)  # fresh noise in each row
        bound = testsets.crb(smoke, name)
        assert crb_sets.cache_path(smoke.dataset(name)).is_file()
        assert bound.shape == (len(ds), 5) and (bound == bound[0]).all()
        assert np.isfinite(bound).all() and (bound > 0).all()
        # five free parameters cost information: the flux's bound is above flux / SNR, the
        # bound with the shape known
        assert bound[0, 0] > spec.flux / ds.snr[0]
        assert bound[0, 2] < spec.sersic_r and bound[0, 3] < 0.5  # r and the shear measurable


def test_observing_range_and_covers():
    assert observing_range("v1") == {"psf_fwhm": (0.5, 0.5), "sigma": (200.0, 200.0)}
    assert observing_range("v3") == {"psf_fwhm": (0.5, 1.0), "sigma": (200.0, 400.0)}
    assert observing_range("compact") == {"psf_fwhm": (0.8, 0.8), "sigma": (300.0, 300.0)}
    expected = {  # test set -> the training sets that saw its PSF and noise
        "snr60": {"v1", "v2", "v3", "v1a"}, "snr30": {"v2", "v3"}, "compact": {"v3"},
        "extended": {"v3"}, "test": {"v1", "v2", "v3", "v1a"}}
    for testset, trained in expected.items():
        assert {t for t in ("v1", "v2", "v3", "v1a") if covers(t, testset)} == trained, testset
    assert covers("v1", "v1") and not covers("v1", "v3")  # a range is not inside one value
    for bad in ("v4", "fit"):
        with pytest.raises(InputError, match=f"unknown data set '{bad}'"):
            covers(bad, "compact")
        with pytest.raises(InputError, match=f"unknown data set '{bad}'"):
            covers("v1", bad)
    # what the report and the app mark: only a recipe's network, on a recipe it did not cover
    assert recipes.extrapolates("v1", "compact") and not recipes.extrapolates("v3", "compact")
    assert not recipes.extrapolates("fit", "compact") and not recipes.extrapolates("v1", "mine")
