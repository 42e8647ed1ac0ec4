"""One interface for everything that predicts: load an estimator, ask it, write its predictions.

Every estimator of the project, whatever it is inside, is loaded by `load` and answers

* ``predict(images, psf_fwhm=None, sigma=None, psf_img=None) -> (pred, pred_std)``: labels
  ``(N, 5)`` in their units (flux in photo-electrons, radius in arcsec) for ``(N, 64, 64)``
  images in photo-electrons, and their standard deviations or None;
* ``predict_dataset(ds)``: the same for every row of a loaded data set;
* ``predict_file(data, out)``: the predictions file of a data set (the contract of
  `galaxies.storage.files.write_predictions`), ``seconds_per_image`` measured on this machine.

==========================  ================================================================
what `load` is given        what it returns
==========================  ================================================================
a network's directory       `Network`: an Xception, the autoencoder's encoder, an AutoKeras pick
a two-stage directory       `TwoStage`: the denoiser its ``training.json`` names, then the network
``"lbfgsb"``, ``"lm-jax"``  `Fit`: the maximum-likelihood fit on GalSim's renders, on the JAX model
``"hsm-ksb"``, ...          `HSM`: GalSim's own shear estimators
a denoiser's directory      an error: a denoiser makes images, not labels
==========================  ================================================================

`Fit` (with ``start``: the started fit) and `Refined` take another estimator and build on it.
A two-stage directory refers to its denoiser by a path relative to itself (``denoiser`` in its
``training.json``), so loading it always brings the denoiser along: noisy images in, labels out.
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from galaxies.networks.training.config import TrainingConfig, input_fields
from galaxies.networks.training.denoiser import DENOISE_BATCH
from galaxies.networks.training.saved import SavedModel, read_info
from galaxies.runtime.errors import FileFormatError, InputError
from galaxies.storage import files
from galaxies.storage.atomic import check_destination
from galaxies.storage.chunked import BLOCK_ROWS, DatasetReader, NonFinite

__all__ = ["Estimator", "Network", "TwoStage", "Fit", "Refined", "HSM", "load", "FIT", "JAX_FIT",
           "NAMED"]

#: the names of the two maximum-likelihood fits (on GalSim's renders, on the JAX model)
FIT, JAX_FIT = "lbfgsb", "lm-jax"


class Estimator:
    """What every estimator offers (see the module docstring). Subclasses set ``name``
    (written to predictions), ``trainset``, ``path`` and ``fields`` (the data-set fields read)
    and implement `predict_dataset` and `predict`."""

    name: str = "estimator"
    trainset: str = ""
    path: Path | None = None
    fields: tuple[str, ...] = ("img",)
    batch_size: int = 256

    def predict(self, images, psf_fwhm=None, sigma=None, psf_img=None):
        raise NotImplementedError

    def predict_dataset(self, ds: files.Dataset):
        """``(pred, pred_std)`` for every row of a loaded data set."""
        psf = ds.psf_images() if ds.psf_img is not None else None
        return self.predict(ds.img, ds.psf_fwhm, ds.sigma, psf)

    def file_attrs(self) -> dict:
        """Further attributes of its predictions files."""
        return {"model": str(self.path or self.name), "trainset": self.trainset,
                "batch_size": self.batch_size}

    def predict_file(self, data, out, limit: int | None = None, force: bool = False) -> Path:
        """Predict every row (or the first ``limit``) of a data set and write the predictions
        file ``out`` (an existing one is replaced only with ``force``).

        ``seconds_per_image`` is the wall time of the prediction (every stage and the scaling
        included) divided by the number of images, after one warm-up batch (which builds the
        compiled functions) that is not counted.
        """
        check_destination(out, data, force=force)
        reader = DatasetReader(data, fields=self.fields, rows=limit)
        if len(reader) == 0:
            raise InputError(f"{reader.path}: no rows to predict")
        # Blocks of whole batches, the last longer than a batch: every batch is then the
        # batch the whole set would have had (same shape, same padding), so are the numbers.
        batches = self.batch_sizes()
        block = math.lcm(*batches) * max(1, BLOCK_ROWS // math.lcm(*batches))
        bad, preds, stds, seconds = NonFinite(reader), [], [], 0.0
        for ds in reader.blocks(block, last_at_least=max(batches) + 1):
            if bad.add(ds):  # no more predictions: only the rows to name in the error
                continue
            if not preds:
                self.predict_dataset(ds.subset(slice(0, min(len(ds), self.batch_size))))  # warm-up
            start = time.perf_counter()
            pred, std = self.predict_dataset(ds)
            seconds += time.perf_counter() - start
            preds.append(pred)
            stds.append(std)
        bad.check()
        std = None if stds[0] is None else np.concatenate(stds)
        return files.write_predictions(out, np.concatenate(preds), reader.rows,
                                       estimator=self.name, dataset=reader.name,
                                       seconds_per_image=seconds / len(reader), pred_std=std,
                                       attrs=self.file_attrs(), force=force)

    def batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes of its stages (`predict_file` reads blocks of whole batches)."""
        return (self.batch_size,)


class Network(Estimator):
    """A trained network (`galaxies.networks.training.SavedModel`): one forward pass."""

    def __init__(self, model: SavedModel, name: str | None = None, trainset: str | None = None):
        self.model = model
        self.name = name or model.estimator
        self.trainset = trainset or model.trainset
        self.path = model.path
        self.fields = input_fields(model.config)

    def predict(self, images, psf_fwhm=None, sigma=None, psf_img=None):
        return self.model.predict(images, psf_fwhm, sigma, psf_img, batch_size=self.batch_size)

    def predict_dataset(self, ds: files.Dataset, images=None):
        return self.model.predict_dataset(ds, images=images, batch_size=self.batch_size)


class TwoStage(Estimator):
    """A denoiser, then a network trained on denoised images."""

    def __init__(self, denoiser, network: Network, name: str | None = None):
        self.denoiser, self.network = denoiser, network
        self.name = name or network.name
        self.trainset, self.path = network.trainset, network.path
        self.fields = tuple(dict.fromkeys(("img",) + network.fields))

    denoise_batch = DENOISE_BATCH  # the denoiser's own default batch

    def predict(self, images, psf_fwhm=None, sigma=None, psf_img=None):
        clean = self.denoiser.denoise(images, batch_size=self.denoise_batch, progress=False)
        return self.network.predict(clean, psf_fwhm, sigma, psf_img)

    def predict_dataset(self, ds: files.Dataset):
        clean = self.denoiser.denoise(ds.img, batch_size=self.denoise_batch, progress=False)
        return self.network.predict_dataset(ds, images=clean)

    def batch_sizes(self) -> tuple[int, ...]:
        return (self.denoise_batch, self.network.batch_size)

    def file_attrs(self) -> dict:
        return {**super().file_attrs(), "denoiser": str(self.denoiser.path)}


class Fit(Estimator):
    """The maximum-likelihood fit, image by image: L-BFGS-B on GalSim's renders
    (``renderer="galsim"``, `galaxies.inference.galsim_fit`, named ``"lbfgsb"``) or
    Levenberg–Marquardt on the differentiable model (``"jax"``, named ``"lm-jax"``), from its
    own start or from another estimator's estimates (``start``: the started fit).

    Its ``seconds_per_image`` is the CPU time of one fit on one core (plus the start's), as
    the data-set functions measure it.
    """

    fields = ("img",)

    def __init__(self, renderer: str = "galsim", start: Estimator | None = None,
                 jobs: int | None = None, progress: bool = False):
        if renderer not in ("galsim", "jax"):
            raise InputError(f"renderer = {renderer!r}; choose from galsim, jax")
        self.renderer, self.start, self.jobs, self.progress = renderer, start, jobs, progress
        own = FIT if renderer == "galsim" else JAX_FIT
        self.name = own if start is None else f"{own}+{start.name}"
        self.trainset = "fit" if start is None else start.trainset
        self.path = None if start is None else start.path

    def predict(self, images, psf_fwhm=None, sigma=None, psf_img=None):
        images, psf, noise = _batch(images, psf_fwhm, sigma)
        start = None if self.start is None else self.start.predict(images, psf, noise)[0]
        if self.renderer == "jax":
            from galaxies.inference.differentiable.fit import fit
            result = fit(images, psf, noise, start=start)
            return np.asarray(result.params, np.float64), np.asarray(result.std, np.float64)
        from galaxies.inference.galsim_fit import fit_image
        starts = [None] * len(images) if start is None else start
        return np.array([fit_image(im, p, s, start=s0).params
                         for im, p, s, s0 in zip(images, psf, noise, starts)]), None

    def predict_file(self, data, out, limit: int | None = None, force: bool = False) -> Path:
        from galaxies.inference import galsim_fit
        from galaxies.inference.differentiable import datasets
        fit_dataset = galsim_fit.fit_dataset if self.renderer == "galsim" else datasets.fit_dataset
        with _start_file(self.start, data, out, limit) as start:
            return fit_dataset(data, out, limit=limit, jobs=self.jobs, progress=self.progress,
                               force=force, start=start)


class Refined(Estimator):
    """Another estimator's estimates refined by at most ``steps`` Gauss–Newton steps of the
    likelihood, on the differentiable model (``renderer="jax"``, named
    ``<start>+newton<K>-jax``) or on GalSim's renders (``"galsim"``, ``<start>+newton<K>``)."""

    def __init__(self, start: Estimator, steps: int = 2, renderer: str = "jax",
                 jobs: int | None = None, progress: bool = False):
        if renderer not in ("galsim", "jax"):
            raise InputError(f"renderer = {renderer!r}; choose from galsim, jax")
        self.start, self.steps, self.renderer = start, int(steps), renderer
        self.jobs, self.progress = jobs, progress
        self.name = f"{start.name}+newton{self.steps}" + ("-jax" if renderer == "jax" else "")
        self.trainset, self.path = start.trainset, start.path
        self.fields = tuple(dict.fromkeys(("img",) + tuple(start.fields)))

    def predict(self, images, psf_fwhm=None, sigma=None, psf_img=None):
        images, psf, noise = _batch(images, psf_fwhm, sigma)
        start = self.start.predict(images, psf, noise, psf_img)[0]
        if self.renderer == "jax":
            from galaxies.inference.differentiable.fit import refine
            result = refine(images, psf, noise, start, steps=self.steps)
            return np.asarray(result.params, np.float64), np.asarray(result.std, np.float64)
        from galaxies.inference.refine import refine_image
        results = [refine_image(im, p, s, s0, steps=self.steps)
                   for im, p, s, s0 in zip(images, psf, noise, start)]
        return np.array([r.params for r in results]), np.array([r.std for r in results])

    def predict_file(self, data, out, limit: int | None = None, force: bool = False) -> Path:
        from galaxies.inference import refine
        from galaxies.inference.differentiable import datasets
        refine_dataset = refine.refine_dataset if self.renderer == "galsim" else datasets.refine_dataset
        with _start_file(self.start, data, out, limit) as start:
            return refine_dataset(start, data, out, steps=self.steps, jobs=self.jobs, limit=limit,
                                  progress=self.progress, force=force)


class HSM(Estimator):
    """GalSim's own shear estimators (`galaxies.inference.hsm`), ``"ksb"`` or ``"regauss"``:
    shear only (flux, n and r are NaN)."""

    def __init__(self, method: str = "ksb", progress: bool = False):
        if method.lower() not in ("ksb", "regauss"):
            raise InputError(f"HSM method = {method!r}; choose from ksb, regauss")
        self.method, self.progress = method.upper(), progress
        self.name, self.trainset, self.path = f"hsm-{method.lower()}", "galsim", None

    def predict(self, images, psf_fwhm=None, sigma=None, psf_img=None):
        from galaxies.inference.hsm import measure_rows
        images, psf, noise = _batch(images, psf_fwhm, sigma)
        out = np.full((len(images), 5), np.nan)  # a failure leaves its row NaN
        out[:, 3:] = [row[:2] for row in measure_rows(images, psf, noise, self.method)]
        return out, None

    def predict_file(self, data, out, limit: int | None = None, force: bool = False) -> Path:
        from galaxies.inference.hsm import hsm_dataset
        return hsm_dataset(data, out, method=self.method, limit=limit, progress=self.progress,
                           force=force)


def _batch(images, psf_fwhm, sigma):
    """Images (N, ny, nx) as float64 and their PSF FWHM and sigma as (N,) arrays."""
    images = np.asarray(images, np.float64)
    images = images[None] if images.ndim == 2 else images
    n = len(images)
    return (images, np.broadcast_to(np.asarray(psf_fwhm, float), (n,)).copy(),
            np.broadcast_to(np.asarray(sigma, float), (n,)).copy())


@contextlib.contextmanager
def _start_file(start: Estimator | None, data, out, limit):
    """The start estimator's predictions of ``data``, written beside ``out`` and removed after
    (None without a start)."""
    if start is None:
        yield None
        return
    folder = Path(out).parent
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".start-") as work:
        yield start.predict_file(data, Path(work) / "start.h5", limit=limit)


#: the names `load` takes for the estimators that have no directory
NAMED = {FIT: lambda **o: Fit("galsim", **o), JAX_FIT: lambda **o: Fit("jax", **o),
         "hsm-ksb": lambda **o: HSM("ksb", progress=o.get("progress", False)),
         "hsm-regauss": lambda **o: HSM("regauss", progress=o.get("progress", False))}


def load(path, **options) -> Estimator:
    """The estimator stored in a model directory, or one of `NAMED` (the two fits, HSM;
    ``options``: ``jobs``, ``progress``). Raises FileNotFoundError for a folder that holds no
    model and `InputError` for a denoiser."""
    if str(path) in NAMED:
        return NAMED[str(path)](**options)
    path = Path(path)
    info = read_info(path)
    if info.get("task") == "denoise":
        raise InputError(f"{path} holds a denoiser, which makes images, not labels: give "
                         f"the directory of an estimator (a two-stage one brings its denoiser)")
    if isinstance(info.get("config"), dict):  # checked before Keras loads anything
        try:
            TrainingConfig(**info["config"])
        except (TypeError, InputError) as err:
            raise FileFormatError(f"{path}/training.json: its training configuration does not "
                                  f"describe an estimator ({err})") from None
    network = Network(SavedModel.load(path), **options)
    if "denoiser" not in info:
        return network
    from galaxies.networks.training.denoiser import Denoiser
    if not isinstance(info["denoiser"], str):
        raise FileFormatError(f"{path}/training.json: 'denoiser' = {info['denoiser']!r} must be "
                              f"the path of the denoiser's directory")
    reference = Path(info["denoiser"])
    denoiser_dir = reference if reference.is_absolute() else (path / reference).resolve()
    if not denoiser_dir.is_dir():
        raise FileNotFoundError(f"{path}: its denoiser {denoiser_dir} is missing; a two-stage "
                                f"estimator cannot predict without it")
    return TwoStage(Denoiser.load(denoiser_dir), network)


def denoiser_reference(model_dir, denoiser_dir) -> str:
    """How a two-stage directory names its denoiser: the path relative to itself."""
    return os.path.relpath(Path(denoiser_dir).resolve(), Path(model_dir).resolve())
