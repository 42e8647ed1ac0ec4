"""`galaxies measure`: FITS cutouts of any pixel scale and size, measured with the domain checked
(`galaxies.cutouts.fits_files`, `galaxies.cutouts.measure`, the generalized model, fit and bound)."""
from pathlib import Path

import galsim
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from galaxies import conventions
from galaxies.cutouts import measure
from galaxies.cutouts.fits_files import Cutout, read_cutouts
from galaxies.inference import crb, galsim_fit, likelihood
from galaxies.runtime import profiles
from galaxies.simulation import render

from cutout_files import TRUTH, cli, header, one_line_error, simulated, write  # noqa: F401

HST = Path(__file__).resolve().parents[1] / "data" / "hst"

def test_bad_inputs_are_one_line_and_status_2(tmp_path):
    noisy, psf = simulated(0.3, 41, 150.0, 1)
    good = write(tmp_path / "good.fits", noisy, 0.3)
    psf_file = write(tmp_path / "psf.fits", psf)
    out = tmp_path / "out.csv"
    no_wcs = write(tmp_path / "nowcs.fits", noisy)
    one_line_error(cli("measure", no_wcs, "--psf", psf_file, out),
                   "nowcs.fits", "no pixel scale", "--pixel-scale")
    big_psf = write(tmp_path / "bigpsf.fits", np.ones((45, 45)))
    one_line_error(cli("measure", good, "--psf", big_psf, out),
                   "bigpsf.fits", "45 x 45", "larger than the cutout", "41 x 41")
    rms = write(tmp_path / "rms.fits", np.full((40, 41), 150.0))
    one_line_error(cli("measure", good, "--psf", psf_file, "--rms", rms, out),
                   "rms.fits", "40 x 41", "41 x 41")
    holed = noisy.copy()
    holed[3:5, 7] = np.nan
    nan = write(tmp_path / "nan.fits", holed, 0.3)
    one_line_error(cli("measure", nan, "--psf", psf_file, out), "nan.fits", "2 NaN")
    empty = tmp_path / "empty.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((41, 41), np.float32),
                                                   header(0.3, (41, 41)), name="SCI")]).writeto(empty)
    one_line_error(cli("measure", empty, "--hdu", "0", "--psf", psf_file, out),
                   "empty.fits", "HDU 0 holds no image data", "1 (SCI)")
    nothing = tmp_path / "nothing.fits"
    fits.PrimaryHDU().writeto(nothing)
    one_line_error(cli("measure", nothing, "--psf-fwhm", "0.7", out), "nothing.fits",
                   "no HDU holds image data")
    with pytest.MonkeyPatch.context() as patch:  # no recommended network trained here, even
        patch.setattr(profiles, "ROOT", tmp_path)  # while the notebook chain trains the smoke one
        one_line_error(cli("measure", good, "--psf-fwhm", "0.7", "--method", "nn", out),
                       "--model DIR")
    one_line_error(cli("measure", good, "--psf-fwhm", "0.7", "--method", "nn", "--model",
                       tmp_path / "gone", out), "--model", "gone", "no such directory")
    # the inputs are checked before the network is loaded (TensorFlow takes seconds): an empty
    # model directory is not reached when a cutout is bad
    (tmp_path / "models").mkdir()
    one_line_error(cli("measure", nan, "--psf", psf_file, "--method", "nn", "--model",
                       tmp_path / "models", out), "nan.fits", "2 NaN")
    one_line_error(cli("measure", good, out), "--psf")
    assert not out.exists()
    # the empty primary is skipped by default: the SCI extension is measured
    done = cli("measure", empty, "--psf", psf_file, "--sigma", "150", out)
    assert done.exit_code == 0, done.output
    assert Table.read(out, format="ascii.csv")["hdu"][0] == 1


# ------------------------------------------------------------------ the generalized model

def test_the_generalized_model_and_bound_at_the_simulation_stamp_are_the_existing_ones():
    stamp = render.Stamp(psf=galsim.Moffat(beta=2.0, fwhm=0.6))  # a PSF object of its own
    assert not stamp.is_default
    old, new = likelihood.SersicModel(0.6), likelihood.SersicModel(None, stamp=stamp)
    for theta in ((3.0, 0.3, -0.069, 0.15), (1.27, 0.45, 0.2, -0.1)):
        assert np.array_equal(old.image(*theta), new.image(*theta))
        for a, b in zip(old.image_and_dn(*theta), new.image_and_dn(*theta)):
            assert np.array_equal(a, b)
    params = (1e5, 3.0, 0.3, -0.069, 0.15)
    assert np.array_equal(crb.cramer_rao_bound(*params, psf_fwhm=0.6, sigma=250.0),
                          crb.cutout_bound(params, stamp, 250.0))
    # a sigma map of one value is that value
    assert np.allclose(crb.cutout_bound(params, stamp, np.full((64, 64), 250.0)),
                       crb.cutout_bound(params, stamp, 250.0), rtol=1e-12)
    image = render.simulate(*params, psf_fwhm=0.6, sigma=250.0, seed=4).noisy
    assert np.array_equal(galsim_fit.fit_image(image, 0.6, 250.0).params,
                          galsim_fit.fit_image(image, None, 250.0, stamp=stamp).params)


def test_the_bound_follows_the_pixel_scale_and_the_masked_pixels():
    params = (1e5, 2.0, 0.35, 0.1, -0.05)
    psf = galsim.Moffat(beta=2.0, fwhm=0.7)
    fine = crb.cutout_bound(params, render.Stamp(0.1, (121, 121), psf), 50.0, gain=None)
    # the same noise per arcsec^2 on pixels 3x as large: sigma x 3, the same information
    coarse = crb.cutout_bound(params, render.Stamp(0.3, (41, 41), psf), 150.0, gain=None)
    assert np.allclose(fine[[0, 3, 4]], coarse[[0, 3, 4]], rtol=0.1)
    half = np.full((41, 41), 150.0)
    half[:, :20] = np.inf  # half the stamp masked: less information
    assert np.all(crb.cutout_bound(params, render.Stamp(0.3, (41, 41), psf), half,
                                   gain=None) > coarse)


# -------------------------------------------------------------------- simulated cutouts

@pytest.mark.parametrize("scale, size, sigma", [(0.1, 80, 50.0), (0.3, 41, 150.0)])
def test_a_simulated_fits_cutout_is_measured_within_a_few_sigma(tmp_path, scale, size, sigma):
    noisy, psf = simulated(scale, size, sigma, seed=11)
    path = write(tmp_path / "gal.fits.gz", noisy, scale)
    write(tmp_path / "psf.fits", psf)
    (cutout,) = read_cutouts(path)
    assert cutout.pixel_scale == pytest.approx(scale, rel=1e-6)
    m = measure.measure_cutout(cutout, "fit", psf_image=psf, sigma=sigma)
    assert m.converged and m.params.shape == (5,) and np.all(m.std > 0)
    z = (m.params - TRUTH) / m.std
    assert np.all(np.abs(z) < 4), z
    bound = crb.cutout_bound(TRUTH, render.Stamp(scale, (size, size), galsim.InterpolatedImage(
        galsim.Image(psf, scale=scale)), pixel_included=True), sigma, gain=None, sky=True)
    # the bound at the estimate, near the truth's, with the sky fitted too
    assert np.allclose(m.std, bound[:5], rtol=0.3) and m.background_std == pytest.approx(
        bound[5], rel=0.3)
    assert np.abs(m.data - m.model).std() < 1.3 * sigma  # the residual is noise
    assert "psf" not in m.flags and "second_source" not in m.flags and "edge" not in m.flags


def test_resampled_noise_matches_the_interpolation_kernel():
    """Upsampling 0.3" -> 0.23" samples GalSim's quintic interpolant: each new pixel is
    (0.23/0.3)^2 sum_ij K(u - i) K(v - j) d_ij, so its variance is sigma^2 (0.23/0.3)^4
    sum_i K(u - i)^2 sum_j K(v - j)^2; the Monte Carlo of `resampled_sigma` must agree."""
    scale, size, sigma = 0.3, 41, 10.0
    quintic = galsim.Quintic()
    centre_in, centre_out = (size - 1) / 2, (conventions.IMAGE_SIZE - 1) / 2
    u = centre_in + (np.arange(conventions.IMAGE_SIZE) - centre_out) * conventions.PIXEL_SCALE / scale
    taps = np.arange(-4, 5)
    k2 = np.array([np.sum(quintic.xval(x - np.round(x) - taps) ** 2) for x in u])
    variance = sigma**2 * (conventions.PIXEL_SCALE / scale) ** 4 * np.outer(k2, k2)
    expected = np.sqrt(variance.mean())
    measured = measure.resampled_sigma((size, size), scale, sigma, realizations=12)
    assert measured == pytest.approx(expected, rel=0.03)
    # downsampling integrates: the noise of 0.23" pixels from 0.05" ones is near binning's
    fine = measure.resampled_sigma((150, 150), 0.05, 1.0, realizations=4)
    assert 0.7 * 4.6 < fine < 1.3 * 4.6  # (0.23 / 0.05) = 4.6 pixels a side added up


def test_the_equivalent_noise_keeps_the_variance_of_a_flux():
    """The white noise a network is told of carries the cutout's information: the flux summed
    over a wide aperture of a resampled pure-noise field has the variance that white noise of
    `equivalent_sigma` per 0.23" pixel gives it (a Monte Carlo, upsampling and integrating),
    while the correlated pixels' own standard deviation misses it by far when upsampling."""
    from galaxies.cutouts import resampling
    rng = np.random.default_rng(3)
    for scale, size in ((0.3, 60), (0.1, 160)):
        sums = []
        for k in range(150):
            field = resampling.resample(rng.standard_normal((size, size)), scale, pad_sigma=1.0,
                                        seed=k + 1)
            sums.append(field[16:48, 16:48].sum())  # 32 x 32 pixels, inside the cutout
        per_pixel = np.std(sums) / 32
        assert per_pixel == pytest.approx(resampling.equivalent_sigma(1.0, scale), rel=0.15)
    pixels = resampling.resampled_sigma((60, 60), 0.3, 1.0)
    assert pixels < 0.8 * resampling.equivalent_sigma(1.0, 0.3)


def test_the_stamp_fwhm_is_the_moffat_s_own_on_the_simulation_s_pixels():
    """A PSF drawn as the simulations draw it (Moffat beta 2, 0.23" pixels) gives back its FWHM;
    coarser cutout pixels widen the PSF, and the match grows with them."""
    from galaxies.cutouts import resampling
    for fwhm in (0.5, 0.8):
        drawn = galsim.Moffat(beta=2.0, fwhm=fwhm).drawImage(nx=64, ny=64, scale=0.23).array
        assert resampling.stamp_fwhm(drawn / drawn.sum()) == pytest.approx(fwhm, abs=2e-3)
    widths = []
    for scale in (0.1, 0.3, 0.5):
        cut = galsim.Moffat(beta=2.0, fwhm=0.7).drawImage(nx=75, ny=75, scale=scale).array
        widths.append(resampling.stamp_fwhm(resampling.resample(cut / cut.sum(), scale)))
    assert widths[0] == pytest.approx(0.7, abs=0.02) and widths[0] < widths[1] < widths[2]


def test_a_cube_of_stamps_gives_a_row_each_in_a_fits_table(tmp_path):
    planes = [simulated(0.3, 41, 150.0, seed)[0] for seed in (1, 2)]
    _, psf = simulated(0.3, 41, 150.0, 1)
    cube = write(tmp_path / "cube.fits", np.stack(planes), 0.3)
    out = tmp_path / "out.fits"
    done = cli("measure", cube, "--psf", write(tmp_path / "psf.fits", psf), out)
    assert done.exit_code == 0, (done.output, done.exception)
    assert "estimated from the border" in done.output  # the noise estimate is printed
    table = Table.read(out)
    assert list(table["plane"]) == [0, 1] and len(table) == 2
    assert {"flux", "sersic_n", "sersic_r", "g1", "g2", "flux_std", "g2_std", "snr", "method",
            "flags", "converged"} <= set(table.colnames)
    assert np.all(np.abs(table["sigma"] - 150.0) < 30)  # the border's noise estimate
    # refusing to overwrite without --force, then replacing with it
    again = cli("measure", cube, "--psf", tmp_path / "psf.fits", out)
    one_line_error(again, "out.fits", "already exists", "--force")
    assert cli("measure", cube, "--psf", tmp_path / "psf.fits", out, "--force",
               "--sigma", "150").exit_code == 0


# ------------------------------------------------------------------------ real cutouts

def test_the_real_hst_cutouts_give_a_flagged_row_each(tmp_path):
    names = ("dwarf", "neighbour", "compact")
    out = tmp_path / "real.csv"
    args = ["measure", *[HST / f"a2744_f105w_{n}.fits.gz" for n in names],
            "--psf", HST / "a2744_f105w_psf.fits.gz", out]
    for n in names:
        args += ["--rms", HST / f"a2744_f105w_{n}_rms.fits.gz"]
    done = cli(*args)
    assert done.exit_code == 0, (done.output, done.exception)
    table = Table.read(out, format="ascii.csv")
    assert len(table) == 3 and [Path(f).name for f in table["file"]] == [
        f"a2744_f105w_{n}.fits.gz" for n in names]
    assert np.all(np.isfinite(table["flux"])) and np.all(table["flux"] > 0)
    assert np.allclose(table["pixel_scale"], 0.06, rtol=1e-3)  # from the WCS
    for flags in table["flags"]:
        assert "psf" in flags and "noise" in flags  # a 0.15" PSF, noise in e-/s: outside
    assert not any(table["in_domain"] == "True")
    assert "edge" in table["flags"][1]  # the bright neighbour spills over its stamp


class Network:
    """A stand-in for a trained network: records what it is given, answers a fixed estimate."""

    def __init__(self, answer):
        self.answer, self.seen = np.asarray(answer, float), {}

    def predict(self, images, psf_fwhm=None, sigma=None, psf_img=None):
        self.seen = dict(images=images, psf_fwhm=psf_fwhm, sigma=sigma, psf_img=psf_img)
        return self.answer[None], None


def test_the_network_sees_the_resampled_stamp_and_refined_starts_from_it():
    scale, size, sigma = 0.1, 80, 50.0
    noisy, psf = simulated(scale, size, sigma, seed=5)
    cutout = Cutout(noisy, "sim.fits", 0, None, scale)
    start = TRUTH * [1.1, 1.2, 1.15, 0.8, 1.2]
    network = Network(start)
    nn = measure.measure_cutout(cutout, "nn", psf_image=psf, sigma=sigma, network=network)
    seen = network.seen
    assert seen["images"].shape == (1, 64, 64) and seen["psf_img"].shape == (1, 64, 64)
    assert seen["psf_img"].sum() == pytest.approx(1.0, rel=1e-5)
    # the flux is kept in counts: the stamp holds the galaxy's light (the stamp is wider)
    assert seen["images"].sum() == pytest.approx(noisy.sum(), rel=0.05, abs=5 * sigma * size)
    # told the noise and PSF in its training's terms: white noise of the same information,
    # the Moffat matching the resampled PSF (0.1" pixels add little to a 0.7" Moffat)
    assert seen["sigma"][0] == pytest.approx(nn.sigma_stamp)
    assert nn.sigma_stamp == pytest.approx(sigma * conventions.PIXEL_SCALE / scale)
    assert seen["psf_fwhm"][0] == pytest.approx(nn.psf_fwhm_stamp)
    assert nn.psf_fwhm_stamp == pytest.approx(0.7, abs=0.02)
    assert np.array_equal(nn.params, start) and np.all(np.isfinite(nn.std))
    refined = measure.measure_cutout(cutout, "refined", psf_image=psf, sigma=sigma,
                                     network=network, steps=4)
    # a few Gauss-Newton steps from a start 10-20% off reach the maximum-likelihood estimate
    # (this noise draw puts that estimate's g2 2.6 sigma from the truth)
    fitted = measure.measure_cutout(cutout, "fit", psf_image=psf, sigma=sigma)
    assert refined.converged and np.all(np.abs(refined.params - TRUTH) / refined.std < 4)
    assert np.all(np.abs(refined.params - fitted.params) < 0.1 * fitted.std)
    assert refined.background == pytest.approx(fitted.background, abs=0.1 * fitted.background_std)


def test_the_psf_from_a_header_keyword_and_a_moffat(tmp_path):
    noisy, _ = simulated(0.3, 41, 150.0, seed=2)
    path = write(tmp_path / "kw.fits", noisy, 0.3, SEEING=0.7)
    out = tmp_path / "kw.csv"
    done = cli("measure", path, "--psf-fwhm-key", "SEEING", "--sigma", "150", out)
    assert done.exit_code == 0, (done.output, done.exception)
    row = Table.read(out, format="ascii.csv")[0]
    assert row["psf_fwhm"] == pytest.approx(0.7) and row["sigma"] == pytest.approx(150.0)
    assert abs(row["sersic_r"] - TRUTH[2]) < 4 * row["sersic_r_std"]
    one_line_error(cli("measure", path, "--psf-fwhm-key", "FWHM", out, "--force"),
                   "kw.fits", "no header keyword 'FWHM'")


def test_the_jax_model_measures_a_cutout_as_galsim_does_or_falls_back_saying_why(monkeypatch):
    from galaxies.inference.differentiable import cutouts
    noisy, psf = simulated(0.3, 41, 150.0, seed=11)
    cutout = Cutout(noisy, "sim.fits", 0, None, 0.3)
    # the sky given: the JAX path fits it otherwise, the GalSim path corrects it from the border
    jax, galsim_ = (measure.measure_cutout(cutout, "fit", psf_image=psf, sigma=150.0, renderer=r,
                                           background=0.0) for r in ("jax", "galsim"))
    assert (jax.renderer, galsim_.renderer, jax.renderer_note) == ("jax", "galsim", "")
    assert jax.converged and np.all(np.abs(jax.params - galsim_.params) < 0.05 * galsim_.std)
    np.testing.assert_allclose(jax.std, galsim_.std, rtol=0.02)
    monkeypatch.setattr(cutouts, "TOLERANCE", 0.0)  # no stamp is drawn that exactly
    fallback = measure.measure_cutout(cutout, "fit", psf_image=psf, sigma=150.0, renderer="jax",
                                      background=0.0)
    assert fallback.renderer == "galsim" and "misses GalSim's image" in fallback.renderer_note
    np.testing.assert_array_equal(fallback.params, galsim_.params)
