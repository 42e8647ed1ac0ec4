"""The logic behind the Streamlit explorer (``EDA/app``), kept here so it is tested without a
browser and can be reused from notebooks.

* `GalaxyParameters`: the simulator's sliders as one validated value, with both shape
  conventions (reduced shear ``g1, g2`` and axis ratio ``q`` with position angle ``beta``).
* `render`: the simulated images of those parameters (thread-safe: Streamlit serves each
  browser session from its own thread, while `galaxies.simulation.render.GalaxyRenderer` is not).
* `load_estimator`: a trained model through `galaxies.evaluation.estimators`, or a plain `Unavailable`
  message where Keras is not installed (uploaded cutouts are read by `galaxies.cutouts.uploads`).
* Listing data sets, saved models and predictions of a profile, filtering a data set's rows,
  and the tables the pages show.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from galaxies.conventions import (LABEL_COLUMNS, LABEL_WIDTHS, SNR_RANGE, check_parameters,
                                  ellipticity_to_shear, shear_to_ellipticity)
from galaxies.runtime import profiles
from galaxies.runtime.errors import InputError
from galaxies.simulation.render import Galaxy, simulate

__all__ = [
    "GalaxyParameters", "render", "snr_verdict", "Unavailable", "load_estimator",
    "default_profile", "list_datasets", "list_saved_models", "list_prediction_files",
    "outside_training",
    "filter_rows", "bounds_table", "bounds_versus_snr", "visibility", "renderer_lock",
    "estimates_table", "approximate_snr", "predict_one", "psf_image", "maximum_likelihood",
    "recommended_index", "default_prediction", "one_galaxy", "number",
]



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
        """Raise `galaxies.runtime.errors.ParameterRangeError` naming the first value out of range."""
        check_parameters(self.flux, self.sersic_n, self.sersic_r, self.g1, self.g2,
                         self.psf_fwhm, self.sigma)
        if int(self.seed) != self.seed or self.seed < 1:
            raise InputError(f"seed = {self.seed} must be a positive integer")
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
    """Whether the original study's SNR cut keeps an image of this SNR, and a sentence saying so."""
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


# ------------------------------------------------------------------------------ models

class Unavailable(RuntimeError):
    """A part of the project a page needs is absent here: Keras and TensorFlow on a light
    deployment (EDA/app/requirements.txt), or no trained model."""


def load_estimator(path):
    """`galaxies.evaluation.estimators.load` of a model directory, or `Unavailable` when this
    installation lacks the packages a network needs."""
    try:
        from galaxies.evaluation import estimators
        return estimators.load(path)
    except ImportError as err:
        missing = (getattr(err, "name", None) or "").split(".")[0]
        if not missing or missing == "galaxies":
            raise
        raise Unavailable(f"trained models are not available here: they need the package "
                          f"`{missing}`, which is not installed") from None


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
    from galaxies.simulation.recipes import RECIPES

    order = {name: k for k, name in enumerate(RECIPES)}
    folder = profiles.get(profile).data_dir
    files = [p for p in folder.glob("*.h5") if "." not in p.stem and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (order.get(p.stem, len(order)), p.name))


def list_saved_models(profile) -> list[Path]:
    """Estimators' folders ``models/<profile>/<estimator>_<trainset>/``: those holding a
    ``.keras`` file, broken ones included (the page says what is wrong with them); denoisers,
    which make images, and unfinished folders are left out."""
    from galaxies.networks.training.saved import read_info

    folder = profiles.get(profile).models_dir
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and any(p.glob("*.keras")) and read_info(p).get("task") != "denoise")


def list_prediction_files(profile):
    """The predictions of a profile as `galaxies.evaluation.evaluate.list_predictions`'s table (empty
    when there are none)."""
    from galaxies.evaluation.evaluate import list_predictions
    return list_predictions(profiles.get(profile).predictions_dir)


def outside_training(trainset: str, testset: str) -> bool:
    """Whether a network trained on ``trainset`` predicted ``testset`` outside its training
    set's PSF or noise (`galaxies.simulation.recipes.covers`); False where either is not one of the
    project's recipes (the fit, HSM, a set of one's own)."""
    from galaxies.simulation.recipes import extrapolates
    return extrapolates(trainset, testset)


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

    from galaxies.inference import crb as crb_default
    crb = crb_module or crb_default
    params.check()
    with renderer_lock:
        bound = np.asarray(crb.cramer_rao_bound(params.flux, params.sersic_n, params.sersic_r,
                                                params.g1, params.g2, psf_fwhm=params.psf_fwhm,
                                                sigma=params.sigma), dtype=float)
    if bound.shape != (5,):
        raise InputError(f"cramer_rao_bound returned shape {bound.shape}, expected (5,)")
    width = np.array([LABEL_WIDTHS[c] for c in LABEL_COLUMNS])
    value = params.labels
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(value != 0, bound / np.abs(value), np.nan)
    return pd.DataFrame({"value": value, "bound (1 sigma)": bound,
                         "bound / |value|": relative, "bound / range": bound / width},
                        index=pd.Index(LABEL_COLUMNS, name="parameter"))


def bounds_versus_snr(params: GalaxyParameters, snr=None, crb_module=None):
    """The Cramér–Rao bounds of the galaxy of ``params`` as its SNR changes through the read
    noise (the galaxy fixed, ``sigma = ||clean|| / snr``), as between the snr60 and snr30 sets.

    Returns `galaxies.inference.crb.crb_vs_snr`'s DataFrame: columns ``snr``, ``sigma`` and the bound of
    each label (default SNR: 40 values from 10 to 100).
    """
    from galaxies.inference import crb as crb_default
    crb = crb_module or crb_default
    params.check()
    with renderer_lock:
        return crb.crb_vs_snr(params.flux, params.sersic_n, params.sersic_r, params.g1,
                              params.g2, psf_fwhm=params.psf_fwhm, snr=snr)


def visibility(params: GalaxyParameters, fraction: float = 0.1):
    """`galaxies.simulation.exploration.sensitivity` of the galaxy of ``params`` (thread-safe)."""
    from galaxies.simulation.exploration import sensitivity

    params.check()
    with renderer_lock:
        return sensitivity(params.labels, params.psf_fwhm, params.sigma, fraction)


def psf_image(psf_fwhm: float) -> np.ndarray:
    """The PSF image (64 x 64, unit flux) of a Moffat of FWHM ``psf_fwhm`` arcsec."""
    from galaxies.simulation.render import default_renderer

    with renderer_lock:
        return default_renderer().draw_psf(float(psf_fwhm))


def predict_one(estimator, image: np.ndarray, psf_fwhm: float, sigma: float):
    """An estimator's (`galaxies.evaluation.estimators`) estimate ``(values (5,), std (5,) or None)`` for
    one image; the PSF image is offered too (a network trained with it reads it)."""
    pred, std = estimator.predict(np.asarray(image, dtype=np.float32)[None], psf_fwhm=psf_fwhm,
                                  sigma=sigma, psf_img=psf_image(psf_fwhm)[None])
    return np.asarray(pred, dtype=float)[0], None if std is None else np.asarray(std, float)[0]


def maximum_likelihood(image: np.ndarray, psf_fwhm: float, sigma: float):
    """`galaxies.inference.galsim_fit.fit_image` of one image: ``(params (5,), converged, seconds)``.

    Holds `renderer_lock`, since the fit draws with the process-wide renderer."""
    from galaxies.inference import galsim_fit
    with renderer_lock:
        result = galsim_fit.fit_image(np.asarray(image, dtype=np.float32), float(psf_fwhm),
                                    float(sigma))
    return np.asarray(result.params, dtype=float), bool(result.converged), float(result.seconds)


def refined(image: np.ndarray, psf_fwhm: float, sigma: float, start, steps: int = 2):
    """One image refined from ``start`` (a network's estimate) by at most ``steps`` Gauss–Newton
    steps on the JAX model (`galaxies.inference.differentiable.fit.refine`, as ``galaxies refine`` does):
    ``(params (5,), std (5,), flags (names of `galaxies.inference.refine.FLAGS`), seconds)``."""
    from galaxies.inference.differentiable.datasets import refinement_flags
    from galaxies.inference.differentiable.fit import refine
    from galaxies.inference.refine import FLAGS
    result = refine(np.asarray(image, dtype=np.float64)[None], [float(psf_fwhm)], [float(sigma)],
                    np.asarray(start, dtype=float)[None], int(steps))
    bits = refinement_flags(result.hit_box, result.nll > result.nll_start, result.converged,
                            [False])[0]
    flags = [name for name, bit in FLAGS.items() if bits & bit]
    return (np.asarray(result.params[0], dtype=float), np.asarray(result.std[0], dtype=float),
            flags, float(result.seconds))


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


# ------------------------------------------------------------------ what a page shows first

def recommended_index(models: list, profile) -> int:
    """Where the profile's recommended network (`galaxies.runtime.profiles.Profile.recommended`) is in
    a list of model directories (the first when it is not there)."""
    name = profiles.get(profile).recommended
    return next((k for k, path in enumerate(models) if Path(path).name == name), 0)


def default_prediction(table, profile) -> int:
    """The row of a predictions table (`list_prediction_files`) a visitor should see first: the
    profile's recommended network on ``test``; else any estimator on ``test``; else the first."""
    name = profiles.get(profile).recommended
    keys = [f"{e}_{t}" for e, t in zip(table.estimator, table.trainset)]
    on_test = [k for k, testset in enumerate(table.testset) if testset == "test"]
    return next((k for k in on_test if keys[k] == name), on_test[0] if on_test else 0)


def one_galaxy(truth: np.ndarray) -> bool:
    """Whether every row of a set's labels is the same galaxy (a fixed set such as snr60),
    whose estimates are shown as histograms around the truth rather than against it."""
    truth = np.asarray(truth)
    return len(truth) > 1 and bool(np.all(truth == truth[0]))


def number(value) -> str:
    """The app's one number format: four significant digits, never an exponent (``10010``,
    ``5419``, ``0.01235``), integers as integers; NaN as a dash."""
    value = float(value)
    if not math.isfinite(value):
        return "-"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value)}"
    return np.format_float_positional(value, precision=4, unique=False, fractional=False,
                                      trim="-")
