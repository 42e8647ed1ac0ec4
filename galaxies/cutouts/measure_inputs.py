"""What `galaxies measure` is given, checked for meaning before any of the work's memory is
allocated, and the memory that work takes.

A FITS file can be well formed and still mean nothing measurable; each check below names the
value and what is allowed:

* **Numbers** given as options (``--sigma``, ``--gain``, ``--psf-fwhm``, ``--background``) are
  finite (`finite_option`); a header value named by ``--psf-fwhm-key`` is a real number, not a
  string or a boolean (`header_number`).
* **PSF widths** (an option, a header, or the FWHM of a PSF image) lie between `PSF_LOW_PIXELS`
  pixels of the cutout and `PSF_STAMP_FRACTION` of its short side (`check_psf_fwhm`): a unit
  mistake (120" for 1.2", 1e-12) asks for a model of absurd size, not a measurement.
* **A PSF image** peaks, and has its centroid, within `PSF_OFF_CENTRE` pixels of its centre
  (a PSF off its centre shifts the model: the fit ends at the edge of its box and says it
  converged) and its negative pixels hold less than `PSF_NEGATIVE` of its positive light
  (`check_psf_image`).
* **Memory.** The fit draws its model with GalSim by FFT; the FFT side GalSim will choose is
  computed from the profile's ``maxk`` and ``stepk`` before anything is drawn (`fft_side`, as
  ``GSObject.drawFFT_makeKImage`` chooses it). The radii of the fit's box stop where the model
  (at the largest Sérsic index) would need more than `MAX_FFT` (`radii`); a stamp whose
  smallest model already needs more is refused. `work_bytes` is then the most a cutout's
  measurement holds at once: `STAMP_ARRAYS` arrays of the stamp's size (data, noise, mask, the
  model and its derivatives) and the FFT's ``24 Nk^2`` bytes (GalSim's own estimate), checked
  against the memory available (`galaxies.runtime.resources.check_memory`) before the first cutout is
  measured.

The bound on the peak memory of ``galaxies measure``, whatever the input: the imports (a
network's adds TensorFlow), plus 8 bytes for every value of the input files (each at most
`galaxies.cutouts.fits_files.MAX_VALUES`, each file checked against the available memory before its
data are read), plus `work_bytes` of the largest stamp: at most ``40 x 8 x 4096^2`` bytes
(5.4 GB) of stamp arrays and ``24 x 8192^2`` bytes (1.6 GB) of FFT, 7 GB, and far less for
stamps of ordinary size (a 64 x 64 stamp: under 1 GB, the FFT of its largest model included).
"""
from __future__ import annotations

import math
import sys

import numpy as np

from galaxies.runtime.errors import InputError, ParameterRangeError

__all__ = ["MAX_FFT", "PSF_LOW_PIXELS", "PSF_STAMP_FRACTION", "PSF_OFF_CENTRE", "PSF_NEGATIVE",
           "STAMP_ARRAYS", "finite_option", "header_number", "check_psf_fwhm", "check_psf_image",
           "fft_side", "radii", "check_cutout", "work_bytes"]

#: the largest FFT side a model may use (GalSim's default ``maximum_fft_size``: 1.6 GB)
MAX_FFT = 8192
#: the narrowest PSF, FWHM in pixels of the cutout
PSF_LOW_PIXELS = 0.5
#: the widest PSF, FWHM as a fraction of the stamp's short side
PSF_STAMP_FRACTION = 0.25
#: how far (pixels) a PSF image's peak and centroid may be from its centre
PSF_OFF_CENTRE = 2.0
#: the most light a PSF image's negative pixels may hold, as a fraction of its positive light
PSF_NEGATIVE = 0.2
#: arrays of a stamp's size a measurement holds at once, at most
STAMP_ARRAYS = 40


def finite_option(name: str, value, positive: bool = True) -> float | None:
    """``value`` (None passes) as a float that is finite (and > 0 when ``positive``)."""
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value) or (positive and not value > 0):
        raise InputError(f"{name} = {value:g} must be a finite number"
                         + (" > 0" if positive else ""))
    return value


def header_number(header, key: str, where: str) -> float:
    """The header value of ``key`` as a float: a real number (an int or a float, not a
    boolean or a string), finite."""
    if key not in header:
        raise InputError(f"{where}: no header keyword {key!r} (--psf-fwhm-key)")
    value = header[key]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise InputError(f"{where}: header keyword {key!r} = {value!r} is not a number "
                         f"(--psf-fwhm-key needs a FWHM in arcsec)")
    if not math.isfinite(float(value)):
        raise InputError(f"{where}: header keyword {key!r} = {value} is not a finite number")
    return float(value)


def check_psf_fwhm(fwhm: float, pixel_scale: float, shape, where: str) -> float:
    """A PSF FWHM (arcsec) between `PSF_LOW_PIXELS` pixels and `PSF_STAMP_FRACTION` of the
    stamp's short side, else `ParameterRangeError` naming both in arcsec and pixels."""
    fwhm = float(fwhm)
    low = PSF_LOW_PIXELS * pixel_scale
    high = PSF_STAMP_FRACTION * min(shape) * pixel_scale
    if not (math.isfinite(fwhm) and low <= fwhm <= high):
        raise ParameterRangeError(
            f"{where}: PSF FWHM = {fwhm:g}\" ({fwhm / pixel_scale:.3g} pixels of "
            f"{pixel_scale:g}\") is outside [{low:.3g}\", {high:.3g}\"] ({PSF_LOW_PIXELS:g} "
            f"pixels to a quarter of the {shape[0]} x {shape[1]} stamp); is it in arcsec?")
    return fwhm


def check_psf_image(image: np.ndarray, where: str) -> None:
    """Refuse a PSF image off its centre or too negative to be a PSF (module docstring)."""
    image = np.asarray(image, np.float64)
    positive, negative = image[image > 0].sum(), -image[image < 0].sum()
    if not positive > 0 or negative > PSF_NEGATIVE * positive:
        raise InputError(f"{where}: the PSF's negative pixels hold {negative:.3g} against "
                         f"{positive:.3g} positive; a PSF is positive (at most "
                         f"{PSF_NEGATIVE:.0%} negative, e.g. from noise)")
    centre = (np.array(image.shape) - 1) / 2
    peak = np.array(np.unravel_index(int(np.argmax(image)), image.shape), float)
    rows, cols = np.indices(image.shape)
    weight = np.clip(image, 0, None)
    centroid = np.array([(rows * weight).sum(), (cols * weight).sum()]) / weight.sum()
    for name, place in (("peak", peak), ("centroid", centroid)):
        off = float(np.hypot(*(place - centre)))
        if off > PSF_OFF_CENTRE:
            raise InputError(f"{where}: the PSF's {name} is {off:.1f} pixels from the image's "
                             f"centre (x {place[1]:.1f}, y {place[0]:.1f}; centre "
                             f"{centre[1]:.1f}, {centre[0]:.1f}); centre it to within "
                             f"{PSF_OFF_CENTRE:g} pixels")


def _model(psf, sersic_n: float, radius: float):
    import galsim
    return galsim.Convolve(galsim.Sersic(float(sersic_n), half_light_radius=float(radius)), psf)


def fft_side(psf, pixel_scale: float, shape, sersic_n: float, radius: float) -> int:
    """The side of the FFT GalSim uses to draw a Sérsic (``sersic_n``, half-light ``radius``
    arcsec) through ``psf`` on a stamp of ``shape`` pixels of ``pixel_scale`` (with the fit's
    smallest FFT, twice the stamp's side), computed without drawing."""
    import galsim
    profile = _model(psf, sersic_n, radius)
    side = max(int(profile.getGoodImageSize(pixel_scale)), max(shape), 2 * max(shape), 128)
    side = galsim.Image.good_fft_size(side)
    dk = 2 * math.pi / (side * pixel_scale)
    return side if side * dk / 2 > profile.maxk else 2 * math.ceil(profile.maxk / dk)


def radii(psf, pixel_scale: float, shape, where: str = "the cutout") -> tuple[float, float]:
    """The fit's range of half-light radii (arcsec) on a stamp: from half a pixel to half its
    short side (the simulated range at least), the top lowered until the largest index's model
    needs an FFT of at most `MAX_FFT`; `InputError` when even the smallest model needs more."""
    from galaxies.inference.likelihood import BOUNDS
    low = min(0.5 * pixel_scale, BOUNDS[1, 0])
    high = max(0.5 * min(shape) * pixel_scale, BOUNDS[1, 1])
    sersic_n = BOUNDS[0, 1]
    side = fft_side(psf, pixel_scale, shape, sersic_n, low)
    if side > MAX_FFT:
        raise InputError(f"{where}: a {shape[0]} x {shape[1]} stamp of {pixel_scale:g}\" pixels "
                         f"with this PSF needs a {side} x {side} FFT to model (the limit is "
                         f"{MAX_FFT}, {24 * MAX_FFT**2 / 1e9:.1f} GB): cut a smaller stamp")
    while high > low:
        side = fft_side(psf, pixel_scale, shape, sersic_n, high)
        if side <= MAX_FFT:
            break
        high = max(low, high * min(0.9, MAX_FFT / side))
    return low, high


def check_cutout(cutout, psf_path, psf_image, psf_scale, psf_fwhm, psf_fwhm_key):
    """One cutout's PSF checked against it before anything is measured: a PSF image no larger
    than the cutout, at its pixel scale, centred and positive (`check_psf_image`); or a FWHM
    (``psf_fwhm``, or the header's ``psf_fwhm_key``) in range. Returns the FWHM (arcsec; None
    with a PSF image) and the memory its measurement will take (`work_bytes`)."""
    import galsim

    from galaxies.conventions import MOFFAT_BETA

    from .resampling import psf_profile
    shape, scale, fwhm = cutout.image.shape, cutout.pixel_scale, psf_fwhm
    if psf_image is not None:
        if any(p > c for p, c in zip(psf_image.shape, shape)):
            raise InputError(f"{psf_path}: the PSF is {psf_image.shape[0]} x {psf_image.shape[1]} "
                             f"pixels, larger than the cutout {cutout.name} "
                             f"({shape[0]} x {shape[1]}); crop the PSF")
        if psf_scale and abs(psf_scale / scale - 1) > 0.01:
            raise InputError(f"{psf_path}: PSF pixels of {psf_scale:.4g}\", the cutout "
                             f"{cutout.name} has {scale:.4g}\"; give the PSF at the cutout's scale")
        check_psf_image(psf_image, str(psf_path))
        from .psf_wings import check_wings
        check_wings(psf_image, str(psf_path), stream=sys.stderr)  # a PSF cut inside its wings
        check_psf_fwhm(galsim.Image(psf_image, scale=psf_scale or scale).calculateFWHM(), scale,
                       shape, f"{psf_path}: its PSF image, on {cutout.name}")
        profile = psf_profile(psf_image, psf_scale or scale)
    else:
        if psf_fwhm_key:
            fwhm = header_number(cutout.header, psf_fwhm_key, cutout.name)
        fwhm = check_psf_fwhm(fwhm, scale, shape, cutout.name)
        profile = galsim.Moffat(beta=MOFFAT_BETA, fwhm=fwhm)
    return fwhm, work_bytes(shape, scale, profile, radii(profile, scale, shape, cutout.name)[1])


def work_bytes(shape, pixel_scale: float, psf, radius: float, sersic_n: float = 6.0) -> int:
    """The most memory (bytes) one cutout's measurement holds at once (module docstring): its
    stamp arrays and the FFT of its largest model (at ``radius``, the top of `radii`)."""
    side = max(fft_side(psf, pixel_scale, shape, sersic_n, radius),
               fft_side(psf, pixel_scale, shape, sersic_n, 0.5 * pixel_scale))
    return int(STAMP_ARRAYS * 8 * math.prod(shape) + 24 * side**2)
