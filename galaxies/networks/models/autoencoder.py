"""Builders of the autoencoder whose latent vector *is* the five galaxy parameters.

The encoder (an Xception, `galaxies.networks.models.xception.build`) maps a noisy image to five numbers;
the decoder maps those five numbers back to the noiseless image. How it is trained and saved:
`galaxies.networks.training.autoencoder`. Keras 3 only (``keras.layers``), like every builder here.
"""
from __future__ import annotations

from galaxies.conventions import IMAGE_SIZE, LABEL_COLUMNS
from galaxies.runtime.errors import InputError

__all__ = ["build_encoder", "build_decoder", "build_autoencoder", "N_LATENT"]

N_LATENT = len(LABEL_COLUMNS)  # the latent vector is the five labels, nothing more


def build_encoder(input_shape=(IMAGE_SIZE, IMAGE_SIZE, 1), entry_filters: int = 16,
                  block_filters: int = 64, blocks: int = 8, exit_filters: int = 128,
                  activation: str = "selu"):
    """The encoder: the project's Xception-style CNN with a five-unit linear output.

    Its output (layer ``labels``) is the latent vector: the five standardized labels, in the
    column order of `galaxies.conventions.LABEL_COLUMNS`. Sizes as in `galaxies.networks.models.xception`.
    """
    from .xception import build
    return build(input_shape=tuple(input_shape), n_conditioning=0, n_outputs=N_LATENT,
                 entry_filters=entry_filters, block_filters=block_filters, blocks=blocks,
                 exit_filters=exit_filters, activation=activation, name="encoder")


def build_decoder(filters: int = 32, image_size: int = IMAGE_SIZE, activation: str = "selu"):
    """The decoder: five standardized labels -> a standardized noiseless image (size, size, 1).

    A dense layer spreads the labels over an 8 x 8 grid of ``4 * filters`` channels; three
    upsampling stages (x2 nearest-neighbour, then two 3 x 3 convolutions; channels 4f, 2f, f)
    reach 64 x 64, and a linear 3 x 3 convolution gives the single image channel.
    Upsampling + convolution rather than transposed convolution avoids checkerboard artefacts.
    """
    import keras
    from keras import layers

    if filters < 1:
        raise InputError(f"decoder filters = {filters} must be at least 1")
    stages = 3
    start = image_size // 2 ** stages
    if start * 2 ** stages != image_size or start < 1:
        raise InputError(f"image_size = {image_size} must be a multiple of {2 ** stages}")
    latent = keras.Input((N_LATENT,), name="labels")
    x = layers.Dense(start * start * 4 * filters, activation=activation)(latent)
    x = layers.Reshape((start, start, 4 * filters))(x)
    for width in (4 * filters, 2 * filters, filters):
        x = layers.UpSampling2D(2)(x)
        x = layers.Conv2D(width, 3, padding="same", activation=activation)(x)
        x = layers.Conv2D(width, 3, padding="same", activation=activation)(x)
    image = layers.Conv2D(1, 3, padding="same", name="image")(x)
    return keras.Model(latent, image, name="decoder")


def build_autoencoder(encoder, decoder):
    """The trainable pair: image -> ``{"labels": encoder(image), "image": decoder(labels)}``."""
    import keras
    image = keras.Input(encoder.input_shape[1:], name="noisy_image")
    labels = encoder(image)
    return keras.Model(image, {"labels": labels, "image": decoder(labels)}, name="autoencoder")
