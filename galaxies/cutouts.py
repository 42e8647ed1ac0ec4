"""Cutouts a person brings: an uploaded 64 x 64 image (NumPy ``.npy``/``.npz`` or FITS), read
and checked, every problem raised as a `CutoutError` whose message a person can act on.
"""
from __future__ import annotations

import io

import numpy as np

from .simulate import IMAGE_SIZE, PIXEL_SCALE

__all__ = ["CutoutError", "read_cutout", "check_cutout", "cutout_bytes", "MAX_UPLOAD_BYTES",
           "CUTOUT_SUFFIXES"]

#: Largest cutout accepted (bytes): a 64 x 64 float64 cutout is 33 kB as .npy, 37 kB as FITS.
MAX_UPLOAD_BYTES = 1 << 20
#: File name endings the upload page accepts.
CUTOUT_SUFFIXES = (".npy", ".npz", ".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")


class CutoutError(ValueError):
    """An uploaded cutout cannot be used; the message says why and what is expected."""


def _expected() -> str:
    return (f"a {IMAGE_SIZE} x {IMAGE_SIZE} image in photo-electrons, as NumPy .npy/.npz or "
            f"FITS")


def _sniff(data: bytes, name: str) -> str:
    lower = name.lower()
    if lower.endswith(".npy"):
        return "npy"
    if lower.endswith(".npz"):
        return "npz"
    if lower.endswith(CUTOUT_SUFFIXES[2:]):
        return "fits"
    if data.startswith(b"\x93NUMPY"):
        return "npy"
    if data.startswith(b"PK\x03\x04"):
        return "npz"
    if data.startswith(b"SIMPLE  =") or data.startswith(b"\x1f\x8b"):
        return "fits"
    shown = f"'{name}'" if name else "the file"
    raise CutoutError(f"{shown} is not an image file we can read: expected {_expected()}")


def _read_npy(data: bytes, name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise CutoutError(f"'{name}' is not a readable NumPy .npy file ({err}); "
                          f"expected {_expected()}") from None


def _read_npz(data: bytes, name: str) -> np.ndarray:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            keys = list(archive.keys())
            if len(keys) == 1:
                return archive[keys[0]]
            for key in ("img", "image", "cutout"):
                if key in keys:
                    return archive[key]
    except (ValueError, OSError, EOFError) as err:
        raise CutoutError(f"'{name}' is not a readable NumPy .npz file ({err}); "
                          f"expected {_expected()}") from None
    raise CutoutError(f"'{name}' holds {len(keys)} arrays ({', '.join(keys) or 'none'}); "
                      "keep one, or name the image 'img'")


def _read_fits(data: bytes, name: str) -> np.ndarray:
    from astropy.io import fits

    try:
        with fits.open(io.BytesIO(data), memmap=False) as hdus:
            for hdu in hdus:
                if getattr(hdu, "is_image", False) and hdu.data is not None and hdu.data.ndim >= 2:
                    return np.array(hdu.data)
    except (OSError, ValueError, TypeError, EOFError) as err:
        raise CutoutError(f"'{name}' is not a readable FITS file ({err}); "
                          f"expected {_expected()}") from None
    raise CutoutError(f"'{name}' is a FITS file without image data (tables only?); "
                      f"expected {_expected()}")


def check_cutout(array) -> np.ndarray:
    """A cutout as a float32 (64, 64) array, or `CutoutError` saying what is wrong.

    Leading axes of length one are dropped, so (1, 64, 64) is accepted.
    """
    array = np.asarray(array)
    if array.dtype.kind not in "iuf":
        raise CutoutError(f"the cutout holds {array.dtype} values; expected real numbers "
                          "(photo-electrons)")
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    expected = (IMAGE_SIZE, IMAGE_SIZE)
    if array.shape != expected:
        raise CutoutError(f"the cutout is {' x '.join(map(str, array.shape)) or 'a scalar'} "
                          f"pixels; expected {IMAGE_SIZE} x {IMAGE_SIZE} (the simulations' size, "
                          f"{PIXEL_SCALE} arcsec pixels)")
    array = array.astype(np.float32)
    nan, inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
    if nan or inf:
        raise CutoutError(f"the cutout has {nan} NaN and {inf} infinite pixel(s); replace them "
                          "(for example by 0 or by a noise draw) before uploading")
    return array


def read_cutout(data: bytes, name: str = "", max_bytes: int = MAX_UPLOAD_BYTES) -> np.ndarray:
    """Read an uploaded cutout: NumPy ``.npy``/``.npz`` or FITS (first image HDU).

    The format comes from the file name, else from the first bytes. Returns a float32
    (64, 64) array; raises `CutoutError` (a ValueError) with a plain message for a file that
    is empty, over ``max_bytes``, not an image, the wrong size, or has NaN/inf pixels.
    """
    size = len(data)
    if size == 0:
        raise CutoutError(f"'{name or 'the file'}' is empty")
    if size > max_bytes:
        raise CutoutError(f"'{name or 'the file'}' is {size / 1e6:.1f} MB; the limit is "
                          f"{max_bytes / 1e6:.1f} MB (a 64 x 64 cutout takes about 40 kB)")
    kind = _sniff(bytes(data[:16]), name)
    reader = {"npy": _read_npy, "npz": _read_npz, "fits": _read_fits}[kind]
    return check_cutout(reader(bytes(data), name or f"the {kind} file"))


def cutout_bytes(image: np.ndarray) -> bytes:
    """A cutout as ``.npy`` bytes (for a download button)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(image, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


