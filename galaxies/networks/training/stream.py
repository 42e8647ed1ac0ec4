"""The training stream: a seeded split, the eight orientations of the pixel grid, batches.

Training shows each image in one of the eight orientations of the square pixel grid (rotations
by multiples of 90 degrees and mirror images), chosen at random per image and epoch, with the
shear transformed to match (see `dihedral`): the simulation has exactly this symmetry (round
PSF, white noise, the galaxy centred on the stamp's centre), so the training set is in effect
eight times larger at no cost. Every draw comes from seeded generators: the same seed gives
the same batches.
"""
from __future__ import annotations

import numpy as np

from galaxies.conventions import LABEL_COLUMNS
from galaxies.runtime.errors import InputError

from .scaling import Standardizer

__all__ = ["split_rows", "dihedral", "training_batches"]

_G1, _G2 = LABEL_COLUMNS.index("g1"), LABEL_COLUMNS.index("g2")


def split_rows(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, validation)`` sorted row numbers: a seeded permutation whose first
    ``round(fraction * n)`` rows (at least one) are held out for validation."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(validation_fraction * n)))
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    if len(train) < 1:
        raise InputError(f"{n} rows leave nothing to train on")
    return train, val


def dihedral(images: np.ndarray, labels: np.ndarray, element: int):
    """One of the 8 symmetries of the square pixel grid applied to images and labels.

    ``images`` (N, H, W[, C]) with the galaxy centred on the stamp (GalSim draws it at the
    true centre, between the four central pixels of an even-sized stamp, so the symmetries map
    the centre onto itself); ``labels`` (N, 5) in original units. ``element`` in 0..7: bit 0
    transposes (swaps x and y), bit 1 mirrors the rows, bit 2 mirrors the columns. The shear
    is a spin-2 quantity: swapping x and y negates g1 (elongation along x becomes along y) and
    keeps g2; each mirror negates g2 and keeps g1. Flux, Sérsic index and radius are unchanged.
    Returns new arrays.
    """
    if not 0 <= element < 8:
        raise InputError(f"element = {element} must be in 0..7")
    images = np.asarray(images)
    if element & 1:
        images = np.swapaxes(images, 1, 2)
    if element & 2:
        images = images[:, ::-1]
    if element & 4:
        images = images[:, :, ::-1]
    labels = np.array(labels, copy=True)
    if element & 1:
        labels[..., _G1] *= -1
    if (element >> 1 & 1) ^ (element >> 2 & 1):
        labels[..., _G2] *= -1
    return np.ascontiguousarray(images), labels


def training_batches(images: np.ndarray, labels: np.ndarray, label_scaler: Standardizer,
                     batch_size: int, seed: int, augment: bool, extras: tuple = (),
                     arrange=None, noise=None, weights=None):
    """A Keras ``PyDataset`` of shuffled training batches of ``batch_size`` rows (fewer only
    when the set is smaller).

    With ``augment``, each galaxy appears in one of the eight orientations of the pixel grid:
    every channel of ``images`` (N, H, W, C) turned alike, its shear labels transformed to
    match (`dihedral`); labels are then standardized. ``extras`` are further per-row inputs
    passed through unchanged. ``arrange(images, extras, labels) -> (inputs, targets)`` shapes a
    batch for the model (default: the images, then the extras, as inputs; the labels as target).
    ``noise(images, rows, key) -> (images, extras)``, when given, turns each (oriented) batch of
    noiseless images into the network's inputs with fresh noise (`galaxies.networks.training.noise`;
    ``key`` = (epoch, batch) seeds it) and replaces ``extras``. ``weights(rows, extras) -> (n, 5)``,
    when given, weighs each label of the batch (`galaxies.networks.training.weighting`): the
    weights follow the standardized labels as five more target columns.
    """
    import keras

    def default_arrange(batch, more, y):
        inputs = (batch,) + more
        return (inputs if len(inputs) > 1 else inputs[0]), y

    arrange = arrange or default_arrange

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = 0
            self.order = np.random.default_rng([seed, 0]).permutation(len(labels))

        def __len__(self):
            # full batches only (the rest is reshuffled into the next epochs): a batch of
            # another size would make TensorFlow trace the training step a second time,
            # which costs seconds of CPU per model
            return max(1, len(labels) // batch_size)

        def __getitem__(self, k):
            rows = np.sort(self.order[k * batch_size:(k + 1) * batch_size])
            batch, y = images[rows], labels[rows]
            if augment:
                which = np.random.default_rng([seed, self.epoch, k]).integers(0, 8, len(rows))
                for element in np.unique(which):
                    sel = which == element
                    batch[sel], y[sel] = dihedral(batch[sel], y[sel], int(element))
            if noise is not None:
                batch, more = noise(batch, rows, (self.epoch, k))
            else:
                more = tuple(a[rows] for a in extras)
            y = label_scaler.transform(y)
            if weights is not None:
                y = np.concatenate([y, np.asarray(weights(rows, more), np.float32)], axis=-1)
            return arrange(batch, more, y)

        def on_epoch_end(self):
            self.epoch += 1
            self.order = np.random.default_rng([seed, self.epoch]).permutation(len(labels))

    return Batches()
