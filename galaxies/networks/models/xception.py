"""A compact Xception-style CNN that maps a galaxy image to its five parameters.

The network is a stem that brings the 64 x 64 image down to a coarse grid, residual blocks of
two 3 x 3 separable convolutions on that grid, an exit separable convolution with max-pooling,
global average pooling and a linear dense layer; SELU activations throughout, no batch
normalization (SELU keeps the activations standardized on its own).

Two stems, chosen by ``stem``:

* ``"conv"`` (the original study's network, `ORIGINAL_STUDY`): a 5 x 5 stride-2 convolution
  of 16 filters, so the blocks run on a 32 x 32 grid; 86,821 parameters. Its 17 separable
  convolutions of 64 filters on that grid are nearly all of the work (docs/benchmarks.md
  has the training speeds).
* ``"patch"`` (the default): space-to-depth, which rearranges each ``patch x patch``
  block of pixels into the channels of one cell without losing any information (64 x 64 x 1
  becomes 8 x 8 x 64 for ``patch=8``), then a 3 x 3 convolution of ``entry_filters`` over the
  cells (24 x 24 pixels). The blocks run on the coarse grid, 16 times fewer positions than the
  original study's. A galaxy spans a few pixels, so the stem sees each one whole; on the quick profile
  this network reached a lower validation loss than the 16 x 16 grid (``patch=4``) in
  less than half the CPU time.

Keras 3 only (``keras.layers``), so it builds under the TensorFlow and the JAX backends.
"""
from __future__ import annotations

import keras
from keras import layers

from galaxies.runtime.errors import InputError

#: The original study's architecture (blocks on a 32 x 32 grid), for comparison.
ORIGINAL_STUDY = dict(stem="conv", entry_filters=16, block_filters=64, blocks=8, exit_filters=128)
STEMS = ("patch", "conv")


def space_to_depth(x, patch: int):
    """``(H, W, C) -> (H / patch, W / patch, patch * patch * C)``: each ``patch x patch``
    block of pixels becomes one cell whose channels hold its pixels (row-major)."""
    height, width, channels = x.shape[1:]
    if height % patch or width % patch:
        raise InputError(f"image size {height} x {width} is not a multiple of patch = {patch}")
    h, w = height // patch, width // patch
    x = layers.Reshape((h, patch, w, patch, channels))(x)
    x = layers.Permute((1, 3, 2, 4, 5))(x)
    return layers.Reshape((h, w, patch * patch * channels))(x)


def build(input_shape=(64, 64, 1), n_conditioning: int = 0, n_outputs: int = 5,
          entry_filters: int = 64, block_filters: int = 64, blocks: int = 8,
          exit_filters: int = 128, activation: str = "selu", stem: str = "patch",
          patch: int = 8, linear_features: int = 0, name: str = "xception") -> keras.Model:
    """Build the estimator.

    Parameters
    ----------
    input_shape
        (height, width, channels) of the standardized image input; channel 1, when present, is
        the PSF image.
    n_conditioning
        length of an optional second input of known per-galaxy numbers (standardized PSF FWHM,
        noise sigma). It enters twice: as constant extra channels of the stem, so the
        convolutions can adapt to the PSF and noise, and next to the pooled features before a
        hidden dense layer.
    n_outputs
        5 for the labels; 10 when the network also predicts log standard deviations (see
        `galaxies.networks.training`).
    entry_filters
        filters of the stem convolution.
    block_filters
        filters of the separable convolutions in each residual block.
    blocks
        number of residual blocks.
    exit_filters
        filters of the exit separable convolution.
    activation
        activation of every hidden layer.
    stem
        ``"patch"`` (space-to-depth by ``patch``, then a 3 x 3 convolution) or ``"conv"`` (the
        original study's 5 x 5 stride-2 convolution).
    patch
        the space-to-depth factor of the ``"patch"`` stem (2, 4 or 8 for 64 px).
    linear_features
        the number of learned linear projections of the whole input image (0: none), given
        to the hidden dense layer and, past every activation, to the output layer. A flux is
        an amplitude: its best estimate at a known shape is a weighted sum of the pixels (a
        matched filter), which a linear path carries exactly while the convolutions and
        their activations only approximate it.

    The original study's network is ``build(**ORIGINAL_STUDY)``.
    """
    if stem not in STEMS:
        raise InputError(f"stem = {stem!r}; choose from {STEMS}")
    for key, value in dict(entry_filters=entry_filters, block_filters=block_filters,
                           exit_filters=exit_filters, patch=patch).items():
        if int(value) != value or value < 1:
            raise InputError(f"{key} = {value!r} must be a positive integer")
    for key, value in dict(blocks=blocks, linear_features=linear_features).items():
        if int(value) != value or value < 0:
            raise InputError(f"{key} = {value!r} must be a non-negative integer")
    image = keras.Input(tuple(input_shape), name="image")
    inputs = [image]
    conditioning = None
    if n_conditioning:
        conditioning = keras.Input((n_conditioning,), name="conditioning")
        inputs.append(conditioning)

    x = image
    if stem == "patch" and patch > 1:
        x = space_to_depth(x, patch)
    if conditioning is not None:
        x = layers.Concatenate()([x, _as_channels(conditioning, x.shape[1:3])])
    if stem == "conv":
        x = layers.Conv2D(entry_filters, 5, strides=2, padding="same", activation=activation)(x)
    else:
        x = layers.Conv2D(entry_filters, 3, padding="same", activation=activation)(x)
    x = layers.Conv2D(block_filters, 1, activation=activation)(x)
    for _ in range(blocks):
        shortcut = x
        x = layers.SeparableConv2D(block_filters, 3, padding="same", activation=activation)(x)
        x = layers.SeparableConv2D(block_filters, 3, padding="same")(x)
        x = layers.Activation(activation)(layers.Add()([shortcut, x]))
    x = layers.SeparableConv2D(exit_filters, 3, padding="same", activation=activation)(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    linear = (layers.Dense(linear_features, name="linear_features")(layers.Flatten()(image))
              if linear_features else None)
    known = [v for v in (conditioning, linear) if v is not None]
    if known:
        x = layers.Concatenate()([x, *known])
        x = layers.Dense(exit_filters, activation=activation)(x)
    if linear is not None:
        x = layers.Concatenate()([x, linear])
    outputs = layers.Dense(n_outputs, name="labels")(x)
    return keras.Model(inputs, outputs, name=name)


def _as_channels(values, grid):
    """Known numbers ``(N, k)`` repeated over a ``grid`` as ``(N, h, w, k)`` channels."""
    h, w = grid
    x = layers.Reshape((1, 1, values.shape[-1]))(values)
    return layers.UpSampling2D((h, w))(x)
