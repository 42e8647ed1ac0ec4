"""The `cosmos` test set: the catalog as GalSim reads it, the truths, the ring, the file."""
import galsim
import h5py
import numpy as np
import pytest

from galaxies.simulation import cosmos
from galaxies.conventions import IMAGE_SIZE, PIXEL_SCALE, RANGES, SNR_RANGE
from galaxies.runtime.errors import InputError, OutputExistsError
from galaxies.storage import files


def test_the_catalog_has_its_100_galaxies_64_sersic_36_bulge_disc():
    gals = cosmos.catalog()
    kinds = np.array([g.kind for g in gals])
    assert len(gals) == 100
    assert (kinds == cosmos.SERSIC).sum() == 64 and (kinds == cosmos.BULGE_DISC).sum() == 36
    n = np.array([g.sersic_n for g in gals if g.kind == cosmos.SERSIC])
    assert n.min() >= 0.3 and n.max() <= 6.0
    frac = np.array([g.bulge_fraction for g in gals if g.kind == cosmos.BULGE_DISC])
    assert ((frac > 0) & (frac < 1)).all()


def test_every_galaxy_is_galsims_own_parametric_galaxy():
    cat = cosmos.galsim_catalog()
    psf = galsim.Moffat(beta=2.0, fwhm=0.5)
    for gal in cosmos.catalog():
        theirs = cat.makeGalaxy(gal.index, gal_type="parametric", sersic_prec=0.0)
        ours = gal.profile().withFlux(theirs.flux)
        # as the set draws them: through the PSF, on the simulations' pixels
        a = galsim.Convolve(ours, psf).drawImage(nx=IMAGE_SIZE, ny=IMAGE_SIZE, scale=PIXEL_SCALE).array
        b = galsim.Convolve(theirs, psf).drawImage(nx=IMAGE_SIZE, ny=IMAGE_SIZE,
                                                   scale=PIXEL_SCALE).array
        assert np.abs(a - b).max() <= 1e-4 * b.max(), gal.index  # FFT sizes may differ


def _drawn_hlr(profile, r, per_radius=50, size=1200):
    """The radius enclosing half of ``profile``'s flux on GalSim's samples of it (no pixel, no
    FFT), summed by radius: good to about 0.5% (the de Vaucouleurs cusp at the centre)."""
    scale = r / per_radius
    image = profile.drawImage(nx=size, ny=size, scale=scale, method="no_pixel").array
    y, x = np.indices(image.shape)
    radius = np.hypot(x - (size - 1) / 2, y - (size - 1) / 2).ravel() * scale
    order = np.argsort(radius)
    enclosed = np.cumsum(image.astype(float).ravel()[order])
    return radius[order][np.searchsorted(enclosed, 0.5 * profile.flux)]


def test_half_light_radius_is_that_of_galsims_round_components():
    gals = [g for g in cosmos.catalog() if g.kind == cosmos.BULGE_DISC][:2]
    for gal in gals:
        round_profile = galsim.Add([galsim.Sersic(n, half_light_radius=hlr, flux=frac)
                                    for n, hlr, frac, _, _ in gal.components])
        assert gal.r == pytest.approx(_drawn_hlr(round_profile, gal.r), rel=6e-3)
        # neither component's radius: the sum's
        assert min(c[1] for c in gal.components) < gal.r < max(c[1] for c in gal.components)
    # the same measurement on one de Vaucouleurs profile (known radius 0.5) is as good
    assert _drawn_hlr(galsim.Sersic(4.0, half_light_radius=0.5), 0.5) == pytest.approx(0.5, rel=6e-3)
    assert cosmos.half_light_radius(((4.0, 0.5, 0.3, 1, 0), (4.0, 0.5, 0.7, 1, 0))) == pytest.approx(0.5)
    sersic = next(g for g in cosmos.catalog() if g.kind == cosmos.SERSIC)
    assert sersic.r == sersic.components[0][1]


@pytest.mark.parametrize("intrinsic, angle, applied", [((0.3, 0.1), 0.0, (0.02, 0.0)),
                                                       ((-0.2, 0.25), 45.0, (0.01, -0.03)),
                                                       ((0.0, 0.0), 30.0, (0.02, 0.02))])
def test_total_shear_is_galsims_composition(intrinsic, angle, applied):
    rotated = galsim.Shear(g1=intrinsic[0], g2=intrinsic[1])
    rotated = galsim.Shear(g=rotated.g, beta=rotated.beta + angle * galsim.degrees)
    expected = galsim.Shear(g1=applied[0], g2=applied[1]) + rotated
    assert cosmos.total_shear(intrinsic, angle, applied) == pytest.approx(
        (expected.g1, expected.g2), abs=1e-12)


@pytest.fixture(scope="module")
def smoke_set(tmp_path_factory):
    path = tmp_path_factory.mktemp("cosmos") / "cosmos.h5"
    spec = cosmos.CosmosSpec(galaxies=6, angles=2, realizations=2)
    return cosmos.build(path, spec, progress=False), spec


def test_the_set_is_a_data_set_with_its_ring(smoke_set):
    path, spec = smoke_set
    ds = files.load_dataset(path)
    extra = cosmos.load_extra(path)
    assert len(ds) == spec.size == 6 * 2 * 2 * 2
    # every galaxy: each angle twice (+g and -g) per realization, opposite applied shears
    for g in range(6):
        rows = extra["galaxy"] == g
        assert sorted(set(extra["angle"][rows])) == [0.0, 90.0]
        assert extra["in_box"][rows].all() or not extra["in_box"][rows].any()
        plus = rows & (extra["sign"] == 1)
        minus = rows & (extra["sign"] == -1)
        np.testing.assert_allclose(ds.label[plus, 3:5], -ds.label[minus, 3:5])
        assert np.hypot(*ds.label[plus][0, 3:5]) == pytest.approx(spec.shear, rel=1e-5)
    assert ((ds.label[:, 0] >= RANGES["flux"].low) & (ds.label[:, 0] <= RANGES["flux"].high)).all()
    inside = extra["in_box"]
    assert ((ds.snr[inside] >= SNR_RANGE.low) & (ds.snr[inside] <= SNR_RANGE.high)).all()
    assert np.isnan(ds.label[extra["kind"] == cosmos.BULGE_DISC, 1]).all()
    assert np.isnan(extra["g_total"][extra["kind"] == cosmos.BULGE_DISC]).all()
    np.testing.assert_allclose(ds.snr, np.sqrt((ds.img_nonoise.astype(float) ** 2).sum(
        axis=(1, 2))) / spec.sigma, rtol=1e-5)


def test_images_are_galsims_drawing_of_the_catalog_galaxy(smoke_set):
    path, spec = smoke_set
    ds = files.load_dataset(path)
    extra = cosmos.load_extra(path)
    cat = cosmos.galsim_catalog()
    psf = galsim.Moffat(beta=2.0, fwhm=spec.psf_fwhm)
    for row in (0, 5, len(ds) - 1):
        gal = cat.makeGalaxy(int(extra["galaxy"][row]), gal_type="parametric", sersic_prec=0.0)
        gal = gal.rotate(float(extra["angle"][row]) * galsim.degrees).withFlux(
            float(ds.label[row, 0])).shear(g1=float(ds.label[row, 3]), g2=float(ds.label[row, 4]))
        expected = galsim.Convolve(gal, psf).drawImage(
            nx=IMAGE_SIZE, ny=IMAGE_SIZE, scale=PIXEL_SCALE).array
        np.testing.assert_allclose(ds.img_nonoise[row], expected, atol=1e-4 * expected.max())


def test_a_plus_minus_pair_shares_its_noise_and_realizations_differ(smoke_set):
    path, _ = smoke_set
    ds = files.load_dataset(path)
    extra = cosmos.load_extra(path)
    noise = (ds.img - ds.img_nonoise).reshape(len(ds), -1)
    key = lambda i: (extra["galaxy"][i], extra["angle"][i], extra["realization"][i])  # noqa: E731
    plus = [i for i in range(len(ds)) if extra["sign"][i] == 1]
    for i in plus[:6]:
        j = next(k for k in range(len(ds)) if extra["sign"][k] == -1 and key(k) == key(i))
        assert np.corrcoef(noise[i], noise[j])[0, 1] > 0.9
        other = next(k for k in plus if k != i and extra["galaxy"][k] == extra["galaxy"][i]
                     and extra["angle"][k] == extra["angle"][i])
        assert abs(np.corrcoef(noise[i], noise[other])[0, 1]) < 0.1


def test_paired_noise_has_the_simulations_statistics(check_noise_model):
    clean = np.stack([cosmos.draw_row(cosmos.catalog()[i], 3e6, 0.0, 0.0, 0.0, 0.5)
                      for i in range(6)])
    noisy = np.stack([cosmos.paired_noise(c, 5.0, 100 + i) for i, c in enumerate(clean)])
    check_noise_model(noisy, clean, np.full(6, 5.0))
    with pytest.raises(InputError, match="seed"):
        cosmos.paired_noise(clean[0], 5.0, 0)


def test_the_same_seed_writes_the_same_set(smoke_set, tmp_path):
    path, spec = smoke_set
    again = cosmos.build(tmp_path / "again.h5", spec, progress=False)
    with h5py.File(path) as a, h5py.File(again) as b:
        np.testing.assert_array_equal(a["img"][()], b["img"][()])
        np.testing.assert_array_equal(a["in_box"][()], b["in_box"][()])


def test_bad_settings_are_one_line_errors(tmp_path, smoke_set):
    with pytest.raises(InputError, match="angles"):
        cosmos.CosmosSpec(galaxies=4, angles=1, realizations=1)
    with pytest.raises(InputError, match="realizations"):
        cosmos.CosmosSpec(galaxies=4, angles=2, realizations=0)
    with pytest.raises(InputError, match="shear"):
        cosmos.CosmosSpec(galaxies=4, angles=2, realizations=1, shear=0.5)
    with pytest.raises(InputError, match="snr"):
        cosmos.CosmosSpec(galaxies=4, angles=2, realizations=1, snr=(5.0, 50.0))
    with pytest.raises(InputError, match="profile"):
        cosmos.spec_for("huge")
    with pytest.raises(InputError, match="catalog has 100"):
        cosmos.build(tmp_path / "x.h5", cosmos.CosmosSpec(galaxies=101, angles=2,
                                                          realizations=1), progress=False)
    with pytest.raises(InputError, match="missing"):
        cosmos.catalog(tmp_path)
    with pytest.raises(OutputExistsError):
        cosmos.build(smoke_set[0], smoke_set[1], progress=False)
    with pytest.raises(files.FileFormatError, match="not a cosmos set"):
        cosmos.load_extra(_plain(smoke_set[0], tmp_path / "plain.h5"))
    assert cosmos.spec_for("quick").size == 800


def _plain(path, out):
    """A copy of the set without its extra fields (a plain data set)."""
    with h5py.File(path) as src, h5py.File(out, "w") as dst:
        for key in files.DATASET_FIELDS:
            src.copy(key, dst)
    return out


def test_the_profiles_set_is_built_once_and_kept(tmp_path, monkeypatch):
    from galaxies.runtime import profiles
    monkeypatch.setattr(profiles, "ROOT", tmp_path)
    path = cosmos.build_for_profile("smoke", progress=False)
    assert path == tmp_path / "data" / "smoke" / "cosmos.h5"
    assert len(files.load_dataset(path, fields=("label",))) == cosmos.SPECS["smoke"].size
    stamp = path.stat().st_mtime_ns
    assert cosmos.build_for_profile("smoke", progress=False) == path
    assert path.stat().st_mtime_ns == stamp  # the same recipe: kept
    with h5py.File(path, "a") as f:
        f.attrs["recipe"] = '{"kind": "cosmos", "seed": 1}'
    with pytest.raises(OutputExistsError, match="other settings"):
        cosmos.build_for_profile("smoke", progress=False)
    cosmos.build_for_profile("smoke", force=True, progress=False)
    assert files.dataset_info(path)["recipe"] == cosmos.recipe_record(cosmos.SPECS["smoke"])
