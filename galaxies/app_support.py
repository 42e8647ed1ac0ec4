"""The logic behind the Streamlit explorer (``EDA/app``), kept here so it is tested without a
browser and can be reused from notebooks.

* `GalaxyParameters`: the simulator's sliders as one validated value, with both shape
  conventions (reduced shear ``g1, g2`` and axis ratio ``q`` with position angle ``beta``).
* `render`: the simulated images of those parameters (thread-safe: Streamlit serves each
  browser session from its own thread, while `galaxies.simulate.GalaxyRenderer` is not).
* `read_cutout`: an uploaded 64 x 64 cutout (NumPy ``.npy``/``.npz`` or FITS) read and checked,
  every problem raised as a `CutoutError` whose message a person can act on.
* `require`: the parts of the project that may not exist yet (the Cramér–Rao bound, trained
  models, the maximum-likelihood fit), imported with a plain `Unavailable` message instead of
  a traceback when they are absent.
* Listing data sets, saved models and predictions of a profile, filtering a data set's rows,
  and the tables the pages show.
"""
from __future__ import annotations

import importlib
import io
import math
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import profiles
from .simulate import (IMAGE_SIZE, LABEL_COLUMNS, RANGES, SNR_RANGE, Galaxy, check_parameters,
                       ellipticity_to_shear, shear_to_ellipticity, simulate)

__all__ = [
    "GalaxyParameters", "render", "snr_verdict", "CutoutError", "read_cutout", "check_cutout",
    "MAX_UPLOAD_BYTES", "CUTOUT_SUFFIXES", "cutout_bytes", "Unavailable", "require",
    "default_profile", "list_datasets", "list_saved_models", "list_prediction_files",
    "filter_rows", "bounds_table", "bounds_versus_snr", "visibility", "renderer_lock",
    "estimates_table", "approximate_snr", "predict_one", "psf_image", "maximum_likelihood",
]

#: Largest cutout accepted (bytes): a 64 x 64 float64 cutout is 33 kB as .npy, 37 kB as FITS.
MAX_UPLOAD_BYTES = 1 << 20
#: File name endings the upload page accepts.
CUTOUT_SUFFIXES = (".npy", ".npz", ".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")


# ------------------------------------------------------------------------- parameters

@dataclass(frozen=True)
class GalaxyParameters:
    """Everything the simulator needs for one image.

    Units: ``flux`` photo-electrons, ``sersic_r`` arcsec (half-light radius), ``psf_fwhm``
    arcsec (Moffat, beta = 2), ``sigma`` photo-electrons per pixel (Gaussian read noise),
    ``seed`` a positive integer fixing the noise realization.
    """

    flux: float = 1e5
    sersic_n: float = 3.0
    sersic_r: float = 0.3
    g1: float = -0.069
    g2: float = 0.15
    psf_fwhm: float = 0.5
    sigma: float = 200.0
    seed: int = 1

    @classmethod
    def from_ellipticity(cls, q: float, beta_deg: float, **others) -> "GalaxyParameters":
        """Parameters with the shape given as axis ratio ``q`` in (0, 1] and position angle
        ``beta_deg`` (degrees, of the major axis) instead of ``g1, g2``."""
        g1, g2 = ellipticity_to_shear(q, math.radians(beta_deg))
        return cls(g1=float(g1), g2=float(g2), **others)

    def check(self) -> "GalaxyParameters":
        """Raise `galaxies.simulate.ParameterRangeError` naming the first value out of range."""
        check_parameters(self.flux, self.sersic_n, self.sersic_r, self.g1, self.g2,
                         self.psf_fwhm, self.sigma)
        if int(self.seed) != self.seed or self.seed < 1:
            raise ValueError(f"seed = {self.seed} must be a positive integer")
        return self

    @property
    def labels(self) -> np.ndarray:
        """The five labels in the order of `LABEL_COLUMNS` (float64)."""
        return np.array([self.flux, self.sersic_n, self.sersic_r, self.g1, self.g2])

    @property
    def q(self) -> float:
        """Axis ratio ``(1 - |g|) / (1 + |g|)``."""
        return float(shear_to_ellipticity(self.g1, self.g2)[0])

    @property
    def beta_deg(self) -> float:
        """Position angle of the major axis in degrees, in [0, 180)."""
        return float(np.degrees(shear_to_ellipticity(self.g1, self.g2)[1]))

    def replace(self, **changes) -> "GalaxyParameters":
        return GalaxyParameters(**{**asdict(self), **changes})

    def as_dict(self) -> dict:
        return asdict(self)


#: Held while drawing with the process-wide renderer (Streamlit serves sessions from threads).
renderer_lock = threading.RLock()


def render(params: GalaxyParameters) -> Galaxy:
    """Noiseless, noisy and PSF images and the SNR of ``params`` (checked first).

    Uses the process-wide `GalaxyRenderer`, so a Sérsic index seen before costs a few ms and a
    new one tens of ms (GalSim's Hankel table). Safe to call from several threads.
    """
    params.check()
    with renderer_lock:
        return simulate(params.flux, params.sersic_n, params.sersic_r, params.g1, params.g2,
                        psf_fwhm=params.psf_fwhm, sigma=params.sigma, seed=int(params.seed))


def snr_verdict(snr: float) -> tuple[bool, str]:
    """Whether the seed's SNR cut keeps an image of this SNR, and a sentence saying so."""
    low, high = SNR_RANGE.low, SNR_RANGE.high
    if not math.isfinite(snr):
        return False, f"SNR is {snr}: not a usable image"
    if snr < low:
        return False, f"SNR {snr:.1f} < {low:g}: the training sets reject it (too faint)"
    if snr > high:
        return False, f"SNR {snr:.1f} > {high:g}: the training sets reject it (too bright)"
    return True, f"SNR {snr:.1f} is inside [{low:g}, {high:g}]: the training sets keep it"


def approximate_snr(image: np.ndarray, sigma: float) -> float:
    """SNR of a noisy image without its noiseless version: ``sqrt(max(0, sum(img**2) -
    npix * sigma**2)) / sigma``, which removes the read noise's expected contribution
    (the Poisson part is ignored, so faint galaxies come out close to the truth)."""
    image = np.asarray(image, dtype=np.float64)
    power = float(np.sum(image**2)) - image.size * float(sigma) ** 2
    return math.sqrt(max(power, 0.0)) / float(sigma)


# ---------------------------------------------------------------------------- cutouts

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
    if lower.endswith((".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")):
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
                          f"0.23 arcsec pixels)")
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


# -------------------------------------------------------------- parts that may be missing

class Unavailable(RuntimeError):
    """A part of the project a page needs (a module, a trained model, a file) is absent."""


#: What each optional module provides, for the messages.
OPTIONAL_MODULES = {
    "galaxies.crb": "the Cramér–Rao bound",
    "galaxies.train": "trained models",
    "galaxies.baseline": "the maximum-likelihood fit",
}


def require(module: str):
    """Import an optional module of the project, or raise `Unavailable` saying what is missing.

    A module of the package that does not exist yet and a third-party package that is not
    installed (TensorFlow on a light deployment) both give a one-line reason.
    """
    what = OPTIONAL_MODULES.get(module, module)
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = getattr(err, "name", None) or ""
        if missing == module or (missing and module.startswith(missing + ".")) or not missing:
            raise Unavailable(f"{what} is not available yet: the module `{module}` is not part "
                              "of this installation") from None
        if missing.split(".")[0] == "galaxies":
            raise Unavailable(f"{what} is not available yet: `{module}` needs `{missing}`, "
                              "which is not part of this installation") from None
        raise Unavailable(f"{what} is not available here: `{module}` needs the package "
                          f"`{missing.split('.')[0]}`, which is not installed") from None


def default_profile() -> str:
    """``$GALAXIES_PROFILE``, else the first of quick, full, smoke that has data, else quick."""
    name = os.environ.get("GALAXIES_PROFILE")
    if name in profiles.PROFILES:
        return name
    for candidate in ("quick", "full", "smoke"):
        if list_datasets(candidate):
            return candidate
    return profiles.DEFAULT_PROFILE


def list_datasets(profile) -> list[Path]:
    """The data-set files of a profile (``data/<profile>/<name>.h5``): the project's recipes in
    their order (training sets first), then any others by name. Files derived from a set
    (``<name>.<what>.h5``, e.g. the CRB cache) and unfinished ones (``.tmp-*``) are left out."""
    from .generate import RECIPES

    order = {name: k for k, name in enumerate(RECIPES)}
    folder = profiles.get(profile).data_dir
    files = [p for p in folder.glob("*.h5") if "." not in p.stem and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (order.get(p.stem, len(order)), p.name))


def list_saved_models(profile) -> list[Path]:
    """Model folders ``models/<profile>/<estimator>_<dataset>/`` holding a ``.keras`` file."""
    folder = profiles.get(profile).models_dir
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and any(p.glob("*.keras")))


def list_prediction_files(profile):
    """The predictions of a profile as `galaxies.evaluate.list_predictions`'s table (empty
    when there are none)."""
    from .evaluate import list_predictions
    return list_predictions(profiles.get(profile).predictions_dir)


def no_model_message(profile) -> str:
    name = profiles.get(profile).name
    return (f"No model has been trained yet for profile {name}: run `make run PROFILE={name}` "
            f"(models are saved under models/{name}/).")


# ------------------------------------------------------------------------------ tables

def filter_rows(frame, ranges: dict) -> np.ndarray:
    """Row positions of ``frame`` whose columns lie inside ``ranges`` ({column: (low, high)},
    both ends included)."""
    keep = np.ones(len(frame), dtype=bool)
    for column, (low, high) in ranges.items():
        if column not in frame:
            raise KeyError(f"no column {column!r}; choose from {', '.join(frame.columns)}")
        values = frame[column].to_numpy()
        keep &= (values >= low) & (values <= high)
    return np.flatnonzero(keep)


def bounds_table(params: GalaxyParameters, crb_module=None):
    """The Cramér–Rao bound of each parameter at ``params`` (a DataFrame by parameter: value,
    bound, bound relative to the value and to the parameter's range)."""
    import pandas as pd

    crb = crb_module or require("galaxies.crb")
    params.check()
    with renderer_lock:
        bound = np.asarray(crb.cramer_rao_bound(params.flux, params.sersic_n, params.sersic_r,
                                                params.g1, params.g2, psf_fwhm=params.psf_fwhm,
                                                sigma=params.sigma), dtype=float)
    if bound.shape != (5,):
        raise ValueError(f"cramer_rao_bound returned shape {bound.shape}, expected (5,)")
    width = np.array([RANGES["flux"].high - RANGES["flux"].low,
                      RANGES["sersic_n"].high - RANGES["sersic_n"].low,
                      RANGES["sersic_r"].high - RANGES["sersic_r"].low,
                      2 * RANGES["shear"].high, 2 * RANGES["shear"].high])
    value = params.labels
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(value != 0, bound / np.abs(value), np.nan)
    return pd.DataFrame({"value": value, "bound (1 sigma)": bound,
                         "bound / |value|": relative, "bound / range": bound / width},
                        index=pd.Index(LABEL_COLUMNS, name="parameter"))


def bounds_versus_snr(params: GalaxyParameters, snr=None, crb_module=None):
    """The Cramér–Rao bounds of the galaxy of ``params`` as its SNR changes through the read
    noise (the galaxy fixed, ``sigma = ||clean|| / snr``), as between the snr60 and snr30 sets.

    Returns `galaxies.crb.crb_vs_snr`'s DataFrame: columns ``snr``, ``sigma`` and the bound of
    each label (default SNR: 40 values from 10 to 100).
    """
    crb = crb_module or require("galaxies.crb")
    params.check()
    with renderer_lock:
        return crb.crb_vs_snr(params.flux, params.sersic_n, params.sersic_r, params.g1,
                              params.g2, psf_fwhm=params.psf_fwhm, snr=snr)


def visibility(params: GalaxyParameters, fraction: float = 0.1):
    """`galaxies.eda.sensitivity` of the galaxy of ``params`` (thread-safe)."""
    from .eda import sensitivity

    params.check()
    with renderer_lock:
        return sensitivity(params.labels, params.psf_fwhm, params.sigma, fraction)


def psf_image(psf_fwhm: float) -> np.ndarray:
    """The PSF image (64 x 64, unit flux) of a Moffat of FWHM ``psf_fwhm`` arcsec."""
    from .simulate import default_renderer

    with renderer_lock:
        return default_renderer().draw_psf(float(psf_fwhm))


def predict_one(model, image: np.ndarray, psf_fwhm: float, sigma: float):
    """A saved model's estimate ``(values (5,), std (5,) or None)`` for one image, giving it
    the PSF image too when it was trained with one."""
    extra = {}
    config = getattr(model, "config", None)
    if getattr(config, "psf_channel", False):
        extra["psf_img"] = psf_image(psf_fwhm)[None]
    pred, std = model.predict(np.asarray(image, dtype=np.float32)[None], psf_fwhm=psf_fwhm,
                              sigma=sigma, **extra)
    return np.asarray(pred, dtype=float)[0], None if std is None else np.asarray(std, float)[0]


def maximum_likelihood(image: np.ndarray, psf_fwhm: float, sigma: float):
    """`galaxies.baseline.fit_image` of one image: ``(params (5,), converged, seconds)``.

    Holds `renderer_lock`, since the fit draws with the process-wide renderer."""
    baseline = require("galaxies.baseline")
    with renderer_lock:
        result = baseline.fit_image(np.asarray(image, dtype=np.float32), float(psf_fwhm),
                                    float(sigma))
    return np.asarray(result.params, dtype=float), bool(result.converged), float(result.seconds)


def estimates_table(truth, estimates: dict):
    """Truth next to each estimator's estimate (and its standard deviation when given).

    ``estimates`` maps a name to ``(values (5,), std (5,) or None)``; ``truth`` may be None
    (an uploaded image).
    """
    import pandas as pd

    table = pd.DataFrame(index=pd.Index(LABEL_COLUMNS, name="parameter"))
    if truth is not None:
        table["truth"] = np.asarray(truth, dtype=float)
    for name, (values, std) in estimates.items():
        table[name] = np.asarray(values, dtype=float).reshape(5)
        if std is not None:
            table[f"{name} ± 1 sigma"] = np.asarray(std, dtype=float).reshape(5)
        if truth is not None:
            table[f"{name} - truth"] = table[name] - table["truth"]
    return table
