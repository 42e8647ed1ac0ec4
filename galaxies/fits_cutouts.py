"""Reading the FITS cutouts `galaxies.measure` measures: images, noise maps and PSFs, with
every problem a person can fix raised as one plain error naming the file and what is allowed.

* `read_cutouts`: the images of one FITS file (``.fits.gz`` too): one 2-D image, or a cube
  whose planes are stamps, from the first HDU that holds an image or from the one named
  (``hdu``, a number or an EXTNAME); the pixel scale from the celestial WCS
  (`astropy.wcs.utils.proj_plane_pixel_scales`) unless given.
* `read_map`: an RMS map of the same shape as the cutouts.
* `read_psf`: a PSF image, normalized to unit sum, and its pixel scale (its WCS, else None).

Headers are read and checked (dimensions, size) before the data; NaN or infinite pixels,
non-square pixels, a file without image data are refused with a `FileFormatError` or an
`InputError`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .errors import FileFormatError, InputError

__all__ = ["Cutout", "read_cutouts", "read_map", "read_psf", "wcs_pixel_scale", "MAX_VALUES"]

#: Most values one file may hold (a 4096 x 4096 image): larger headers are refused unread.
MAX_VALUES = 4096 * 4096


@dataclass
class Cutout:
    """One stamp: ``image`` (ny, nx) float64 in the file's counts, where it came from (``file``,
    ``hdu`` index, ``plane`` of a cube or None), ``pixel_scale`` arcsec and its ``header``."""

    image: np.ndarray
    file: str
    hdu: int
    plane: int | None
    pixel_scale: float
    header: object = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.file}[{self.hdu}]" + ("" if self.plane is None else f"[{self.plane}]")


def _open(path, name: str | None = None):
    from astropy.io import fits
    try:
        return fits.open(path, memmap=False, lazy_load_hdus=False)
    except (OSError, ValueError, TypeError, EOFError) as err:
        if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        name = name or (path if isinstance(path, str) or hasattr(path, "__fspath__") else "the file")
        if isinstance(err, OSError) and err.strerror:  # a loop of links, a device that fails
            raise InputError(f"{name}: cannot be read ({err.strerror.lower()})") from None
        raise FileFormatError(f"{name}: not a readable FITS file ({err})") from None


def _image_hdus(hdus) -> list[int]:
    return [k for k, h in enumerate(hdus) if getattr(h, "is_image", False)
            and h.header.get("NAXIS", 0) >= 2]


def _select(hdus, path, hdu):
    """The index of the HDU to read: ``hdu`` (index or EXTNAME) or the first with an image."""
    with_images = _image_hdus(hdus)
    listing = ", ".join(f"{k} ({hdus[k].name or 'PRIMARY'})" for k in with_images) or "none"
    if hdu is None:
        if not with_images:
            raise FileFormatError(f"{path}: no HDU holds image data (HDUs with images: none); "
                                  f"expected a 2-D image or a cube of stamps")
        return with_images[0]
    try:
        index = int(hdu)
    except (TypeError, ValueError):
        names = [h.name.upper() for h in hdus]
        if str(hdu).upper() not in names:
            raise InputError(f"{path}: no HDU named {hdu!r}; HDUs with images: {listing}") from None
        index = names.index(str(hdu).upper())
    if not 0 <= index < len(hdus):
        raise InputError(f"{path}: --hdu {hdu} is out of range: the file has {len(hdus)} "
                         f"HDU(s); HDUs with images: {listing}")
    if index not in with_images:
        raise FileFormatError(f"{path}: HDU {index} holds no image data (NAXIS = "
                              f"{hdus[index].header.get('NAXIS', 0)}); HDUs with images: {listing}")
    return index


def _data(hdus, index, path, what: str) -> np.ndarray:
    """The HDU's data as float64 (2-D or 3-D), its header's shape checked first."""
    header = hdus[index].header
    naxis = int(header.get("NAXIS", 0))
    shape = tuple(int(header.get(f"NAXIS{k}", 0)) for k in range(naxis, 0, -1))
    # degenerate axes (NAXIS3 = 1) are dropped
    shape = tuple(n for n in shape if n != 1) if len(shape) > 2 else shape
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise FileFormatError(f"{path}[{index}]: the {what} is {' x '.join(map(str, shape))} "
                              f"pixels; expected a 2-D image or a cube of 2-D stamps")
    if math.prod(shape) > MAX_VALUES:
        raise FileFormatError(f"{path}[{index}]: the {what} has {math.prod(shape)} values; the "
                              f"limit is {MAX_VALUES} (cut a smaller stamp)")
    data = hdus[index].data
    if data is None:
        raise FileFormatError(f"{path}[{index}]: HDU {index} holds no image data")
    data = np.asarray(data, dtype=np.float64).reshape(shape)
    bad = ~np.isfinite(data)
    if bad.any():
        raise FileFormatError(f"{path}[{index}]: the {what} has {int(np.isnan(data).sum())} NaN and "
                              f"{int(np.isinf(data).sum())} infinite pixel(s); measure needs "
                              f"finite pixels (replace them, e.g. by the background)")
    return data


def wcs_pixel_scale(header, path) -> float | None:
    """The pixel scale (arcsec) of the celestial WCS of ``header``, or None without one;
    `InputError` for pixels that are not square (within 1%)."""
    import astropy.units as u
    from astropy.wcs import WCS, FITSFixedWarning
    from astropy.wcs.utils import proj_plane_pixel_scales

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header)
        except Exception:  # noqa: BLE001 - a broken WCS is no WCS; the caller says so
            return None
    if not wcs.has_celestial:
        return None
    celestial = wcs.celestial
    scales = [(s * u.Unit(unit or "deg")).to_value(u.arcsec) for s, unit in
              zip(proj_plane_pixel_scales(celestial), celestial.wcs.cunit)]
    if not all(np.isfinite(scales)) or min(scales) <= 0:
        return None
    if abs(scales[0] / scales[1] - 1) > 0.01:
        raise InputError(f"{path}: its pixels are not square ({scales[0]:.4g}\" x "
                         f"{scales[1]:.4g}\"); resample it to square pixels first")
    return float(np.mean(scales))


def _check_scale(value, name: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and 1e-3 <= value <= 10):
        raise InputError(f"{name} = {value:g} arcsec per pixel is outside [0.001, 10]")
    return value


def read_cutouts(path, hdu=None, pixel_scale: float | None = None,
                 name: str | None = None) -> list[Cutout]:
    """The stamps of FITS file ``path`` (or a binary file object, named ``name`` in messages;
    see the module docstring); ``pixel_scale`` (arcsec) overrides the WCS, and is needed when
    the header has none."""
    source, path = path, name or str(path)
    with _open(source, path) as hdus:
        index = _select(hdus, path, hdu)
        data = _data(hdus, index, path, "image")
        header = hdus[index].header.copy()
    if pixel_scale is not None:
        scale = _check_scale(pixel_scale, "--pixel-scale")
    else:
        scale = wcs_pixel_scale(header, path)
        if scale is None:
            raise InputError(f"{path}[{index}]: no pixel scale: the header has no celestial WCS; "
                             f"give --pixel-scale ARCSEC")
    planes = [(None, data)] if data.ndim == 2 else list(enumerate(data))
    for plane, image in planes:
        if min(image.shape) < 16:
            raise FileFormatError(f"{path}[{index}]: a stamp of {image.shape[0]} x "
                                  f"{image.shape[1]} pixels; at least 16 x 16 is needed")
    return [Cutout(np.ascontiguousarray(image), path, index, plane, scale, header)
            for plane, image in planes]


def read_map(path, shape, hdu=None, what: str = "RMS map") -> np.ndarray:
    """An RMS map (float64) that must have ``shape`` (one stamp's, or a cube's); every value
    finite and positive."""
    path = str(path)
    with _open(path) as hdus:
        index = _select(hdus, path, hdu)
        data = _data(hdus, index, path, what)
    if data.shape[-2:] != tuple(shape[-2:]) or (data.ndim == 3 and data.shape != tuple(shape)):
        raise FileFormatError(f"{path}: the {what} is {' x '.join(map(str, data.shape))} pixels; "
                              f"expected the cutout's {' x '.join(map(str, shape))}")
    if np.any(data <= 0):
        raise FileFormatError(f"{path}: the {what} has {int(np.sum(data <= 0))} pixel(s) <= 0; "
                              f"every noise level must be positive")
    return data


def read_psf(path, hdu=None) -> tuple[np.ndarray, float | None]:
    """A PSF image normalized to unit sum, and its pixel scale from its WCS (None without)."""
    path = str(path)
    with _open(path) as hdus:
        index = _select(hdus, path, hdu)
        data = _data(hdus, index, path, "PSF")
        header = hdus[index].header.copy()
    if data.ndim != 2:
        raise FileFormatError(f"{path}: the PSF is a cube ({' x '.join(map(str, data.shape))}); "
                              f"expected one 2-D image")
    total = float(data.sum())
    if not total > 0 or data.max() <= 0:
        raise FileFormatError(f"{path}: the PSF sums to {total:g}; expected a positive image")
    return data / total, wcs_pixel_scale(header, path)
