"""The AutoKeras experiment (``experiments/autokeras/``): the architecture search and its pick.

The search (`search`) is an AutoKeras ``AutoModel``: an image input, one `galaxy block` that
chooses among AutoKeras's vanilla ``ConvBlock``, ``ResNetBlock`` and ``XceptionBlock`` (the
types listed in the profile), with or without AutoKeras's per-channel ``Normalization``, and a
``RegressionHead`` of five outputs; regularization is the blocks' and the head's dropout
choices. After a few random trials, keras-tuner's Bayesian optimization (a Gaussian process
fitted to the scores so far) proposes the next ones. It runs on
the first ``profile.autokeras_rows`` rows of v1, once on the noisy images and once on the
noiseless ones (``profile.autokeras_variants``), with the split, the input standardization and
the label scaling of `galaxies.networks.training.fit`, so its validation score (the MSE of the standardized
labels) is comparable to the other estimators' ``best_val_loss``.

The trials stay under ``results/<profile>/autokeras/<variant>/``: keras-tuner's project (one
folder per trial) and ``trials.json`` (score, parameter count, seconds and hyper-parameters of
every trial). ``best.json`` there holds the pick's architecture as a plain Keras model config.

The pick is retrained with `galaxies.networks.training.fit` (model ``"autokeras"``, see `galaxies.networks.models.architecture`) on the
profile's full v1 set, on the fresh-noise stream (`galaxies.networks.training.noise`: a new noisy draw of
each noiseless image at every showing; the search's trials train inside AutoKeras on the fixed
noisy images), and saved in the `galaxies.networks.training.SavedModel` layout
(``models/<profile>/autokeras_v1``), so `galaxies.evaluation.estimators` and the app use it
without importing AutoKeras.

Patches and pitfalls (AutoKeras 3.0.0 with Keras 3.15, measured here; docs/architecture.md lists the pitfalls):

* ``RegressionHead.build`` passes ``self.shape[-1]`` to ``keras.layers.Dense`` as a numpy
  integer, which Keras 3.15 rejects ("expected a positive integer. Received: units=5").
  `patch_autokeras` wraps it to cast the shape to ``int`` first; it changes nothing in
  site-packages and is applied (once) at run time by `search`.
* ResNet and Xception blocks are ``keras.applications`` models (21-24 M parameters, inputs
  resized to at least 32 or 71 pixels). They are always built with ``pretrained=False`` (there
  is no network at run time), with the ``imagenet_size`` choice fixed to False (224-pixel inputs
  have (224 / 64)^2, about 12, times the pixels) and ResNet fixed to ``resnet50_v2``. On a
  CPU an epoch of these blocks costs tens to a hundred times a ConvBlock's
  (docs/benchmarks.md), so the smoke and quick profiles search ConvBlocks only (with max-pooling after each block: see ``profile.autokeras_conv``).
* The exported model starts with AutoKeras's ``CastToFloat32`` layer, which plain Keras cannot
  load; `plain_architecture` replaces it (and the adapted ``Normalization``, redundant on
  standardized inputs) by ``Identity``.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

from galaxies.runtime import profiles
from galaxies.runtime.errors import InputError
from galaxies.storage import atomic, files

from .autokeras_space import BLOCK_TYPES, conv_block_arguments, patch_autokeras, search_classes

VARIANTS = {"noisy": "img", "noiseless": "img_nonoise"}
TRIALS_FILE, BEST_FILE = "trials.json", "best.json"
ESTIMATOR = "autokeras"


# ------------------------------------------------------------------------------- data

def search_data(profile=None, variant: str = "noisy", rows: int | None = None, seed: int = 0,
                validation_fraction: float = 0.1):
    """``(x_train, y_train, x_val, y_val, scalers)`` for a search: the first ``rows`` rows of
    v1 (default ``profile.autokeras_rows``), split, standardized and scaled as
    `galaxies.networks.training.fit` does; images (N, 64, 64, 1), labels (N, 5)."""
    from galaxies.networks.training import Standardizer, model_inputs, split_rows

    if variant not in VARIANTS:
        raise InputError(f"variant = {variant!r}; choose from {list(VARIANTS)}")
    profile = profiles.get(profile)
    rows = profile.autokeras_rows if rows is None else rows
    ds = files.load_dataset(profile.dataset("v1"), fields=(VARIANTS[variant],), rows=rows)
    images = getattr(ds, VARIANTS[variant])
    train, val = split_rows(len(ds), validation_fraction, seed)
    (x_train,), scalers = model_inputs(images[train])
    (x_val,), _ = model_inputs(images[val], scalers=scalers)
    scalers["label"] = Standardizer.fit(ds.label[train], axis=0)
    return (x_train, scalers["label"].transform(ds.label[train]), x_val,
            scalers["label"].transform(ds.label[val]), scalers)


# ----------------------------------------------------------------------------- search

def search(x_train, y_train, x_val, y_val, folder, *, block_types=("vanilla",),
           conv: dict | None = None, max_trials: int = 2, epochs: int = 1, batch_size: int = 64,
           patience: int = 2, seed: int = 0, initial_points: int | None = None, verbose: int = 0):
    """Run an AutoKeras search and keep its trials in ``folder``; returns the trials as a
    DataFrame (see `load_trials`), best first.

    Parameters
    ----------
    block_types
        block types searched, from ``BLOCK_TYPES``.
    conv
        the ConvBlock's choices: keyword (``filters``, ``kernel_size``, ``num_blocks``,
        ``num_layers``, ``dropout``, ``max_pooling``, ``separable``) -> a list of choices or one
        fixed value.
    max_trials
        trials (each trains one model): ``initial_points`` drawn at random (default ``max(2,
        max_trials // 3)``; keras-tuner's own default, three per hyper-parameter, would leave
        every trial of a small budget random), the rest proposed by the Gaussian-process
        Bayesian optimization.
    epochs
        epochs per trial (with early stopping of ``patience`` epochs).

    The search starts afresh (keras-tuner's ``overwrite``). Nothing is refitted after it: the
    best trial's weights are kept (``best_model.keras`` in the project folder).
    """
    import autokeras as ak
    import keras

    bad = [b for b in block_types if b not in BLOCK_TYPES]
    if bad or not block_types:
        raise InputError(f"block_types {list(block_types)}: choose one or more of {BLOCK_TYPES}")
    if max_trials < 1 or epochs < 1:
        raise InputError(f"max_trials = {max_trials} and epochs = {epochs} must be at least 1")
    initial_points = max(2, max_trials // 3) if initial_points is None else initial_points
    if initial_points < 1:
        raise InputError(f"initial_points = {initial_points} must be at least 1")
    patch_autokeras()
    classes = search_classes()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    image = ak.ImageInput()
    conv = dict(conv or {})
    conv_block_arguments(conv)  # bad keywords fail here, before the search starts
    features = classes["GalaxyBlock"](block_types=block_types, conv=conv)(image)
    head = ak.RegressionHead(output_dim=y_train.shape[1], metrics=["mse"])(features)
    auto_model = ak.AutoModel(image, head, project_name="search", directory=str(folder),
                              max_trials=max_trials, tuner=classes["RecordingTuner"],
                              overwrite=True, seed=seed, num_initial_points=initial_points)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # harmless: AutoKeras feeds a tensor to a one-input functional model, and reloads the
        # best trial without its optimizer state
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        warnings.filterwarnings("ignore", message="All-NaN")  # a trial that diverged
        # the Gaussian process fitted to a handful of scores hits its length-scale bounds
        warnings.filterwarnings("ignore", message="The optimal value found for dimension")
        # An EarlyStopping of our own and explicit validation data: AutoKeras then keeps the
        # best trial as trained instead of refitting it on train + validation.
        auto_model.fit(np.asarray(x_train, np.float32), np.asarray(y_train, np.float32),
                       validation_data=(np.asarray(x_val, np.float32), np.asarray(y_val, np.float32)),
                       epochs=epochs, batch_size=batch_size, verbose=verbose,
                       callbacks=[keras.callbacks.EarlyStopping(patience=patience)])
        seconds = time.perf_counter() - start
        best = auto_model.export_model()
    tuner = auto_model.tuner
    records = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        extra = tuner.records.get(trial_id, {})
        values = dict(trial.hyperparameters.values)
        records.append({
            "trial": trial_id, "status": str(trial.status),
            "val_loss": None if trial.score is None or not np.isfinite(trial.score) else float(trial.score),
            "parameters": extra.get("parameters"), "seconds": extra.get("seconds"),
            "block_type": next((v for k, v in values.items() if k.endswith("/block_type")), None),
            "epochs_run": None if trial.best_step is None else int(trial.best_step) + 1,
            "hyperparameters": values,
        })
    summary = {"trials": records, "search_seconds": round(seconds, 2),
               "train_rows": int(len(x_train)), "validation_rows": int(len(x_val)),
               "block_types": list(block_types), "conv": conv,
               "max_trials": max_trials, "initial_points": initial_points, "epochs": epochs,
               "seed": seed}
    architecture = plain_architecture(best)
    # the oracle's best trial is the one export_model returned (diverged trials score NaN)
    best_id = tuner.oracle.get_best_trials(1)[0].trial_id
    best_record = next(r for r in records if r["trial"] == best_id)
    atomic.write_json(folder / TRIALS_FILE, summary)
    atomic.write_json(folder / BEST_FILE, {**best_record, "parameters": int(best.count_params()),
                                     "architecture": architecture})
    return load_trials(folder)


def variant_folder(profile, variant: str) -> Path:
    """Where a search of the profile keeps its trials: ``results/<profile>/autokeras/<variant>``."""
    return profiles.get(profile).results_dir / "autokeras" / variant


def search_profile(profile=None, variants=None, verbose: int = 0) -> "dict":
    """Run the profile's search for each image variant (``profile.autokeras_variants``);
    returns the trial tables by variant."""
    profile = profiles.get(profile)
    out = {}
    for variant in variants or profile.autokeras_variants:
        x_train, y_train, x_val, y_val, _ = search_data(profile, variant)
        out[variant] = search(
            x_train, y_train, x_val, y_val, variant_folder(profile, variant),
            block_types=profile.autokeras_blocks, conv=profile.autokeras_conv,
            max_trials=profile.autokeras_trials, epochs=profile.autokeras_epochs,
            batch_size=min(profile.autokeras_batch_size or profile.batch_size, len(x_train)),
            patience=profile.patience,
            verbose=verbose)
    return out


def load_trials(folder):
    """The trials kept in ``folder`` (``trials.json``) as a DataFrame, best score first:
    trial, status, val_loss, parameters, seconds, block_type, epochs_run, and one column per
    hyper-parameter (``conv.filters_0_0``, ``head.dropout``, ``optimizer`` ...)."""
    import pandas as pd

    path = Path(folder) / TRIALS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the AutoKeras search first")
    records = json.loads(path.read_text())["trials"]
    rows = []
    for record in records:
        hp = {_short_name(key): value for key, value in record["hyperparameters"].items()
              if not key.endswith("/block_type")}
        rows.append({**{k: v for k, v in record.items() if k != "hyperparameters"}, **hp})
    frame = pd.DataFrame(rows)
    return frame.sort_values("val_loss", na_position="last").reset_index(drop=True)


_SHORT = ((r"galaxy_block_\d+/", ""), (r"conv_block_\d+/", "conv."), (r"res_net_block_\d+/", "resnet."),
          (r"xception_block_\d+/", "xception."), (r"regression_head_\d+/", "head."),
          (r"normalization_\d+/", "normalization."))


def _short_name(key: str) -> str:
    """``galaxy_block_1/conv_block_1/filters_0_0`` -> ``conv.filters_0_0``."""
    import re
    for pattern, replacement in _SHORT:
        key = re.sub(pattern, replacement, key)
    return key


def load_best(profile=None, variant: str = "noisy") -> dict:
    """The best trial of a kept search (``best.json``): score, size, hyper-parameters and the
    plain Keras ``architecture``."""
    path = variant_folder(profile, variant) / BEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the AutoKeras search first")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------- architecture

def plain_architecture(model) -> dict:
    """The serialized config of a plain-Keras copy of an AutoKeras model (fresh weights).

    AutoKeras's ``CastToFloat32`` and Keras ``Normalization`` layers become ``Identity``: the
    inputs of every estimator are already float32 and standardized (`galaxies.networks.training`).
    """
    import keras

    def clone(layer):
        if type(layer).__name__ == "CastToFloat32" or isinstance(layer, keras.layers.Normalization):
            return keras.layers.Identity(name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    plain = keras.models.clone_model(model, clone_function=clone)
    config = keras.saving.serialize_keras_object(plain)
    json.dumps(config)  # fails here, not later, if something is not JSON
    return config


def retrain_best(profile=None, variant: str = "noisy", verbose="auto", **overrides):
    """Retrain the best architecture of a kept search on the profile's v1 set
    (``profile.autokeras_retrain_limit`` rows, ``profile.autokeras_retrain_epochs`` epochs) with
    `galaxies.networks.training.fit` on the fresh-noise stream (a new noisy draw of each noiseless image
    at every showing; ``noise="fixed"`` trains on the set's noisy images, the original study's way), save
    it to ``models/<profile>/autokeras_v1`` and return it. Keyword arguments replace
    `galaxies.networks.training.TrainingConfig` fields. The search itself ran on fixed noisy images,
    inside AutoKeras."""
    from galaxies.networks.training import TrainingConfig, fit

    profile = profiles.get(profile)
    best = load_best(profile, variant)
    base = dict(model=ESTIMATOR, inputs="noisy", noise="fresh",
                epochs=profile.autokeras_retrain_epochs, batch_size=profile.batch_size,
                patience=profile.patience, limit=profile.autokeras_retrain_limit,
                model_kwargs={"architecture": best["architecture"]})
    config = TrainingConfig(**{**base, **overrides})
    return fit(config, profile.dataset("v1"), profile.model_dir(ESTIMATOR, "v1"),
               estimator=ESTIMATOR, verbose=verbose)
