"""Cutouts a person brings: an uploaded 64 x 64 image (NumPy ``.npy``/``.npz`` or FITS), read
and checked, every problem raised as a `CutoutError` whose message a person can act on.
"""
from __future__ import annotations

import io

import numpy as np

from galaxies.conventions import IMAGE_SIZE, PIXEL_SCALE
from galaxies.runtime.errors import FileFormatError

__all__ = ["CutoutError", "read_cutout", "check_cutout", "cutout_bytes", "MAX_UPLOAD_BYTES",
           "CUTOUT_SUFFIXES", "MAX_PIXELS"]

#: Largest cutout accepted (bytes): a 64 x 64 float64 cutout is 33 kB as .npy, 37 kB as FITS.
MAX_UPLOAD_BYTES = 1 << 20
#: Most values an uploaded array may hold (a stack of a few stamps at most): headers that claim
#: more are refused before anything is allocated.
MAX_PIXELS = 16 * IMAGE_SIZE * IMAGE_SIZE
#: File name endings the upload page accepts.
CUTOUT_SUFFIXES = (".npy", ".npz", ".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")


class CutoutError(FileFormatError):
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


def _too_large(shape, dtype, name: str) -> None:
    """Refuse an array header that claims more than a cutout can be, before any allocation."""
    count = int(np.prod(shape, dtype=np.float64)) if len(shape) else 1
    if np.dtype(dtype).kind not in "iuf":
        raise CutoutError(f"'{name}' holds {np.dtype(dtype)} values; expected real numbers "
                          "(photo-electrons)")
    if count > MAX_PIXELS:
        raise CutoutError(f"'{name}' claims an array of {' x '.join(map(str, shape))} values; "
                          f"expected {_expected()}")


def _npy_from(stream, name: str) -> np.ndarray:
    """An .npy array from a binary stream, its header read and checked first."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        readers = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
        if version not in readers:
            raise ValueError(f"format version {version} is not supported")
        shape, fortran, dtype = readers[version](stream)
    except (ValueError, OSError, EOFError, SyntaxError) as err:
        raise CutoutError(f"'{name}' is not a readable NumPy .npy file ({err}); "
                          f"expected {_expected()}") from None
    _too_large(shape, dtype, name)
    count = int(np.prod(shape)) if len(shape) else 1
    raw = stream.read(count * dtype.itemsize)
    if len(raw) != count * dtype.itemsize:
        raise CutoutError(f"'{name}' is truncated: its header claims {shape} {dtype} values")
    array = np.frombuffer(raw, dtype=dtype)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _read_npy(data: bytes, name: str) -> np.ndarray:
    return _npy_from(io.BytesIO(data), name)


def _read_npz(data: bytes, name: str) -> np.ndarray:
    """The image of an .npz archive (its only array, or the one named img, image or cutout);
    the members' uncompressed sizes are checked before anything is decompressed."""
    import zipfile
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise CutoutError(f"'{name}' is not a readable NumPy .npz file ({err}); "
                          f"expected {_expected()}") from None
    keys = list(members)
    key = keys[0] if len(keys) == 1 else next((k for k in ("img", "image", "cutout") if k in members), None)
    if key is None:
        raise CutoutError(f"'{name}' holds {len(keys)} arrays ({', '.join(keys) or 'none'}); "
                          "keep one, or name the image 'img'")
    info = members[key]
    if info.file_size > MAX_PIXELS * 8 + 4096:
        raise CutoutError(f"'{name}' member '{key}' unpacks to {info.file_size / 1e6:.0f} MB; "
                          f"expected {_expected()}")
    try:
        with archive.open(info) as member:
            return _npy_from(member, f"{name}:{key}")
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise CutoutError(f"'{name}' member '{key}' cannot be read ({err})") from None


def _gunzip(data: bytes, name: str) -> bytes:
    """Decompress gzip bytes, stopping past what a cutout's FITS file can be."""
    import gzip
    limit = MAX_PIXELS * 8 + 2880 * 8
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = stream.read(limit + 1)
    except (OSError, EOFError) as err:
        raise CutoutError(f"'{name}' is not readable gzip data ({err})") from None
    if len(out) > limit:
        raise CutoutError(f"'{name}' unpacks to more than {limit / 1e6:.1f} MB; expected "
                          f"{_expected()}")
    return out


def _read_fits(data: bytes, name: str) -> np.ndarray:
    """The first image HDU of a FITS file (gzip-compressed or not), its header checked before
    its data is read."""
    from astropy.io import fits

    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, name)
    try:
        with fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=True) as hdus:
            for hdu in hdus:
                header = hdu.header
                if not getattr(hdu, "is_image", False) or header.get("NAXIS", 0) < 2:
                    continue
                shape = tuple(int(header.get(f"NAXIS{k}", 0)) for k in range(header["NAXIS"], 0, -1))
                _too_large(shape, np.float64, name)
                if hdu.data is not None:
                    return np.array(hdu.data)
    except CutoutError:
        raise
    except (OSError, ValueError, TypeError, EOFError, KeyError, IndexError) as err:
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


