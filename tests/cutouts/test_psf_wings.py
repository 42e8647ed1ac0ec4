"""The light a PSF image leaves out, against GalSim's Moffat, and the warning."""
import galsim
import numpy as np
import pytest

from galaxies.cutouts import psf_wings
from galaxies.runtime.errors import InputError


def _moffat(beta, fwhm, n, scale):
    """A Moffat sampled on n x n pixels (no FFT: no light folded back in), and the share of
    its light outside them, from a stamp 9 times wider plus the analytic tail beyond it."""
    moffat = galsim.Moffat(beta=beta, fwhm=fwhm)
    small = moffat.drawImage(nx=n, ny=n, scale=scale, method="no_pixel").array
    big = moffat.drawImage(nx=9 * n, ny=9 * n, scale=scale, method="no_pixel").array
    tail = (1 + (4.5 * n * scale / moffat.scale_radius) ** 2) ** (1 - beta)
    return small / small.sum(), 1 - small.sum() / (big.sum() / (1 - tail))


@pytest.mark.parametrize("beta, fwhm, n, scale", [(2.0, 0.5, 41, 0.1), (2.0, 0.5, 121, 0.1),
                                                  (2.0, 0.8, 64, 0.23), (3.0, 0.5, 41, 0.1)])
def test_missing_light_is_the_moffats(beta, fwhm, n, scale):
    image, truth = _moffat(beta, fwhm, n, scale)
    assert psf_wings.missing_light(image) == pytest.approx(truth, rel=0.25)


def test_a_cut_moffat_warns_and_a_large_one_does_not():
    cut, truth = _moffat(2.0, 0.5, 41, 0.1)  # 4.1": about 3% of the light left out
    assert truth > 0.02
    with pytest.warns(psf_wings.TruncatedPSFWarning, match="psf.fits.*41 x 41.*3.[0-9]%"):
        psf_wings.check_wings(cut, "psf.fits")
    wide, _ = _moffat(3.0, 0.5, 64, 0.1)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert psf_wings.check_wings(wide, "wide.fits") < psf_wings.WARN_FRACTION


def test_bad_images_are_one_line_errors():
    with pytest.raises(InputError, match="2-D"):
        psf_wings.missing_light(np.ones(10))
    with pytest.raises(InputError, match="finite"):
        psf_wings.missing_light(np.full((11, 11), np.nan))


def test_the_command_lines_warning_is_one_line():
    import io
    cut, _ = _moffat(2.0, 0.5, 41, 0.1)
    stream = io.StringIO()
    psf_wings.check_wings(cut, "psf.fits", stream=stream)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("galaxies: warning: psf.fits: the PSF image")
