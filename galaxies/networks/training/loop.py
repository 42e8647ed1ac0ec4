"""The fit loop of every network: the schedule, the callbacks, the record, and `fit`.

`fit` trains an estimator on a data set and returns a `SavedModel` (history and record in
memory); it writes the model directory only when given ``out_dir``. The learning rate warms up
linearly for one epoch and then follows a cosine decay to 1% of its peak
(``schedule="cosine"``), or is halved on plateaus (``schedule="plateau"``). Early stopping
restores the weights of the best validation epoch, unless the weights of the last epochs are
averaged (``average_epochs``, `weight_average`).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from galaxies.conventions import LABEL_COLUMNS
from galaxies.runtime.errors import InputError
from galaxies.storage import files

from .config import TrainingConfig, dataset_arrays, input_fields
from .losses import LOSSES, mean_mse
from .saved import SavedModel, check_model_dir
from .scaling import Standardizer, model_inputs
from .stream import split_rows, training_batches
from .uncertainty_head import check_base, with_std_head
from .weighting import BoundWeights, LabelWeights, bound_weighted_mse

__all__ = ["learning_rate", "weight_average", "RecordedFit", "fit", "fresh_noise_inputs",
           "image_pairs", "pair_fields", "split_pair", "even_batch"]

N_LABELS = len(LABEL_COLUMNS)


def _learning_rate_log():
    """A callback adding the optimizer's current learning rate to each epoch's logs."""
    import keras

    class LearningRateLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                lr = self.model.optimizer.learning_rate
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))
    return LearningRateLog()


def weight_average(last: int):
    """A callback that sums the weights at the end of each of the last ``last`` epochs of the
    fit (of the ``epochs`` it was given) and, when training ends, sets the model to their mean
    (stochastic weight averaging, Izmailov et al. 2018). Placed after early stopping, whose
    restored weights it replaces; a run stopped before the window keeps early stopping's.
    ``averaged`` says how many epochs went into the mean."""
    import keras

    class WeightAverage(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.total, self.averaged = None, 0

        def on_epoch_end(self, epoch, logs=None):
            if epoch < self.params["epochs"] - last:
                return
            weights = self.model.get_weights()
            self.total = (weights if self.total is None
                          else [t + w for t, w in zip(self.total, weights)])
            self.averaged += 1

        def on_train_end(self, logs=None):
            if self.averaged:
                self.model.set_weights([t / self.averaged for t in self.total])

    return WeightAverage()


def learning_rate(config, steps: int):
    """The learning rate of ``config.schedule``: ``cosine`` (one epoch of linear warm-up from
    a tenth of the peak, then a cosine decay to 1% over the remaining ``steps`` per epoch), or
    a constant (``plateau``: `RecordedFit` halves it when the validation loss stalls)."""
    import keras
    if config.schedule != "cosine":
        return config.learning_rate
    warmup = steps if config.epochs > 1 else 0
    return keras.optimizers.schedules.CosineDecay(
        config.learning_rate / 10 if warmup else config.learning_rate,
        decay_steps=max(1, steps * config.epochs - warmup), alpha=0.01,
        warmup_target=config.learning_rate if warmup else None, warmup_steps=warmup)


class RecordedFit:
    """What every trained network of the project records, whatever it learns.

    Gives the callbacks (early stopping that restores the best weights, an optional
    learning-rate plateau schedule, the learning rate per epoch in the history, an optional
    mean of the last ``average_epochs`` epochs' weights), times
    ``keras.Model.fit`` and builds the ``training.json`` record. Used by `fit`, the
    autoencoder and the denoisers; nothing touches the disk.

    ::

        recorded = RecordedFit(patience, plateau=False)
        history = recorded.fit(model, batches, validation_data=..., epochs=...)
        info = recorded.record(model, config, ds, train, val, name=..., estimator=...)
    """

    def __init__(self, patience: int, plateau: bool = False, average_epochs: int = 0):
        import keras
        self.callbacks = [keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)]
        if plateau:
            self.callbacks.append(keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=max(1, patience // 2)))
        self.callbacks.append(_learning_rate_log())
        self.average = weight_average(average_epochs) if average_epochs else None
        if self.average is not None:  # after early stopping: its restored weights are replaced
            self.callbacks.append(self.average)
        self.history, self.seconds, self.images_per_epoch = None, None, None
        self.averaged_val_loss = None

    def fit(self, model, x, y=None, images_per_epoch: int | None = None, **kwargs):
        """``model.fit`` with the callbacks, timed. ``images_per_epoch`` (default: the
        training rows) gives the training throughput. With averaged weights, their validation
        loss is measured once more (``averaged_val_loss``)."""
        start = time.perf_counter()
        self.history = model.fit(x, y, callbacks=self.callbacks, **kwargs).history
        self.seconds = time.perf_counter() - start
        self.images_per_epoch = images_per_epoch
        if self.average is not None and self.average.averaged and "validation_data" in kwargs:
            x_val, y_val = kwargs["validation_data"]
            self.averaged_val_loss = float(np.ravel(model.evaluate(
                x_val, y_val, batch_size=kwargs.get("validation_batch_size"), verbose=0))[0])
        return self.history

    def record(self, model, config, ds: files.Dataset, train, val, name: str | None = None,
               **extra) -> dict:
        """The ``training.json`` record: what was trained on, how, how long and how well."""
        import keras
        losses = self.history["val_loss"]
        epochs_run = len(self.history["loss"])
        images = self.images_per_epoch or len(train)
        return {
            "name": name, "config": asdict(config),
            "trainset": ds.name, "trainset_path": str(ds.path), "recipe": ds.recipe,
            "train_rows": int(len(train)), "validation_rows": int(len(val)),
            "epochs_run": epochs_run, "training_seconds": round(self.seconds, 2),
            "train_images_per_second": round(images * epochs_run / self.seconds, 1),
            "best_val_loss": float(min(losses)), "best_epoch": int(np.argmin(losses)) + 1,
            **({"averaged_epochs": self.average.averaged, "averaged_val_loss": self.averaged_val_loss}
               if self.average is not None and self.average.averaged else {}),
            "parameters": int(model.count_params()),
            "backend": keras.backend.backend(), "keras_version": keras.__version__,
            "trained": time.strftime("%Y-%m-%d %H:%M:%S"),
            **{k: v for k, v in extra.items() if v is not None},
        }


def fit(config: TrainingConfig, data, out_dir=None, images: np.ndarray | None = None,
        name: str | None = None, estimator: str | None = None, verbose="auto",
        force: bool = True, bound_cache=None, base: SavedModel | None = None) -> SavedModel:
    """Train an estimator on a data set; save it to ``out_dir`` when one is given.

    Parameters
    ----------
    config
        what to train (model, inputs, sizes, epochs ...).
    data
        a data set path or a loaded `galaxies.storage.files.Dataset`.
    out_dir
        the model directory to write (None: keep the model in memory only). An existing one is
        replaced only with ``force``; a folder that is not a model directory never is.
    images
        optional replacement for the set's images (e.g. denoised images), one per row.
    name
        the model's name (default: the directory's).
    estimator
        the estimator name written to predictions (default: ``config.model``).
    verbose
        Keras' ``verbose``: "auto", 0, 1 (progress bar) or 2 (a line an epoch).
    bound_cache
        with ``loss_weighting="bound"``, the folder of the training set's cached bounds
        (default: beside the set; `galaxies.inference.crb_sets.cache_path`).
    base
        a trained estimator (no uncertainty): train only a standard-deviation head on its
        frozen layers, with its scalers, split and stream (`galaxies.networks.training.uncertainty_head`);
        ``config`` is then its recipe with ``uncertainty=True`` and the head's epochs.

    The validation split, scalers, augmentation and schedule are described in
    `galaxies.networks.training`. Returns the trained model.
    """
    import keras

    from ..models import get_builder

    if out_dir is not None:
        check_model_dir(out_dir, force)  # before hours of training, not after
    if base is not None:
        check_base(config, base)
    given = None if base is None else dict(base.scalers)  # a head keeps its base's scalers
    keras.utils.set_random_seed(config.seed)
    if isinstance(data, files.Dataset):
        ds = data if config.limit is None else data.subset(slice(0, config.limit))
    else:
        ds = files.load_dataset(data, fields=input_fields(config, images, training=True),
                                rows=config.limit)
    if images is not None and config.limit is not None:
        images = images[:config.limit]
    if config.psf_channel and ds.psf_img is None:
        ds = files.load_dataset(ds.path, rows=config.limit)
    raw_images, psf, conditioning = dataset_arrays(ds, config, images, training=True)
    train, val = split_rows(len(raw_images), config.validation_fraction, config.seed)
    if config.train_rows is not None:
        if config.train_rows > len(train):
            raise InputError(f"train_rows = {config.train_rows}, but the split of {len(raw_images)} "
                             f"rows leaves {len(train)} to train on")
        train = train[:config.train_rows]

    def take(rows, scalers):
        return model_inputs(raw_images[rows], None if psf is None else psf[rows],
                            {k: v[rows] for k, v in conditioning.items()}, scalers, config.crop)

    if config.noise == "fresh":
        if images is not None:
            raise InputError("noise = 'fresh' draws noise on the set's noiseless images; "
                             "it cannot take replacement images")
        x_train, x_val, scalers, noise = fresh_noise_inputs(ds, raw_images, psf, conditioning,
                                                            train, val, config.seed,
                                                            config.noise_sigma, config.crop, given)
    else:
        x_train, scalers = take(train, given)
        x_val, _ = take(val, scalers)
        noise = None
    if base is None:
        scalers["label"] = Standardizer.fit(ds.label[train], axis=0, log=config.log_flags)
    y_val = scalers["label"].transform(ds.label[val])
    weights, label_loss_weights = None, None
    if config.loss_weighting != "none" or config.label_weights is not None:
        if config.label_weights is not None:
            bounds = LabelWeights(np.asarray(config.label_weights, np.float32))
        else:
            weigher = LabelWeights if config.loss_weighting == "label-bound" else BoundWeights
            bounds = weigher.for_training(ds, config, scalers, bound_cache, verbose not in (0, False), train)
        y_val = np.concatenate([y_val, bounds(val, tuple(x_val[1:]))], axis=-1)
        if isinstance(bounds, LabelWeights):
            label_loss_weights = [float(w) for w in bounds.weights]

        def weights(rows, extras):  # rows of the training split
            return bounds(train[rows], extras)
    batches = training_batches(x_train[0], np.asarray(ds.label[train], np.float32), scalers["label"],
                               config.batch_size, config.seed, config.augment,
                               extras=tuple(x_train[1:]), noise=noise, weights=weights)

    n_out = 2 * N_LABELS if config.uncertainty else N_LABELS
    try:
        model = (with_std_head(base.model) if base is not None else
                 get_builder(config.model)(input_shape=x_val[0].shape[1:],  # a model input, noisy or not
                                           n_conditioning=len(config.conditioning),
                                           n_outputs=n_out, **config.model_kwargs))
    except TypeError as err:  # an unknown size keyword: a user error, not a crash
        raise InputError(f"model {config.model!r} with sizes {config.model_kwargs}: {err}") from None
    steps = len(batches)
    loss = (LOSSES[config.uncertainty_loss] if config.uncertainty
            else bound_weighted_mse if weights is not None else "mse")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate(config, steps)), loss=loss,
                  metrics=[mean_mse] if config.uncertainty else None)
    recorded = RecordedFit(config.patience, plateau=config.schedule == "plateau",
                           average_epochs=config.average_epochs)
    recorded.fit(model, batches, validation_data=(x_val if len(x_val) > 1 else x_val[0], y_val),
                 validation_batch_size=even_batch(len(val)), epochs=config.epochs,
                 verbose=verbose, images_per_epoch=min(len(train), steps * config.batch_size))
    info = recorded.record(model, config, ds, train, val,
                           name=name or (Path(out_dir).name if out_dir is not None else None),
                           estimator=estimator or config.model,
                           frozen_base=None if base is None else str(base.path or base.name),
                           label_loss_weights=label_loss_weights)
    saved = SavedModel(model, scalers, info, history=recorded.history)
    if out_dir is not None:
        saved.save(out_dir, force=force)
    return saved


def fresh_noise_inputs(ds, clean, psf, conditioning, train, val, seed: int,
                       noise_sigma: tuple | None = None, crop: int | None = None,
                       scalers: dict | None = None):
    """With fresh noise (`galaxies.networks.training.noise`, seeded by ``seed``, read noise each row's
    own or drawn in ``noise_sigma``): the noiseless training images (the stream adds the
    noise), the scalers fitted on one noisy draw of them, the validation inputs (one fixed,
    seeded draw, so early stopping compares like with like) and the stream's ``noise``
    function, which returns the scaled inputs of an (oriented) batch of noiseless images.
    The noise is drawn on the whole stamp (a drawn sigma keeps the stamp's SNR in its
    window), then the inputs are cropped to ``crop``. Given ``scalers`` (a trained network's),
    they are used instead of fitted."""
    from .noise import FreshNoise

    fresh = FreshNoise(noise_sigma, seed)
    own = np.asarray(ds.sigma, np.float32)

    def inputs(images, rows, key, scalers):
        noisy, sigma = fresh.realize(images, own[rows], key)
        known = {k: (sigma if k == "sigma" else v[rows]) for k, v in conditioning.items()}
        return model_inputs(noisy, None if psf is None else psf[rows], known, scalers, crop)

    if scalers is None:  # the scalers of a noisy draw (no epoch's key)
        _, scalers = inputs(clean[train], train, (10**9,), None)
    scalers = dict(scalers)
    x_val, _ = inputs(clean[val], val, (10**9 + 1,), scalers)

    def noise(batch, rows, key):  # rows of the training split; batch (n, H, W, 1) noiseless
        x, _ = inputs(batch[..., 0], train[rows], key, scalers)
        return x[0], tuple(x[1:])

    return [np.asarray(clean[train], np.float32)[..., None]], x_val, scalers, noise


def image_pairs(ds, train, val, noise: str, seed: int, own_target_scaler: bool = False):
    """What an image-to-image network (a denoiser, the autoencoder's decoder) learns from: a
    noisy input and the noiseless image as its target, both in the same orientation.

    ``noise``: ``"fresh"``, a new draw of each noiseless training image at every showing
    (`fresh_noise_inputs`, the read noise each row's own; ``ds`` needs ``img_nonoise``), or
    ``"fixed"``, the set's noisy images (``ds`` needs ``img`` too). The input's scaler
    ``image`` is fitted on noisy training images (the set's, or one fresh draw); the target is
    scaled by it too, or, with ``own_target_scaler``, by its own ``target_image`` fitted on the
    noiseless ones. Returns ``(images, noise_fn, (x_val, y_val), scalers)``: ``images`` and
    ``noise_fn`` for `training_batches`, whose batches are then (n, H, W, 2) pairs of scaled
    input and target channels (`split_pair` separates them); the validation pair is fixed.
    """
    clean = np.asarray(ds.img_nonoise, np.float32)[..., None]
    if noise == "fresh":
        (images,), (x_val,), scalers, fresh = fresh_noise_inputs(ds, clean[..., 0], None, {},
                                                                 train, val, seed)
    else:
        (noisy,), scalers = model_inputs(ds.img[train])
        (x_val,), _ = model_inputs(ds.img[val], scalers=scalers)
    target = scalers["image"]
    if own_target_scaler:
        target = scalers["target_image"] = Standardizer.fit(clean[train], axis=(0, 1, 2))
    y_val = target.transform(clean[val])
    if noise != "fresh":
        return np.concatenate([noisy, target.transform(clean[train])], axis=-1), None, (x_val, y_val), scalers

    def noise_fn(batch, rows, key):  # batch (n, H, W, 1): noiseless, oriented by the stream
        x, _ = fresh(batch, rows, key)
        return np.concatenate([x, target.transform(batch)], axis=-1), ()

    return images, noise_fn, (x_val, y_val), scalers


def pair_fields(noise: str, ds: files.Dataset | None = None, who: str = "the network") -> tuple[str, ...]:
    """The fields `image_pairs` reads with ``noise``: the noiseless images, and the noisy ones
    for fixed noise. Given a loaded ``ds``, checks that they were loaded (a one-line error
    naming ``who`` otherwise)."""
    fields = ("img_nonoise",) if noise == "fresh" else ("img", "img_nonoise")
    if ds is not None and any(getattr(ds, f) is None for f in fields):
        raise InputError(f"{ds.path}: {who} with {noise} noise needs {' and '.join(fields)} loaded")
    return fields


def split_pair(pair: np.ndarray):
    """``(input, target)`` of a batch of `image_pairs`: its first and second channels."""
    return pair[..., :1], pair[..., 1:]


def even_batch(n: int, largest: int = 1024) -> int:
    """A batch size of at most ``largest`` that splits ``n`` rows into near-equal batches
    (one batch for up to ``largest`` rows, so the validation step is traced once)."""
    return math.ceil(n / math.ceil(n / largest))
