"""Denoise, then estimate: image-to-image denoisers (EDSR, RDN) followed by the Xception CNN.

Following Madireddy et al. (2019), a denoising network first maps a noisy image to an estimate
of the noiseless one, and the Xception estimator is then trained and evaluated on denoised
images. This module

* trains a denoiser on the separate set ``v1a`` (noisy -> noiseless; never on a set the
  estimators are evaluated on) and saves it like every model of the project: a directory
  ``models/<profile>/<denoiser>_v1a/`` with ``model.keras``, ``scalers.json`` (the image
  scaling), ``training.json`` and ``history.csv`` (`fit`, `train_denoiser`, `Denoiser`);
* applies it to a data set in batches, with a progress bar (`Denoiser.denoise`);
* measures it: PSNR and SSIM of noisy and of denoised images against the noiseless ones
  (`psnr`, `ssim`, `quality`, `quality_table`) and its throughput in images per second
  (`Denoiser.throughput`);
* runs the two-stage pipeline: the Xception estimator trained on the denoised v1 set
  (``models/<profile>/<denoiser>-xception_v1/``, `train_two_stage`), its predictions on the
  test sets (`predict_two_stage`), and the comparison with the plain Xception against the
  Cramér–Rao bound (`compare`).

Image scaling: one mean and one standard deviation, fitted on the noisy training images, are
applied to both the noisy input and the noiseless target, so the network's output maps back to
photo-electrons with the same affine map.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import io, profiles
from .testsets import TESTSETS
from .train import HISTORY_FILE, RecordedFit, SavedModel, Standardizer, split_rows

__all__ = [
    "DENOISERS", "TRAINED_ON", "TESTSETS", "DenoiserConfig", "Denoiser", "fit", "train_denoiser",
    "psnr", "ssim", "quality", "quality_table", "two_stage_name", "train_two_stage",
    "predict_two_stage", "compare", "rmse_change", "load_denoiser", "estimator_config",
    "results_path", "CONTROL", "needs_control", "train_control",
]

DENOISERS = ("edsr", "rdn")
TRAINED_ON = "v1a"  # the denoisers' own training set
#: sets the estimators are evaluated on: a denoiser never trains on them
EVALUATION_SETS = TESTSETS
IMAGE_SHAPE = (64, 64)


# ----------------------------------------------------------------------------- quality

def _batch(images, name: str) -> np.ndarray:
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise ValueError(f"{name} has shape {images.shape}, expected (N, height, width)")
    return images


def _pair(images, reference):
    images, reference = _batch(images, "images"), _batch(reference, "reference")
    if images.shape != reference.shape:
        raise ValueError(f"images {images.shape} and reference {reference.shape} differ in shape")
    return images, reference


def _data_range(reference: np.ndarray, data_range) -> np.ndarray:
    if data_range is None:
        value = reference.max(axis=(1, 2)) - reference.min(axis=(1, 2))
    else:
        value = np.broadcast_to(np.asarray(data_range, dtype=np.float64), (len(reference),))
    if np.any(~(value > 0)):
        raise ValueError("data_range must be positive; a constant reference image needs an "
                         "explicit data_range")
    return value


def psnr(images, reference, data_range=None) -> np.ndarray:
    """Peak signal-to-noise ratio of each image against its reference, in dB.

    ``10 log10(L**2 / MSE)``, where MSE is the mean squared pixel difference and ``L`` is
    ``data_range`` (a number or one per image) or, by default, the reference image's own range
    ``max - min`` (for a galaxy on a zero sky: its peak). Identical images give ``inf``.
    Inputs are (N, H, W) or (H, W) arrays in the same units; returns (N,).
    """
    images, reference = _pair(images, reference)
    top = _data_range(reference, data_range)
    mse = np.mean((images - reference) ** 2, axis=(1, 2))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(top ** 2 / mse)


def ssim(images, reference, data_range=None, sigma: float = 1.5, k1: float = 0.01,
         k2: float = 0.03) -> np.ndarray:
    """Structural similarity (Wang et al. 2004) of each image against its reference.

    The mean over pixels of ``(2 mu_x mu_y + C1)(2 cov_xy + C2) / ((mu_x^2 + mu_y^2 + C1)
    (var_x + var_y + C2))``, with local statistics under a Gaussian window of standard
    deviation ``sigma`` pixels (truncated at 3.5 sigma, image edges reflected),
    ``C1 = (k1 L)^2`` and ``C2 = (k2 L)^2``, ``L`` as in `psnr`. Pixels closer to the edge than
    the window's radius are left out of the mean. These are the settings of Wang et al. and of
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``. 1 for identical images; returns (N,).
    """
    from scipy.ndimage import gaussian_filter

    images, reference = _pair(images, reference)
    top = _data_range(reference, data_range)[:, None, None]
    truncate = 3.5
    radius = int(truncate * sigma + 0.5)

    def local_mean(a):
        return gaussian_filter(a, sigma=(0, sigma, sigma), truncate=truncate, mode="reflect")

    mu_x, mu_y = local_mean(images), local_mean(reference)
    var_x = local_mean(images * images) - mu_x ** 2
    var_y = local_mean(reference * reference) - mu_y ** 2
    cov = local_mean(images * reference) - mu_x * mu_y
    c1, c2 = (k1 * top) ** 2, (k2 * top) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)
             / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2)))
    if min(index.shape[1:]) <= 2 * radius:
        raise ValueError(f"images of {index.shape[1:]} pixels are too small for a window of "
                         f"radius {radius}")
    return index[:, radius:-radius, radius:-radius].mean(axis=(1, 2))


def quality(noisy, denoised, noiseless) -> "pd.DataFrame":
    """PSNR, SSIM and RMSE of the noisy and of the denoised images against the noiseless ones.

    One row each (``noisy``, ``denoised``): the mean PSNR [dB] and SSIM over images, the median
    PSNR, and the RMSE in photo-electrons (over all pixels). Images are (N, H, W) arrays in
    photo-electrons; the noiseless image's range sets the PSNR and SSIM scale of each galaxy.
    """
    import pandas as pd

    rows = {}
    for name, images in (("noisy", noisy), ("denoised", denoised)):
        p = psnr(images, noiseless)
        rows[name] = {"psnr": float(np.mean(p)), "psnr_median": float(np.median(p)),
                      "ssim": float(np.mean(ssim(images, noiseless))),
                      "rmse": float(np.sqrt(np.mean((_batch(images, name) - _batch(noiseless, "noiseless")) ** 2)))}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "images"
    return table


# ---------------------------------------------------------------------------- training

@dataclass
class DenoiserConfig:
    """How to train one denoiser. Sizes and epochs normally come from the profile
    (`from_profile`)."""

    model: str = "edsr"
    model_kwargs: dict = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 32
    patience: int = 5
    learning_rate: float = 1e-3
    loss: str = "mae"  # EDSR and RDN are trained with the L1 loss
    validation_fraction: float = 0.1
    seed: int = 0
    limit: int | None = None  # use only the first rows of the training set

    def __post_init__(self):
        from .models.denoisers import DENOISERS as builders
        if self.model not in builders:
            raise ValueError(f"model = {self.model!r}; choose from {', '.join(builders)}")
        if self.loss not in ("mae", "mse"):
            raise ValueError(f"loss = {self.loss!r}; choose 'mae' or 'mse'")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction = {self.validation_fraction} must be in (0, 1)")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} = {getattr(self, name)} must be at least 1")
        if self.limit is not None and self.limit < 2:
            raise ValueError(f"limit = {self.limit} must be at least 2 (or None for all rows)")

    @classmethod
    def from_profile(cls, profile, model: str = "edsr", **overrides) -> "DenoiserConfig":
        """The configuration of denoiser ``model`` under ``profile`` (its ``denoiser_*``
        fields), with keyword ``overrides``."""
        profile = profiles.get(profile)
        if model not in profile.denoiser_sizes:
            raise ValueError(f"profile {profile.name} has no sizes for denoiser {model!r}; "
                             f"it has {', '.join(profile.denoiser_sizes)}")
        base = dict(model=model, model_kwargs=dict(profile.denoiser_sizes[model]),
                    epochs=profile.denoiser_epochs, batch_size=profile.denoiser_batch_size,
                    patience=profile.denoiser_patience, limit=profile.denoiser_limit)
        return cls(**{**base, **overrides})


class Denoiser:
    """A trained denoiser with its image scaling: maps noisy images in photo-electrons to
    denoised images in photo-electrons."""

    def __init__(self, model, scaler: Standardizer, info: dict, path: Path | None = None):
        self.model, self.scaler, self.info, self.path = model, scaler, info, path

    @property
    def name(self) -> str:
        return self.info.get("name") or (self.path.name if self.path else "denoiser")

    @property
    def kind(self) -> str:
        """``edsr`` or ``rdn``."""
        return self.info["config"]["model"]

    @property
    def config(self) -> DenoiserConfig:
        return DenoiserConfig(**self.info["config"])

    @classmethod
    def load(cls, path) -> "Denoiser":
        """Load a denoiser directory written by `fit`."""
        saved = SavedModel.load(path)
        if saved.info.get("task") != "denoise":
            raise ValueError(f"{path} holds an estimator, not a denoiser (task "
                             f"{saved.info.get('task', 'estimate')!r})")
        return cls(saved.model, saved.scalers["image"], saved.info, saved.path)

    def save(self, path) -> Path:
        """Write the model directory atomically (the format of `galaxies.train.SavedModel`)."""
        saved = SavedModel(self.model, {"image": self.scaler}, self.info, self.path)
        self.path = saved.save(path)
        return self.path

    def summary(self) -> "pd.Series":
        """How it was trained: parameters, rows, epochs, seconds, images per second, loss."""
        import pandas as pd
        keys = ("parameters", "dataset_name", "train_rows", "validation_rows", "epochs_run",
                "training_seconds", "train_images_per_second", "best_val_loss")
        return pd.Series({k: self.info.get(k) for k in keys}, name=self.name)

    def history(self):
        """The loss per epoch (``history.csv``) as a DataFrame."""
        import pandas as pd
        if self.path is None or not (self.path / HISTORY_FILE).is_file():
            raise FileNotFoundError(f"denoiser {self.name} has no {HISTORY_FILE}")
        return pd.read_csv(self.path / HISTORY_FILE)

    def denoise(self, images, batch_size: int = 64, progress: bool = True) -> np.ndarray:
        """Denoise (N, 64, 64) images in photo-electrons; returns (N, 64, 64) float32.

        Runs in batches of ``batch_size`` (the last one padded, so the compiled function is
        traced once) with a tqdm progress bar.
        """
        from tqdm import tqdm

        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"images have shape {images.shape}, expected (N, 64, 64)")
        if batch_size < 1:
            raise ValueError(f"batch_size = {batch_size} must be at least 1")
        out = np.empty_like(images)
        batch_size = min(batch_size, len(images)) or 1
        for start in tqdm(range(0, len(images), batch_size), desc=f"denoise ({self.name})",
                          unit="batch", disable=not progress or len(images) <= batch_size):
            chunk = images[start:start + batch_size]
            x = self.scaler.transform(chunk[..., None])
            if len(x) < batch_size:
                x = np.concatenate([x, np.zeros((batch_size - len(x),) + x.shape[1:], x.dtype)])
            y = np.asarray(self.model.predict_on_batch(x))[:len(chunk), ..., 0]
            out[start:start + len(chunk)] = self.scaler.inverse(y[..., None])[..., 0]
        return out

    def throughput(self, images, batch_size: int = 64, repeats: int = 1) -> float:
        """Images denoised per second (after a warm-up batch that builds the compiled
        function), the best of ``repeats`` passes over ``images``."""
        images = np.asarray(images, dtype=np.float32)
        self.denoise(images[:batch_size], batch_size=batch_size, progress=False)
        best = np.inf
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            self.denoise(images, batch_size=batch_size, progress=False)
            best = min(best, time.perf_counter() - start)
        return len(images) / best


def fit(config: DenoiserConfig, data, out_dir, verbose="auto") -> Denoiser:
    """Train a denoiser to map the noisy images of a data set to its noiseless ones and save
    it to ``out_dir`` (replaced if it exists).

    ``data`` is a data set path or a loaded `io.Dataset` holding both ``img`` and
    ``img_nonoise``. A set the estimators are evaluated on (`EVALUATION_SETS`) is refused.
    A random ``validation_fraction`` of the rows (from ``config.seed``) is held out for early
    stopping and the learning-rate schedule.
    """
    import keras

    from .models.denoisers import get_denoiser

    ds = data if isinstance(data, io.Dataset) else io.load_dataset(
        data, fields=("img", "img_nonoise"), rows=config.limit)
    if ds.name in EVALUATION_SETS:
        raise ValueError(f"{ds.path}: the estimators are evaluated on {ds.name!r}; train the "
                         f"denoiser on a separate set ({TRAINED_ON})")
    if ds.img is None or ds.img_nonoise is None:
        raise ValueError(f"{ds.path}: a denoiser needs both img and img_nonoise loaded")
    keras.utils.set_random_seed(config.seed)
    train, val = split_rows(len(ds), config.validation_fraction, config.seed)

    scaler = Standardizer.fit(ds.img[train][..., None], axis=(0, 1, 2))

    def scaled(images, rows):
        return scaler.transform(images[rows][..., None])

    model = get_denoiser(config.model)(input_shape=IMAGE_SHAPE + (1,), **config.model_kwargs)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=config.loss,
                  metrics=["mse"] if config.loss != "mse" else None)
    recorded = RecordedFit(out_dir, config.patience, plateau=True)
    recorded.fit(model, scaled(ds.img, train), scaled(ds.img_nonoise, train),
                 validation_data=(scaled(ds.img, val), scaled(ds.img_nonoise, val)),
                 epochs=config.epochs, batch_size=config.batch_size, verbose=verbose, shuffle=True)
    info = recorded.record(model, config, ds, train, val, task="denoise", estimator=config.model)
    return recorded.save(Denoiser(model, scaler, info))


def train_denoiser(name: str, profile=None, verbose="auto", **overrides) -> Denoiser:
    """Train denoiser ``name`` (``edsr`` or ``rdn``) on the profile's v1a set with the
    profile's sizes, and save it to ``models/<profile>/<name>_v1a``."""
    profile = profiles.get(profile)
    config = DenoiserConfig.from_profile(profile, name, **overrides)
    return fit(config, profile.dataset(TRAINED_ON), profile.model_dir(name, TRAINED_ON),
               verbose=verbose)


def load_denoiser(name: str, profile=None) -> Denoiser:
    """The trained denoiser ``name`` of a profile (``models/<profile>/<name>_v1a``)."""
    profile = profiles.get(profile)
    path = profile.model_dir(name, TRAINED_ON)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: denoiser {name!r} not trained under profile "
                                f"{profile.name} (run experiments/denoising/{name}.ipynb)")
    return Denoiser.load(path)


def quality_table(denoiser: Denoiser, profile=None, testsets=TESTSETS, batch_size: int = 64,
                  progress: bool = True) -> "pd.DataFrame":
    """`quality` of a denoiser on each test set of a profile, with its throughput.

    Rows: (test set, ``noisy`` | ``denoised``); columns ``psnr``, ``psnr_median`` [dB], ``ssim``,
    ``rmse`` [e-], ``n`` (images) and, on the denoised rows, ``images_per_second`` (the
    denoising of the set, timed after a warm-up batch, on this machine).
    """
    import pandas as pd

    profile = profiles.get(profile)
    tables = {}
    for testset in testsets:
        ds = io.load_dataset(profile.dataset(testset), fields=("img", "img_nonoise"))
        denoiser.denoise(ds.img[:batch_size], batch_size=batch_size, progress=False)  # warm-up
        start = time.perf_counter()
        denoised = denoiser.denoise(ds.img, batch_size=batch_size, progress=progress)
        speed = len(ds) / (time.perf_counter() - start)
        table = quality(ds.img, denoised, ds.img_nonoise)
        table["n"] = len(ds)
        table["images_per_second"] = [np.nan, speed]
        tables[testset] = table
    return pd.concat(tables, names=["testset"])


# -------------------------------------------------------------------- two-stage pipeline

def two_stage_name(denoiser: str) -> str:
    """Estimator name of the two-stage pipeline, e.g. ``edsr-xception``."""
    return f"{denoiser}-xception"


def estimator_config(profile=None, **overrides):
    """The Xception `TrainingConfig` for denoised images: the profile's Xception settings with
    ``denoised_limit`` rows and ``denoised_epochs`` epochs when the profile sets them."""
    from .train import TrainingConfig

    profile = profiles.get(profile)
    base = {"model": "xception"}
    if profile.denoised_limit is not None:
        base["limit"] = profile.denoised_limit
    if profile.denoised_epochs is not None:
        base["epochs"] = profile.denoised_epochs
    return TrainingConfig.from_profile(profile, **{**base, **overrides})


CONTROL = "xception-control"


def needs_control(profile=None) -> bool:
    """Whether the profile trains the two-stage estimator on another budget (rows, epochs)
    than the plain Xception, so that a same-budget control is needed for a fair comparison."""
    profile = profiles.get(profile)
    return profile.denoised_limit is not None or profile.denoised_epochs is not None


def train_control(profile=None, verbose="auto", force: bool = False,
                  when_needed: bool = True) -> SavedModel | None:
    """The plain Xception trained exactly like the two-stage estimators (same rows, epochs,
    seed, split and augmentation) but on the noisy images, with its predictions on the test
    sets: estimator ``xception-control``. Its difference from a two-stage estimator is the
    denoiser's doing alone.

    An existing control is reused when its configuration and training-set recipe match and
    its predictions exist (both pipeline notebooks call this; the first one trains it).
    With ``when_needed`` (the default) nothing is trained, and None returned, when the profile
    trains the two-stage estimator like the plain Xception (`needs_control`).
    """
    from . import train

    profile = profiles.get(profile)
    if when_needed and not needs_control(profile):
        return None
    config = estimator_config(profile)
    path = profile.model_dir(CONTROL, "v1")
    outputs = [profile.predictions(CONTROL, "v1", t) for t in TESTSETS]
    info = _training_info(path)
    wanted = json.loads(json.dumps(asdict(config), default=str))
    if (not force and info.get("config") == wanted and all(p.is_file() for p in outputs)
            and info.get("recipe") == io.dataset_info(profile.dataset("v1"))["recipe"]):
        return SavedModel.load(path)
    ds = io.load_dataset(profile.dataset("v1"), fields=("img",), rows=config.limit)
    model = train.fit(config, ds, path, estimator=CONTROL, verbose=verbose)
    for testset, out in zip(TESTSETS, outputs):
        train.predict_file(model, profile.dataset(testset), out, estimator=CONTROL, trained_on="v1")
    return model


def train_two_stage(denoiser: str, profile=None, verbose="auto", progress: bool = True,
                    **overrides) -> SavedModel:
    """Denoise the v1 training set with the trained ``denoiser`` and train the Xception
    estimator on the result; saved to ``models/<profile>/<denoiser>-xception_v1``."""
    from . import train

    profile = profiles.get(profile)
    den = load_denoiser(denoiser, profile)
    config = estimator_config(profile, **overrides)
    ds = io.load_dataset(profile.dataset("v1"), fields=("img",), rows=config.limit)
    denoised = den.denoise(ds.img, progress=progress)
    name = two_stage_name(denoiser)
    model = train.fit(config, ds, profile.model_dir(name, "v1"), images=denoised,
                      estimator=name, verbose=verbose)
    model.info["denoiser"] = str(den.path)
    model.save(model.path)  # keep which denoiser fed it in training.json
    return model


def predict_two_stage(denoiser: str, profile=None, testsets=TESTSETS, batch_size: int = 256,
                      progress: bool = True) -> dict[str, Path]:
    """Predictions of the two-stage estimator on each test set, written to
    ``profile.predictions("<denoiser>-xception", "v1", testset)``.

    ``seconds_per_image`` in each file is the whole pipeline's time: denoising plus the
    estimator (both after a warm-up batch); the two parts are kept as the attributes
    ``denoise_seconds_per_image`` and ``estimate_seconds_per_image``.
    """
    import h5py

    from .train import predict_file

    profile = profiles.get(profile)
    den = load_denoiser(denoiser, profile)
    name = two_stage_name(denoiser)
    model_dir = profile.model_dir(name, "v1")
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: the {name} estimator is not trained under "
                                f"profile {profile.name}")
    model = SavedModel.load(model_dir)
    out = {}
    for testset in testsets:
        ds = io.load_dataset(profile.dataset(testset), fields=("img",))
        den.denoise(ds.img[:64], progress=False)  # warm-up, not timed
        start = time.perf_counter()
        denoised = den.denoise(ds.img, progress=progress)
        denoise_seconds = (time.perf_counter() - start) / len(ds)
        path = predict_file(model, profile.dataset(testset), profile.predictions(name, "v1", testset),
                            estimator=name, trained_on="v1", images=denoised, batch_size=batch_size)
        # predict_file times the estimator alone; the pipeline's cost includes denoising
        with h5py.File(path, "r+") as f:
            estimate = float(f.attrs["seconds_per_image"])
            f.attrs["estimate_seconds_per_image"] = estimate
            f.attrs["denoise_seconds_per_image"] = denoise_seconds
            f.attrs["seconds_per_image"] = estimate + denoise_seconds
            f.attrs["denoiser"] = str(den.path)
        out[testset] = path
    return out


def compare(profile=None, denoisers=DENOISERS, testsets=TESTSETS, baseline: str = "xception",
            with_crb: bool = True) -> "pd.DataFrame":
    """RMSE (and RMSE / CRB) of the plain Xception, of its same-budget control (when trained,
    see `train_control`) and of each two-stage estimator on each test set, from their saved
    predictions.

    Rows: (test set, estimator, parameter), columns those of `galaxies.evaluate.against_crb`
    (or `summary` when ``with_crb`` is false) plus ``train_rows`` and ``epochs_run`` of the
    estimator (from its ``training.json``), so unequal training budgets are visible.
    Estimators without predictions are left out.
    """
    import pandas as pd

    from . import evaluate
    from . import testsets as testsets_module

    profile = profiles.get(profile)
    estimators = [baseline, CONTROL] + [two_stage_name(d) for d in denoisers]
    tables = {}
    for testset in testsets:
        data_path = profile.dataset(testset)
        bounds = None
        for estimator in estimators:
            path = profile.predictions(estimator, "v1", testset)
            if not path.is_file():
                continue
            ds = io.load_dataset(data_path, fields=())
            if with_crb and bounds is None:
                bounds = testsets_module.crb(profile, testset)
            table = (evaluate.against_crb(path, ds, bounds) if bounds is not None
                     else evaluate.summary(path, ds))
            info = _training_info(profile.model_dir(estimator, "v1"))
            table["train_rows"] = info.get("train_rows", np.nan)
            table["epochs_run"] = info.get("epochs_run", np.nan)
            tables[(testset, estimator)] = table
    if not tables:
        return pd.DataFrame()
    return pd.concat(tables, names=["testset", "estimator"])


def rmse_change(table, baseline: str | None = None) -> "pd.DataFrame":
    """Relative change of the RMSE of each estimator against ``baseline`` in a `compare` table,
    in percent (negative: lower RMSE than the baseline). The default baseline is the
    same-budget control when the table has it, else the plain Xception. Rows: (test set,
    estimator), columns: the parameters."""
    import pandas as pd

    from .simulate import LABEL_COLUMNS

    order = list(dict.fromkeys(table.index.droplevel("parameter")))  # keep the table's order
    rmse = table["rmse"].unstack("parameter").reindex(index=order, columns=list(LABEL_COLUMNS))
    if baseline is None:
        present = set(rmse.index.get_level_values("estimator"))
        baseline = CONTROL if CONTROL in present else "xception"
    out = {}
    for (testset, estimator), row in rmse.iterrows():
        if estimator != baseline and (testset, baseline) in rmse.index:
            out[(testset, estimator)] = 100.0 * (row / rmse.loc[(testset, baseline)] - 1.0)
    frame = pd.DataFrame.from_dict(out, orient="index")
    if len(frame):
        frame.index = pd.MultiIndex.from_tuples(frame.index, names=["testset", "estimator"])
    return frame


def results_path(profile, filename: str) -> Path:
    """``results/<profile>/denoising/<filename>`` (the folder is created)."""
    folder = profiles.get(profile).results_dir / "denoising"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / filename


def _training_info(model_dir: Path) -> dict:
    try:
        return json.loads((Path(model_dir) / "training.json").read_text())
    except (OSError, ValueError):
        return {}
