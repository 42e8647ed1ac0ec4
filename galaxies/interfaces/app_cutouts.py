"""The "Your image" page's logic: a person's FITS cutout measured as `galaxies measure` would,
with a PSF image or a Moffat, and the repository's own real HST cutouts as examples."""
from __future__ import annotations

from pathlib import Path

from galaxies.runtime.errors import InputError

from .app_support import renderer_lock

__all__ = ["measure_fits_upload", "REAL_CUTOUTS", "real_cutout_examples"]

#: The real HST cutouts the repository ships (tests/data/hst, with their README's attribution),
#: found beside the package (not under ``GALAXIES_ROOT``, which moves only data and results).
REAL_CUTOUTS = Path(__file__).resolve().parents[2] / "tests" / "data" / "hst"


def real_cutout_examples(folder: Path = REAL_CUTOUTS) -> dict[str, tuple[Path, Path | None]]:
    """``{name: (cutout, PSF image or None)}`` for each real cutout in ``folder`` (its
    ``*_rms`` maps and PSF left out as examples; the PSF is the one whose name ends in
    ``_psf``)."""
    found = sorted(folder.glob("*.fits*"))
    psf = next((p for p in found if p.name.split(".")[0].endswith("_psf")), None)
    return {p.name.split(".")[0]: (p, psf) for p in found
            if not p.name.split(".")[0].endswith(("_psf", "_rms"))}


def measure_fits_upload(data: bytes, name: str, pixel_scale: float | None, psf_fwhm: float,
                        sigma: float | None, fit: bool = False, psf: tuple | None = None):
    """A FITS cutout of any pixel scale and size as `galaxies.cutouts.measure` sees it (the
    `galaxies.cutouts.measure.Measurement` of its first stamp): the resampled 64 x 64 stamp at 0.23",
    the noise there, the flags, and with ``fit`` the fit at its own pixels with its model.
    ``pixel_scale`` is used when the header has no WCS; ``sigma`` None: from the border; ``psf``
    ``(bytes, name)`` of a PSF image (FITS, unit sum after reading), else the Moffat of
    ``psf_fwhm``. Holds `renderer_lock` (the fit draws with GalSim). Raises the readers'
    one-line errors."""
    import io

    from galaxies.cutouts import measure, uploads
    from galaxies.cutouts.fits_files import read_cutouts, read_psf
    if data[:2] == b"\x1f\x8b":
        data = uploads._gunzip(data, name)
    try:
        first = read_cutouts(io.BytesIO(data), name=name)[0]
    except InputError as err:
        if "no pixel scale" not in str(err) or pixel_scale is None:
            raise
        first = read_cutouts(io.BytesIO(data), pixel_scale=pixel_scale, name=name)[0]
    with renderer_lock:
        if psf is None:
            return measure.measure_cutout(first, "fit" if fit else None, psf_fwhm=psf_fwhm,
                                          sigma=sigma)
        psf_data, psf_name = psf
        if psf_data[:2] == b"\x1f\x8b":
            psf_data = uploads._gunzip(psf_data, psf_name)
        image, scale = read_psf(io.BytesIO(psf_data), name=psf_name)
        return measure.measure_cutout(first, "fit" if fit else None, psf_image=image,
                                      psf_scale=scale, sigma=sigma)
