"""Reading the FITS cutouts `galaxies.cutouts.measure` measures: images, noise maps and PSFs, with
every problem a person can fix raised as one plain error naming the file and what is allowed.

* `read_cutouts`: the images of one FITS file (``.fits.gz`` too): one 2-D image, or a cube
  whose planes are stamps, from the first HDU that holds an image or from the one named
  (``hdu``, a number or an EXTNAME); the pixel scale from the celestial WCS
  (`astropy.wcs.utils.proj_plane_pixel_scales`) unless given.
* `read_map`: an RMS map of the same shape as the cutouts.
* `read_psf`: a PSF image, normalized to unit sum, and its pixel scale (its WCS, else None).

**The frame of the shear.** A cutout with a celestial WCS has g1, g2 reported on the sky: in
the frame whose x axis points west and y axis north (as on a north-up, east-left image), so
+g1 is an elongation east-west, +g2 one along the north-west / south-east diagonal. The
measurement itself is made on the pixel grid; `wcs_frame` reads the rotation and parity
between the pixel axes and that frame from the WCS (`astropy.wcs`, the celestial
``pixel_scale_matrix``) and `sky_shear` turns the shear by twice the rotation (and flips g2
for a mirrored grid). A north-up, east-left WCS leaves g1, g2 as measured on the pixels; a
WCS with skew (non-perpendicular axes) is refused. Without a celestial WCS (``--pixel-scale``
on a bare image) the shear is on the pixel axes (x along NAXIS1, y along NAXIS2).

Headers are read and checked (dimensions, size) before the data; NaN or infinite pixels,
non-square pixels, a file without image data are refused with a `FileFormatError` or an
`InputError`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from galaxies.runtime.errors import FileFormatError, InputError
from galaxies.runtime.resources import check_memory

__all__ = ["Cutout", "read_cutouts", "read_map", "read_psf", "wcs_pixel_scale", "wcs_frame",
           "sky_shear", "check_scale", "MAX_VALUES", "SCALE_RANGE"]

#: Most values one file may hold (a 4096 x 4096 image): larger headers are refused unread.
MAX_VALUES = 4096 * 4096
#: pixel scales allowed, arcsec (from --pixel-scale or a WCS)
SCALE_RANGE = (1e-3, 10.0)


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
    #: (rotation in radians, mirrored) from the pixel axes to the sky frame (`wcs_frame`);
    #: None: g1, g2 on the pixel axes
    frame: tuple | None = None

    @property
    def name(self) -> str:
        return f"{self.file}[{self.hdu}]" + ("" if self.plane is None else f"[{self.plane}]")


def _open(path, name: str | None = None):
    from astropy.io import fits

    from galaxies.storage.atomic import check_readable
    if isinstance(path, str) or hasattr(path, "__fspath__"):
        check_readable(path, "FITS file")
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
    check_memory(8 * math.prod(shape), f"reading {path}[{index}]", "cut smaller stamps")
    try:
        data = hdus[index].data
    except (ValueError, OSError, EOFError) as err:  # astropy reading fewer bytes than declared
        raise FileFormatError(f"{path}[{index}]: its data cannot be read: the file is shorter "
                              f"than its header declares (truncated?) ({err})") from None
    if data is None:
        raise FileFormatError(f"{path}[{index}]: HDU {index} holds no image data")
    if data.size != math.prod(shape):
        raise FileFormatError(f"{path}[{index}]: the file holds {data.size} of the "
                              f"{math.prod(shape)} values its header declares (truncated?)")
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
    from astropy.wcs.utils import proj_plane_pixel_scales

    celestial = _celestial(header)
    if celestial is None:
        return None
    scales = [(s * u.Unit(unit or "deg")).to_value(u.arcsec) for s, unit in
              zip(proj_plane_pixel_scales(celestial), celestial.wcs.cunit)]
    if not all(np.isfinite(scales)) or min(scales) <= 0:
        return None
    if abs(scales[0] / scales[1] - 1) > 0.01:
        raise InputError(f"{path}: its pixels are not square ({scales[0]:.4g}\" x "
                         f"{scales[1]:.4g}\"); resample it to square pixels first")
    return float(np.mean(scales))


def _celestial(header):
    """The celestial part of the header's WCS, or None (a broken WCS is no WCS)."""
    from astropy.wcs import WCS, FITSFixedWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header)
        except Exception:  # noqa: BLE001 - a broken WCS is no WCS; the caller says so
            return None
    return wcs.celestial if wcs.has_celestial else None


def wcs_frame(header, path) -> tuple | None:
    """The rotation (radians, counter-clockwise) and parity from the pixel axes to the sky
    frame (x west, y north; see the module docstring), or None without a celestial WCS;
    `InputError` for axes that are not perpendicular (skew) within 1%."""
    celestial = _celestial(header)
    if celestial is None:
        return None
    matrix = np.asarray(celestial.pixel_scale_matrix, float)  # world (lng, lat) per pixel
    matrix = matrix[[celestial.wcs.lng, celestial.wcs.lat]] * [[-1.0], [1.0]]  # lng east -> west
    if not np.all(np.isfinite(matrix)):
        return None
    columns = np.linalg.norm(matrix, axis=0)
    if min(columns) <= 0:
        return None
    cosine = float(matrix[:, 0] @ matrix[:, 1] / (columns[0] * columns[1]))
    if abs(cosine) > 0.01:
        raise InputError(f"{path}: its WCS has skew (pixel axes at {math.degrees(math.acos(cosine)):.2f} "
                         f"degrees on the sky); resample it to perpendicular axes first")
    return (math.atan2(matrix[1, 0], matrix[0, 0]), bool(np.linalg.det(matrix) < 0))


def sky_shear(params, std, frame):
    """``params`` and ``std`` (flux, n, r, g1, g2) with g1, g2 turned from the pixel axes to
    the sky frame (`wcs_frame`; None: unchanged). The variances of g1 and g2 are turned as if
    uncorrelated."""
    params, std = np.array(params, float), np.array(std, float)
    if frame is None:
        return params, std
    angle, mirrored = frame
    g = complex(params[3], -params[4] if mirrored else params[4]) * np.exp(2j * angle)
    params[3:5] = g.real, g.imag
    c, s = math.cos(2 * angle) ** 2, math.sin(2 * angle) ** 2
    var1, var2 = std[3] ** 2, std[4] ** 2
    std[3:5] = math.sqrt(c * var1 + s * var2), math.sqrt(s * var1 + c * var2)
    return params, std


def check_scale(value, name: str, hint: str = "") -> float:
    """A pixel scale (arcsec) in `SCALE_RANGE`, else `InputError` naming ``name``."""
    low, high = SCALE_RANGE
    value = float(value)
    if not (math.isfinite(value) and low <= value <= high):
        raise InputError(f"{name} = {value:g} arcsec per pixel is outside [{low:g}, {high:g}]{hint}")
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
        scale = check_scale(pixel_scale, "--pixel-scale")
    else:
        scale = wcs_pixel_scale(header, path)
        if scale is None:
            raise InputError(f"{path}[{index}]: no pixel scale: the header has no celestial WCS; "
                             f"give --pixel-scale ARCSEC")
        scale = check_scale(scale, f"{path}[{index}]: the pixel scale of its WCS",
                            "; are its CD or CDELT values in the unit CUNIT names (degrees by "
                            "default)? Or give --pixel-scale ARCSEC")
    frame = wcs_frame(header, path)
    planes = [(None, data)] if data.ndim == 2 else list(enumerate(data))
    for plane, image in planes:
        if min(image.shape) < 16:
            raise FileFormatError(f"{path}[{index}]: a stamp of {image.shape[0]} x "
                                  f"{image.shape[1]} pixels; at least 16 x 16 is needed")
    return [Cutout(np.ascontiguousarray(image), path, index, plane, scale, header, frame)
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


def read_psf(path, hdu=None, name: str | None = None) -> tuple[np.ndarray, float | None]:
    """A PSF image normalized to unit sum, and its pixel scale from its WCS (None without);
    ``path`` may be a binary file object, named ``name`` in messages."""
    source, path = path, name or str(path)
    with _open(source, path) as hdus:
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
