"""A compact Xception-style CNN that maps a galaxy image to its five parameters.

The seed's network (about 109,000 parameters): a 5 x 5 stride-2 convolution of 16 filters,
residual blocks of two 3 x 3 separable convolutions, an exit block of separable convolutions
with max-pooling, global average pooling and a linear dense layer; SELU activations.
Keras 3 only (``keras.layers``), so it builds under the TensorFlow and the JAX backends.
"""
from __future__ import annotations

import keras
from keras import layers


def build(input_shape=(64, 64, 1), n_conditioning: int = 0, n_outputs: int = 5,
          entry_filters: int = 16, block_filters: int = 64, blocks: int = 8,
          exit_filters: int = 128, activation: str = "selu", name: str = "xception") -> keras.Model:
    """Build the estimator.

    Parameters:
        input_shape:     (height, width, channels) of the standardized image input.
        n_conditioning:  length of an optional second input of known per-galaxy numbers
                         (e.g. PSF FWHM and noise sigma), joined before the output layer.
        n_outputs:       5 for the labels; 10 when the network also predicts log standard
                         deviations (see `galaxies.train`).
        entry_filters:   filters of the 5 x 5 stride-2 entry convolution.
        block_filters:   filters of the separable convolutions in each residual block.
        blocks:          number of residual blocks.
        exit_filters:    filters of the exit block.
    """
    image = keras.Input(input_shape, name="image")
    x = layers.Conv2D(entry_filters, 5, strides=2, padding="same", activation=activation)(image)
    x = layers.Conv2D(block_filters, 1, activation=activation)(x)
    for _ in range(blocks):
        shortcut = x
        x = layers.SeparableConv2D(block_filters, 3, padding="same", activation=activation)(x)
        x = layers.SeparableConv2D(block_filters, 3, padding="same")(x)
        x = layers.Activation(activation)(layers.Add()([shortcut, x]))
    x = layers.SeparableConv2D(exit_filters, 3, padding="same", activation=activation)(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    inputs = [image]
    if n_conditioning:
        conditioning = keras.Input((n_conditioning,), name="conditioning")
        inputs.append(conditioning)
        x = layers.Concatenate()([x, conditioning])
        x = layers.Dense(exit_filters, activation=activation)(x)
    outputs = layers.Dense(n_outputs, name="labels")(x)
    return keras.Model(inputs, outputs, name=name)
