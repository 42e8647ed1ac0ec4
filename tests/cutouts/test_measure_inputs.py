"""`galaxies measure` checks what it is given for meaning (`galaxies.cutouts.measure_inputs`,
`galaxies.cutouts.fits_files`): unit mistakes, a PSF off its centre, header values that are not
numbers, a rotated or skewed WCS, files that are damaged, and the memory bound."""
import cmath
import math

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner
from cutout_files import header, one_line_error, simulated, write

from galaxies.cutouts import fits_files, measure_inputs
from galaxies.interfaces.cli import main
from galaxies.runtime import resources

SCALE = 0.3


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def rotated_header(degrees: float, shape, mirrored: bool = False, skew: float = 0.0):
    """A TAN WCS of SCALE" pixels whose pixel axes are turned by ``degrees`` from (west,
    north), the x axis mirrored (east) when ``mirrored``, the y axis leaning by ``skew``."""
    hdr = header(SCALE, shape)
    for key in ("CDELT1", "CDELT2", "PC1_1", "PC1_2", "PC2_1", "PC2_2"):
        hdr.remove(key, ignore_missing=True)
    t = math.radians(degrees)
    to_sky = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    if mirrored:
        to_sky = to_sky @ np.diag([1.0, -1.0])
    to_sky = to_sky @ np.array([[1.0, skew], [0.0, 1.0]])
    cd = np.diag([-1.0, 1.0]) @ to_sky * SCALE / 3600  # (west, north) -> (RA east, Dec)
    for i in range(2):
        for j in range(2):
            hdr[f"CD{i + 1}_{j + 1}"] = cd[i, j]
    return hdr


@pytest.fixture(scope="module")
def galaxy():
    noisy, psf = simulated(SCALE, 41, 150.0, 3)
    return noisy.astype(np.float32), psf


def measured(tmp_path, image, hdr, name):
    path = tmp_path / f"{name}.fits"
    fits.PrimaryHDU(image, hdr).writeto(path)
    out = tmp_path / f"{name}.csv"
    done = cli("measure", path, "--psf-fwhm", "0.7", "--sigma", "150", out)
    assert done.exit_code == 0, (done.output, done.exception)
    return Table.read(out, format="ascii.csv")[0]


def test_a_rotated_wcs_turns_the_shear_into_the_sky_frame(tmp_path, galaxy):
    image, _ = galaxy
    plain = measured(tmp_path, image, header(SCALE, image.shape), "plain")
    turned = measured(tmp_path, image, rotated_header(30, image.shape), "turned")
    mirrored = measured(tmp_path, image, rotated_header(0, image.shape, mirrored=True), "mirror")
    assert plain["shear_frame"] == turned["shear_frame"] == "sky"
    g = complex(plain["g1"], plain["g2"])
    assert abs(g) > 0.05  # a shear to turn: TRUTH's (0.12, -0.08)
    # the same pixels: the same galaxy on the grid, its shear turned by twice 30 degrees
    expected = g * cmath.exp(2j * math.radians(30))
    assert complex(turned["g1"], turned["g2"]) == pytest.approx(expected, abs=1e-9)
    assert math.hypot(turned["g1_std"], turned["g2_std"]) == pytest.approx(
        math.hypot(plain["g1_std"], plain["g2_std"]), rel=1e-9)
    assert (mirrored["g1"], mirrored["g2"]) == pytest.approx((plain["g1"], -plain["g2"]), abs=1e-9)
    for column in ("flux", "sersic_n", "sersic_r"):
        assert turned[column] == pytest.approx(plain[column], rel=1e-9)


def test_without_a_wcs_the_shear_is_on_the_pixel_axes(tmp_path, galaxy):
    image, _ = galaxy
    path = write(tmp_path / "bare.fits", image)
    out = tmp_path / "bare.csv"
    done = cli("measure", path, "--pixel-scale", SCALE, "--psf-fwhm", "0.7", "--sigma", "150",
               out)
    assert done.exit_code == 0, done.output
    assert Table.read(out, format="ascii.csv")[0]["shear_frame"] == "pixel"


def test_a_skewed_wcs_is_refused(tmp_path, galaxy):
    image, _ = galaxy
    path = tmp_path / "skew.fits"
    fits.PrimaryHDU(image, rotated_header(10, image.shape, skew=0.2)).writeto(path)
    one_line_error(cli("measure", path, "--psf-fwhm", "0.7", tmp_path / "o.csv"),
                   "skew.fits", "skew")
    assert fits_files.wcs_frame(rotated_header(10, image.shape), "x")[0] == pytest.approx(
        math.radians(10))


@pytest.mark.parametrize("fwhm", ["120", "1e-12", "0.05"])
def test_a_psf_fwhm_in_the_wrong_unit_is_refused_before_any_work(tmp_path, galaxy, fwhm):
    image, _ = galaxy
    path = write(tmp_path / "c.fits", image, SCALE)
    one_line_error(cli("measure", path, "--psf-fwhm", fwhm, tmp_path / "o.csv"),
                   "c.fits", "PSF FWHM", "outside", "pixels")


@pytest.mark.parametrize("cdelt, unit, word", [(0.3, "deg", "1080"), (0.3 / 3600, "arcsec", "8.33333e-05")])
def test_a_wcs_in_the_wrong_unit_is_refused(tmp_path, galaxy, cdelt, unit, word):
    image, _ = galaxy
    hdr = header(SCALE, image.shape)
    hdr["CDELT1"], hdr["CDELT2"] = -cdelt, cdelt
    hdr["CUNIT1"] = hdr["CUNIT2"] = unit
    path = tmp_path / "units.fits"
    fits.PrimaryHDU(image, hdr).writeto(path)
    one_line_error(cli("measure", path, "--psf-fwhm", "0.7", tmp_path / "o.csv"),
                   "units.fits", "pixel scale of its WCS", word, "--pixel-scale")


@pytest.mark.parametrize("value, words", [("0.7", ["is not a number"]), (True, ["True", "not a number"]),
                                          (120.0, ["PSF FWHM", "120"])])
def test_a_header_fwhm_must_be_a_number_in_range(tmp_path, galaxy, value, words):
    image, _ = galaxy
    path = write(tmp_path / "kw.fits", image, SCALE, SEEING=value)
    one_line_error(cli("measure", path, "--psf-fwhm-key", "SEEING", tmp_path / "o.csv"),
                   "kw.fits", *words)


def test_a_psf_image_off_its_centre_or_negative_is_refused(tmp_path, galaxy):
    image, psf = galaxy
    cutout = write(tmp_path / "c.fits", image, SCALE)
    off = write(tmp_path / "off.fits", np.roll(psf, 12, axis=1))
    one_line_error(cli("measure", cutout, "--psf", off, tmp_path / "o.csv"),
                   "off.fits", "peak", "12.0 pixels from the image's centre")
    below = psf.copy()
    below[:10] = -0.35 * psf.sum() / below[:10].size  # sums to 0.65: positive, but not a PSF
    negative = write(tmp_path / "neg.fits", below)
    one_line_error(cli("measure", cutout, "--psf", negative, tmp_path / "o.csv"),
                   "neg.fits", "negative pixels")
    one_line_error(cli("measure", cutout, tmp_path / "o.csv", "--psf",
                       write(tmp_path / "sum.fits", -psf)), "sum.fits", "positive")
    centred = write(tmp_path / "psf.fits", psf)
    done = cli("measure", cutout, "--psf", centred, "--sigma", "150", tmp_path / "o.csv")
    assert done.exit_code == 0, done.output


@pytest.mark.parametrize("option, value", [("--sigma", "inf"), ("--sigma", "nan"),
                                           ("--gain", "inf"), ("--background", "nan"),
                                           ("--psf-fwhm", "inf")])
def test_numbers_that_are_not_finite_are_refused(tmp_path, galaxy, option, value):
    image, _ = galaxy
    path = write(tmp_path / "c.fits", image, SCALE)
    extra = [] if option == "--psf-fwhm" else ["--psf-fwhm", "0.7"]
    one_line_error(cli("measure", path, *extra, option, value, tmp_path / "o.csv"),
                   option, "finite")


def test_damaged_inputs_are_one_line(tmp_path, galaxy):
    image, _ = galaxy
    whole = write(tmp_path / "whole.fits", image, SCALE).read_bytes()
    truncated = tmp_path / "cut.fits"
    truncated.write_bytes(whole[:len(whole) - 3000])
    out = tmp_path / "o.csv"
    one_line_error(cli("measure", truncated, "--psf-fwhm", "0.7", out), "cut.fits")
    loop = tmp_path / "loop.fits"
    loop.symlink_to(loop)
    one_line_error(cli("measure", loop, "--psf-fwhm", "0.7", out), "loop.fits",
                   "symbolic links")
    good = tmp_path / "whole.fits"
    model = tmp_path / "model"
    model.mkdir()
    (model / "scalers.json").write_text("{}")
    (model / "model.keras").write_bytes(b"not a zip archive")
    for record, words in (('["config"]', ["training.json", "JSON object", "list"]),
                          ('{"config": {"model": "xception"}}', ["model.keras", "not a Keras model"]),
                          ('{"config": {"epochs": "many", "nonsense": 1}}', ["configuration"])):
        (model / "training.json").write_text(record)
        one_line_error(cli("measure", good, "--psf-fwhm", "0.7", "--method", "nn", "--model",
                           model, out), *words)
    assert not out.exists()


def test_memory_is_bounded_before_any_work(tmp_path, monkeypatch):
    big = tmp_path / "big.fits"
    fits.PrimaryHDU(np.zeros((2048, 2048), np.float32), header(0.03, (2048, 2048))).writeto(big)
    one_line_error(cli("measure", big, "--psf-fwhm", "0.02", tmp_path / "o.csv"),
                   "big.fits", "FFT", str(measure_inputs.MAX_FFT), "smaller stamp")
    # a stamp of ordinary size: its bound is well under a gigabyte, the largest model's FFT in it
    import galsim
    psf = galsim.Moffat(beta=2.0, fwhm=0.7)
    low, high = measure_inputs.radii(psf, 0.23, (64, 64))
    assert high <= 0.5 * 64 * 0.23 and measure_inputs.fft_side(psf, 0.23, (64, 64), 6.0, high) <= 8192
    # a narrow PSF on a large stamp: the box's radii stop where the FFT would pass the limit
    narrow = galsim.Moffat(beta=2.0, fwhm=0.1)
    low, high = measure_inputs.radii(narrow, 0.1, (512, 512))
    assert high < 0.5 * 512 * 0.1
    assert measure_inputs.fft_side(narrow, 0.1, (512, 512), 6.0, high) <= measure_inputs.MAX_FFT
    assert measure_inputs.work_bytes((64, 64), 0.23, psf, high) < 2e9
    cutout = write(tmp_path / "c.fits", np.zeros((41, 41)), SCALE)
    monkeypatch.setattr(resources, "free_memory", lambda: 10_000_000)
    one_line_error(cli("measure", cutout, "--psf-fwhm", "0.7", tmp_path / "o.csv"),
                   "GB of memory", "available")
