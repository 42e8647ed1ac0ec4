"""Image restoration networks used as denoisers: EDSR and RDN.

Both map a (64, 64, channels) image to an image of the same shape, are fully convolutional
(any height and width work) and use Keras 3 layers only, so they build under the TensorFlow
and the JAX backends and save as plain ``.keras`` files (no custom objects).

* **EDSR** (Lim et al. 2017, "Enhanced Deep Residual Networks for Single Image
  Super-Resolution"): residual blocks of two 3 x 3 convolutions without batch normalization,
  each block's residual multiplied by a small constant (residual scaling) before it is added,
  and a global skip around the whole body. The seed used 16 blocks of 256 filters
  (about 19.5 M parameters).
* **RDN** (Zhang et al. 2018, "Residual Dense Network for Image Super-Resolution"): residual
  dense blocks, in which each 3 x 3 convolution sees the concatenated outputs of all earlier
  ones (growth rate ``growth``), a 1 x 1 local feature fusion and a local residual; the outputs
  of all blocks are joined by a global feature fusion (1 x 1 then 3 x 3 convolution) and a
  global residual. The seed used 20 blocks of 6 layers, growth 32 (about 5.5 M parameters).

Super-resolution's upsampling tail is dropped: input and output have the same size. With
``image_skip=True`` (the default) the network predicts a correction added to its input, which
is the natural form for denoising: an untrained network starts as the identity.
"""
from __future__ import annotations

import keras
from keras import layers

from galaxies.runtime.errors import InputError

__all__ = ["build_edsr", "build_rdn", "BUILDERS", "get_denoiser"]


def _check_sizes(**sizes) -> None:
    for name, value in sizes.items():
        if int(value) != value or value < 1:
            raise InputError(f"{name} = {value!r} must be a positive integer")


def _head(image, filters: int, kernel_size: int, downscale: int, name: str):
    """The first convolution. With ``downscale`` f > 1 it has stride f (and an f x f kernel at
    least), so the body works on an image f times smaller in each direction: f**2 times fewer
    operations per layer, which is what makes these networks trainable on a CPU. `_tail`
    undoes it with the sub-pixel upsampling of super-resolution EDSR and RDN."""
    if downscale == 1:
        return layers.Conv2D(filters, kernel_size, padding="same", name=name)(image)
    return layers.Conv2D(filters, max(kernel_size, downscale), strides=downscale, padding="same",
                         name=name)(image)


def _tail(image, x, kernel_size: int, downscale: int, image_skip: bool, name: str):
    """The model from its input ``image`` and body output ``x``: the last convolution back to
    the image's channels (with ``downscale`` f > 1 a transposed convolution of an f x f kernel
    and stride f: the same map as a 1 x 1 convolution to f**2 * channels followed by a pixel
    shuffle, depth to space), plus the image itself with ``image_skip``."""
    channels = image.shape[-1]
    if downscale == 1:
        out = layers.Conv2D(channels, kernel_size, padding="same", name="tail")(x)
    else:
        x = layers.Conv2D(x.shape[-1], kernel_size, padding="same", name="tail_conv")(x)
        out = layers.Conv2DTranspose(channels, downscale, strides=downscale, name="tail")(x)
    if image_skip:
        out = layers.Add(name="image_skip")([image, out])
    return keras.Model(image, out, name=name)


def build_edsr(input_shape=(64, 64, 1), blocks: int = 16, filters: int = 256,
               res_scale: float = 0.1, kernel_size: int = 3, downscale: int = 1,
               image_skip: bool = True, name: str = "edsr") -> keras.Model:
    """Build an EDSR denoiser.

    Parameters
    ----------
    input_shape
        (height, width, channels) of the scaled image; height and width may be None (the network
        is fully convolutional).
    blocks
        number of residual blocks (the original study: 16).
    filters
        feature maps in every block (the original study: 256).
    res_scale
        factor applied to each block's residual before the addition; EDSR uses 0.1 for wide
        networks, which keeps the training of deep stacks stable.
    kernel_size
        size of every convolution.
    downscale
        run the body on an image this many times smaller (see `_head`).
    image_skip
        add the input image to the output (predict a correction).
    """
    _check_sizes(blocks=blocks, filters=filters, kernel_size=kernel_size, downscale=downscale)
    if not 0 < res_scale <= 1:
        raise InputError(f"res_scale = {res_scale} must be in (0, 1]")
    image = keras.Input(input_shape, name="image")
    conv = dict(padding="same")
    head = _head(image, filters, kernel_size, downscale, "head")
    x = head
    for b in range(blocks):
        y = layers.Conv2D(filters, kernel_size, activation="relu", name=f"block{b}_conv1", **conv)(x)
        y = layers.Conv2D(filters, kernel_size, name=f"block{b}_conv2", **conv)(y)
        if res_scale != 1:
            y = layers.Rescaling(res_scale, name=f"block{b}_scale")(y)
        x = layers.Add(name=f"block{b}_add")([x, y])
    x = layers.Conv2D(filters, kernel_size, name="body_end", **conv)(x)
    x = layers.Add(name="global_skip")([head, x])
    return _tail(image, x, kernel_size, downscale, image_skip, name)


def build_rdn(input_shape=(64, 64, 1), blocks: int = 20, layers_per_block: int = 6,
              growth: int = 32, features: int = 64, kernel_size: int = 3,
              downscale: int = 1, image_skip: bool = True, name: str = "rdn") -> keras.Model:
    """Build an RDN denoiser.

    Parameters
    ----------
    input_shape
        (height, width, channels) of the scaled image (height and width may be None).
    blocks
        residual dense blocks, D in the paper (the original study: 20).
    layers_per_block
        convolutions per block, C (the original study: 6).
    growth
        feature maps each convolution adds, G (the original study: 32).
    features
        feature maps between blocks, G0 (the paper: 64).
    kernel_size
        size of the 3 x 3 convolutions.
    downscale
        run the body on an image this many times smaller (see `_head`).
    image_skip
        add the input image to the output (predict a correction).
    """
    _check_sizes(blocks=blocks, layers_per_block=layers_per_block, growth=growth,
                 features=features, kernel_size=kernel_size, downscale=downscale)
    image = keras.Input(input_shape, name="image")
    conv = dict(padding="same")
    shallow = _head(image, features, kernel_size, downscale, "shallow1")
    x = layers.Conv2D(features, kernel_size, name="shallow2", **conv)(shallow)
    block_outputs = []
    for b in range(blocks):
        dense = [x]
        for c in range(layers_per_block):
            joined = dense[0] if c == 0 else layers.Concatenate(name=f"rdb{b}_cat{c}")(dense)
            dense.append(layers.Conv2D(growth, kernel_size, activation="relu",
                                       name=f"rdb{b}_conv{c}", **conv)(joined))
        fused = layers.Conv2D(features, 1, name=f"rdb{b}_lff")(
            layers.Concatenate(name=f"rdb{b}_cat")(dense))
        x = layers.Add(name=f"rdb{b}_add")([x, fused])
        block_outputs.append(x)
    x = block_outputs[0] if blocks == 1 else layers.Concatenate(name="gff_cat")(block_outputs)
    x = layers.Conv2D(features, 1, name="gff_1x1")(x)
    x = layers.Conv2D(features, kernel_size, name="gff_3x3", **conv)(x)
    x = layers.Add(name="global_residual")([shallow, x])
    return _tail(image, x, kernel_size, downscale, image_skip, name)


#: Denoiser builders by name (image to image; not estimators, so not in `models.BUILDERS`).
BUILDERS = {"edsr": build_edsr, "rdn": build_rdn}


def get_denoiser(name: str):
    """The builder of denoiser ``name`` (``edsr`` or ``rdn``)."""
    try:
        return BUILDERS[name]
    except KeyError:
        raise InputError(f"unknown denoiser {name!r}; choose from {', '.join(BUILDERS)}") from None
