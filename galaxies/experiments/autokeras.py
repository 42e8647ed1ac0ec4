"""AutoKeras architecture search for the five galaxy parameters, and retraining of its pick.

The search (`search`) is an AutoKeras ``AutoModel``: an image input, one `galaxy block` that
chooses among AutoKeras's vanilla ``ConvBlock``, ``ResNetBlock`` and ``XceptionBlock`` (the
types listed in the profile), with or without AutoKeras's per-channel ``Normalization``, and a
``RegressionHead`` of five outputs; regularization is the blocks' and the head's dropout
choices. After a few random trials, keras-tuner's Bayesian optimization (a Gaussian process
fitted to the scores so far) proposes the next ones. It runs on
the first ``profile.autokeras_rows`` rows of v1, once on the noisy images and once on the
noiseless ones (``profile.autokeras_variants``), with the split, the input standardization and
the label scaling of `galaxies.train.fit`, so its validation score (the MSE of the standardized
labels) is comparable to the other estimators' ``best_val_loss``.

The trials stay under ``results/<profile>/autokeras/<variant>/``: keras-tuner's project (one
folder per trial) and ``trials.json`` (score, parameter count, seconds and hyper-parameters of
every trial). ``best.json`` there holds the pick's architecture as a plain Keras model config.

The pick is retrained with `galaxies.train.fit` (model ``"autokeras"``, see `build`) on the
profile's full v1 set and saved in the `galaxies.train.SavedModel` layout
(``models/<profile>/autokeras_v1``), so `galaxies.train.predict_file` and the app use it
without importing AutoKeras.

Patches and pitfalls (AutoKeras 3.0.0 with Keras 3.15, measured here; see DESIGN.md):

* ``RegressionHead.build`` passes ``self.shape[-1]`` to ``keras.layers.Dense`` as a numpy
  integer, which Keras 3.15 rejects ("expected a positive integer. Received: units=5").
  `patch_autokeras` wraps it to cast the shape to ``int`` first; it changes nothing in
  site-packages and is applied (once) at run time by `search`.
* ResNet and Xception blocks are ``keras.applications`` models (21-24 M parameters, inputs
  resized to at least 32 or 71 pixels). They are always built with ``pretrained=False`` (there
  is no network at run time), with the ``imagenet_size`` choice fixed to False (224-pixel inputs
  have (224 / 64)^2, about 12, times the pixels) and ResNet fixed to ``resnet50_v2``. On the
  project's 2-core CPU, shared with other jobs, one epoch of 160 images took 116 s (ResNet50V2)
  and 32 s (Xception), against seconds for a ConvBlock, so the smoke and quick profiles search
  ConvBlocks only (with max-pooling after each block: see ``profile.autokeras_conv``).
* The exported model starts with AutoKeras's ``CastToFloat32`` layer, which plain Keras cannot
  load; `plain_architecture` replaces it (and the adapted ``Normalization``, redundant on
  standardized inputs) by ``Identity``.
"""
from __future__ import annotations

import copy
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from . import io, profiles

BLOCK_TYPES = ("vanilla", "resnet", "xception")
VARIANTS = {"noisy": "img", "noiseless": "img_nonoise"}
TRIALS_FILE, BEST_FILE = "trials.json", "best.json"
ESTIMATOR = "autokeras"


# ---------------------------------------------------------------------------- the patch

def patch_autokeras() -> bool:
    """Make AutoKeras 3.0.0's ``RegressionHead`` pass an ``int`` unit count to ``Dense``.

    Idempotent; returns True when the patch was applied by this call. The head's ``shape``
    comes from the analysed targets as numpy integers, and Keras 3.15's ``Dense`` accepts only
    Python ``int`` units.
    """
    from autokeras.blocks import heads

    head = heads.RegressionHead
    if getattr(head.build, "_galaxies_patch", False):
        return False
    original = head.build

    def build(self, hp, inputs=None):
        if getattr(self, "shape", None) is not None:
            self.shape = tuple(int(s) for s in self.shape)
        return original(self, hp, inputs)

    build._galaxies_patch = True
    build.__doc__ = original.__doc__
    head.build = build
    return True


# ------------------------------------------------------------------- the search space

_CLASSES: dict = {}


def _classes():
    """The AutoKeras block and tuner classes of this module, defined on first use (they
    subclass AutoKeras classes, and AutoKeras is slow to import)."""
    if _CLASSES:
        return _CLASSES
    import autokeras as ak
    import keras
    from autokeras.tuners import BayesianOptimization
    from keras_tuner.engine import hyperparameters as hps

    class GalaxyBlock(ak.Block):
        """Chooses a ConvBlock, ResNetBlock or XceptionBlock (``block_type``), optionally after
        a per-channel normalization; ResNet and Xception never load pretrained weights."""

        def __init__(self, block_types=BLOCK_TYPES, conv=None, **kwargs):
            super().__init__(**kwargs)
            self.block_types, self.conv = list(block_types), dict(conv or {})

        def get_config(self):
            config = super().get_config()
            config.update(block_types=self.block_types, conv=self.conv)
            return config

        def build(self, hp, inputs=None):
            x = keras.tree.flatten(inputs)[0]
            if hp.Boolean("normalize", default=False):
                with hp.conditional_scope("normalize", [True]):
                    x = ak.Normalization().build(hp, x)
            block_type = hp.Choice("block_type", self.block_types)
            with hp.conditional_scope("block_type", [block_type]):
                if block_type == "vanilla":
                    return ak.ConvBlock(**conv_block_arguments(self.conv, hps.Choice)).build(hp, x)
                block = (ak.ResNetBlock(version="v2", pretrained=False) if block_type == "resnet"
                         else ak.XceptionBlock(pretrained=False))
                # Fix choices the block would otherwise tune: 224-pixel resizing, ResNet depth.
                with hp.name_scope(block.name):
                    hp.Fixed("imagenet_size", False)
                    if block_type == "resnet":
                        hp.Fixed("version", "resnet50_v2")
                return block.build(hp, x)

    class RecordingTuner(BayesianOptimization):
        """Bayesian optimization that also records each trial's parameter count and time."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.records: dict[str, dict] = {}
            self._trial_id = None

        def _try_build(self, hp):
            model = super()._try_build(hp)
            if self._trial_id is not None:
                self.records.setdefault(self._trial_id, {})["parameters"] = int(model.count_params())
            return model

        def _build_and_fit_model(self, trial, *args, **kwargs):
            self._trial_id = trial.trial_id
            start = time.perf_counter()
            try:
                return super()._build_and_fit_model(trial, *args, **kwargs)
            finally:
                self.records.setdefault(trial.trial_id, {})["seconds"] = round(
                    time.perf_counter() - start, 2)
                self._trial_id = None

    _CLASSES.update(GalaxyBlock=GalaxyBlock, RecordingTuner=RecordingTuner)
    return _CLASSES


CONV_CHOICES = ("kernel_size", "num_blocks", "num_layers", "filters", "dropout")
CONV_FLAGS = ("max_pooling", "separable")


def conv_block_arguments(conv: dict, choice=None) -> dict:
    """Keyword arguments of AutoKeras's ``ConvBlock`` from a profile's ``autokeras_conv``.

    A list becomes a choice of the search (``choice(name, values)``: keras-tuner's ``Choice``;
    for the flags ``max_pooling`` and ``separable`` a list of both values leaves them searched);
    a single value is fixed. With ``choice`` None, only checks the keywords.
    """
    bad = [k for k in conv if k not in CONV_CHOICES + CONV_FLAGS]
    if bad:
        raise ValueError(f"ConvBlock keyword(s) {bad} not understood; choose from "
                         f"{CONV_CHOICES + CONV_FLAGS}")
    out = {}
    for key, value in conv.items():
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values:
            raise ValueError(f"autokeras_conv[{key!r}] is an empty list")
        if key in CONV_FLAGS:
            if len(set(values)) == 1:
                out[key] = bool(values[0])
        elif choice is not None:
            cast = float if key == "dropout" else int
            values = [cast(v) for v in values]
            out[key] = values[0] if len(values) == 1 else choice(key, values)
    return out


# ------------------------------------------------------------------------------- data

def search_data(profile=None, variant: str = "noisy", rows: int | None = None, seed: int = 0,
                validation_fraction: float = 0.1):
    """``(x_train, y_train, x_val, y_val, scalers)`` for a search: the first ``rows`` rows of
    v1 (default ``profile.autokeras_rows``), split, standardized and scaled as
    `galaxies.train.fit` does; images (N, 64, 64, 1), labels (N, 5)."""
    from .train import Standardizer, model_inputs, split_rows

    if variant not in VARIANTS:
        raise ValueError(f"variant = {variant!r}; choose from {list(VARIANTS)}")
    profile = profiles.get(profile)
    rows = profile.autokeras_rows if rows is None else rows
    ds = io.load_dataset(profile.dataset("v1"), fields=(VARIANTS[variant],), rows=rows)
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

    Parameters:
        block_types:  block types searched, from ``BLOCK_TYPES``.
        conv:         the ConvBlock's choices: keyword (``filters``, ``kernel_size``,
                      ``num_blocks``, ``num_layers``, ``dropout``, ``max_pooling``,
                      ``separable``) -> a list of choices or one fixed value.
        max_trials:   trials (each trains one model): ``initial_points`` drawn at random
                      (default ``max(2, max_trials // 3)``; keras-tuner's own default, three
                      per hyper-parameter, would leave every trial of a small budget random),
                      the rest proposed by the Gaussian-process Bayesian optimization.
        epochs:       epochs per trial (with early stopping of ``patience`` epochs).

    The search starts afresh (keras-tuner's ``overwrite``). Nothing is refitted after it: the
    best trial's weights are kept (``best_model.keras`` in the project folder).
    """
    import autokeras as ak
    import keras

    bad = [b for b in block_types if b not in BLOCK_TYPES]
    if bad or not block_types:
        raise ValueError(f"block_types {list(block_types)}: choose one or more of {BLOCK_TYPES}")
    if max_trials < 1 or epochs < 1:
        raise ValueError(f"max_trials = {max_trials} and epochs = {epochs} must be at least 1")
    initial_points = max(2, max_trials // 3) if initial_points is None else initial_points
    if initial_points < 1:
        raise ValueError(f"initial_points = {initial_points} must be at least 1")
    patch_autokeras()
    classes = _classes()
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
    _write_json(folder / TRIALS_FILE, summary)
    _write_json(folder / BEST_FILE, {**best_record, "parameters": int(best.count_params()),
                                     "architecture": architecture})
    return load_trials(folder)


def _write_json(path: Path, value) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    tmp.write_text(json.dumps(value, indent=1, default=str))
    os.replace(tmp, path)


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
    inputs of every estimator are already float32 and standardized (`galaxies.train`).
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


def build(input_shape=(64, 64, 1), n_conditioning: int = 0, n_outputs: int = 5,
          architecture: dict | None = None):
    """Builder of `galaxies.models` for model ``"autokeras"``: a fresh model of the searched
    ``architecture`` (from `plain_architecture`), checked against the expected shapes."""
    import keras

    if architecture is None:
        raise ValueError("the autokeras builder needs model_kwargs={'architecture': ...} "
                         "(see galaxies.autokeras_search.load_best)")
    if n_conditioning:
        raise ValueError("an AutoKeras architecture takes the image only (n_conditioning = 0)")
    # deserialization consumes the dict it is given; the caller's (a training config) stays whole
    model = keras.saving.deserialize_keras_object(copy.deepcopy(architecture))
    if tuple(model.input_shape[1:]) != tuple(input_shape):
        raise ValueError(f"the architecture takes inputs of shape {model.input_shape[1:]}, "
                         f"not {tuple(input_shape)}")
    if model.output_shape[-1] != n_outputs:
        raise ValueError(f"the architecture has {model.output_shape[-1]} outputs, not {n_outputs}")
    return model


def retrain_best(profile=None, variant: str = "noisy", verbose="auto"):
    """Retrain the best architecture of a kept search on the profile's v1 set
    (``profile.autokeras_retrain_limit`` rows, ``profile.autokeras_retrain_epochs`` epochs) with
    `galaxies.train.fit`, save it to ``models/<profile>/autokeras_v1`` and return it."""
    from .train import TrainingConfig, fit

    profile = profiles.get(profile)
    best = load_best(profile, variant)
    config = TrainingConfig(model=ESTIMATOR, inputs="noisy", epochs=profile.autokeras_retrain_epochs,
                            batch_size=profile.batch_size, patience=profile.patience,
                            limit=profile.autokeras_retrain_limit,
                            model_kwargs={"architecture": best["architecture"]})
    return fit(config, profile.dataset("v1"), profile.model_dir(ESTIMATOR, "v1"),
               estimator=ESTIMATOR, verbose=verbose)


def block_sizes(block_types=BLOCK_TYPES, input_shape=(64, 64, 1)) -> dict[str, int]:
    """Parameters of AutoKeras's ResNet and Xception blocks as the search would build them
    (``pretrained=False``), and of its default ConvBlock, each with a five-unit head: the price
    of admitting a block type to the search."""
    import autokeras as ak
    import keras
    import keras_tuner

    patch_autokeras()
    sizes = {}
    for block_type in block_types:
        hp = keras_tuner.HyperParameters()
        block = {"vanilla": lambda: ak.ConvBlock(), "resnet": lambda: ak.ResNetBlock(
            version="v2", pretrained=False), "xception": lambda: ak.XceptionBlock(pretrained=False)}[block_type]()
        if block_type != "vanilla":
            with hp.name_scope(block.name):
                hp.Fixed("imagenet_size", False)
                if block_type == "resnet":
                    hp.Fixed("version", "resnet50_v2")
        inputs = keras.Input(input_shape)
        x = keras.layers.Flatten()(block.build(hp, inputs))
        sizes[block_type] = int(keras.Model(inputs, keras.layers.Dense(5)(x)).count_params())
        keras.backend.clear_session()
    return sizes
