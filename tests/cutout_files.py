"""Simulated FITS cutouts and one-line-error checks shared by the cutout, measure and output
tests (``tests/`` is on the path through its conftest)."""
import galsim
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from click.testing import CliRunner

from galaxies.interfaces.cli import main

TRUTH = np.array([1e5, 2.0, 0.35, 0.12, -0.08])


def header(scale: float, shape) -> fits.Header:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-scale / 3600, scale / 3600]
    wcs.wcs.crval = [3.59, -30.4]
    wcs.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    return wcs.to_header()


def simulated(scale: float, size: int, sigma: float, seed: int, fwhm: float = 0.7):
    """A noisy Sérsic galaxy (TRUTH) through a Moffat, on ``size`` pixels of ``scale``, and the
    PSF image (unit sum, pixel included)."""
    galaxy = galsim.Sersic(TRUTH[1], half_light_radius=TRUTH[2], flux=TRUTH[0]).shear(
        g1=TRUTH[3], g2=TRUTH[4])
    psf = galsim.Moffat(beta=2.0, fwhm=fwhm)
    clean = galsim.Convolve(galaxy, psf).drawImage(nx=size, ny=size, scale=scale).array
    noisy = clean + np.random.default_rng(seed).normal(0.0, sigma, clean.shape)
    # as large as the stamp: a Moffat (beta 2) cut at 1" loses a fifth of its light
    psf_image = psf.drawImage(nx=size, ny=size, scale=scale).array
    return noisy, psf_image / psf_image.sum()


def write(path, data, scale=None, **extra):
    hdr = header(scale, data.shape[-2:]) if scale else fits.Header()
    for key, value in extra.items():
        hdr[key] = value
    fits.PrimaryHDU(np.asarray(data, np.float32), hdr).writeto(path)
    return path


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def one_line_error(result, *words):
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(lines) == 1 and lines[0].startswith("galaxies: error:"), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# ------------------------------------------------------------------------ bad input
