"""The AutoKeras search space of the AutoKeras experiment, and the patch AutoKeras 3.0.0 needs.

`search_classes` defines, on first use, the block that chooses among AutoKeras's ConvBlock,
ResNetBlock and XceptionBlock and the tuner that records each trial's size and time;
`conv_block_arguments` turns a profile's ``autokeras_conv`` into ConvBlock choices;
`block_sizes` prices each block type; `patch_autokeras` fixes ``RegressionHead`` for Keras 3.15.
"""
from __future__ import annotations

import time

from galaxies.runtime.errors import InputError

__all__ = ["BLOCK_TYPES", "patch_autokeras", "search_classes", "conv_block_arguments",
           "block_sizes", "CONV_CHOICES", "CONV_FLAGS"]

BLOCK_TYPES = ("vanilla", "resnet", "xception")


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


def search_classes():
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
        raise InputError(f"ConvBlock keyword(s) {bad} not understood; choose from "
                         f"{CONV_CHOICES + CONV_FLAGS}")
    out = {}
    for key, value in conv.items():
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values:
            raise InputError(f"autokeras_conv[{key!r}] is an empty list")
        if key in CONV_FLAGS:
            if len(set(values)) == 1:
                out[key] = bool(values[0])
        elif choice is not None:
            cast = float if key == "dropout" else int
            values = [cast(v) for v in values]
            out[key] = values[0] if len(values) == 1 else choice(key, values)
    return out


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
