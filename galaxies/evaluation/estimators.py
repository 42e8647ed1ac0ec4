"""One interface for everything that predicts: load an estimator, ask it, write its predictions.

Every estimator of the project, whatever it is inside, is loaded by `load` and answers

* ``predict(images, psf_fwhm=None, sigma=None, psf_img=None) -> (pred, pred_std)``: labels
  ``(N, 5)`` in their units (flux in photo-electrons, radius in arcsec) for ``(N, 64, 64)``
  images in photo-electrons, and their standard deviations or None;
* ``predict_dataset(ds)``: the same for every row of a loaded data set;
* ``predict_file(data, out)``: the predictions file of a data set (the contract of
  `galaxies.storage.files.write_predictions`), ``seconds_per_image`` measured on this machine.

========================  ==================================================================
what `load` is given      what it returns
========================  ==================================================================
a network's directory     `Network`: an Xception, the autoencoder's encoder, an AutoKeras pick
a two-stage directory     `TwoStage`: the denoiser its ``training.json`` names, then the network
``"lbfgsb"``              `MaximumLikelihood`: the L-BFGS-B fit of `galaxies.inference.galsim_fit`
a denoiser's directory    an error: a denoiser makes images, not labels
========================  ==================================================================

A two-stage directory refers to its denoiser by a path relative to itself (``denoiser`` in its
``training.json``), so loading it always brings the denoiser along: noisy images in, labels out.
"""
from __future__ import annotations

import math
import os
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

__all__ = ["Estimator", "Network", "TwoStage", "MaximumLikelihood", "load", "FIT"]

#: the name `load` takes for the maximum-likelihood fit (it has no directory)
FIT = "lbfgsb"


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


class MaximumLikelihood(Estimator):
    """The maximum-likelihood fit (`galaxies.inference.galsim_fit.fit_image`), image by image.

    Its ``seconds_per_image`` is the CPU time of one fit on one core (the fits run in
    ``jobs`` processes), as `galaxies.inference.galsim_fit.fit_dataset` measures it.
    """

    name, trainset, path, fields = FIT, "fit", None, ("img",)

    def __init__(self, jobs: int | None = None, progress: bool = False):
        self.jobs, self.progress = jobs, progress

    def predict(self, images, psf_fwhm=None, sigma=None, psf_img=None):
        from galaxies.inference.galsim_fit import fit_image
        images = np.asarray(images, np.float64)
        images = images[None] if images.ndim == 2 else images
        n = len(images)
        psf = np.broadcast_to(np.asarray(psf_fwhm, float), (n,))
        noise = np.broadcast_to(np.asarray(sigma, float), (n,))
        return np.array([fit_image(im, p, s).params for im, p, s in zip(images, psf, noise)]), None

    def predict_file(self, data, out, limit: int | None = None, force: bool = False) -> Path:
        from galaxies.inference.galsim_fit import fit_dataset
        return fit_dataset(data, out, limit=limit, jobs=self.jobs, progress=self.progress, force=force)


def load(path, **options) -> Estimator:
    """The estimator stored in a model directory, or the fit for ``"lbfgsb"`` (``options``:
    ``jobs``, ``progress``). Raises FileNotFoundError for a folder that holds no model and
    ValueError for a denoiser."""
    if str(path) == FIT:
        return MaximumLikelihood(**options)
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
