"""Fresh noise: every time a galaxy is shown, a new noise realization of its noiseless image.

A network trained on a fixed set of noisy images can learn their particular noise; drawn anew
at every showing, the noise is never the same twice, and the only thing left to learn is the
galaxy. `FreshNoise` draws the generator's noise model (`galaxies.simulation.render.add_noise`): Poisson
counts around the noiseless image (sky 0), plus Gaussian read noise of standard deviation sigma,
here with numpy's generators (the same distributions as GalSim's, checked by Monte Carlo in the
tests, and 20 x faster per batch than a GalSim image per galaxy).

The read-noise level is either each row's own (``sigma=None``: the training set's) or drawn
per image, log-uniformly, from ``sigma=(low, high)`` and then given to the network as a known
input. A drawn sigma is kept inside the recipes' SNR window (`galaxies.conventions.SNR_RANGE`):
for a galaxy of noiseless norm S = sqrt(sum mu^2), SNR = S / sigma, so sigma is drawn from
``[max(low, S / 100), min(high, S / 10)]`` (from the nearer end when that interval is empty).

Every draw comes from ``numpy.random.default_rng([seed, epoch, batch, ...])``: the same seed
gives the same noise, whatever the Keras backend.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from galaxies.conventions import RANGES, SNR_RANGE
from galaxies.runtime.errors import InputError

__all__ = ["FreshNoise"]


@dataclass(frozen=True)
class FreshNoise:
    """The noise model drawn per showing: ``sigma`` None (each row's own) or ``(low, high)``."""

    sigma: tuple | None = None
    seed: int = 0

    def __post_init__(self):
        if self.sigma is not None:
            low, high = self.sigma
            allowed = RANGES["sigma"]
            if not (allowed.low <= low <= high <= allowed.high):
                raise InputError(f"sigma range {self.sigma} must lie within "
                                 f"[{allowed.low:g}, {allowed.high:g}] with low <= high")

    def sigmas(self, clean: np.ndarray, own: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The read noise of each image of ``clean`` (N, H, W): ``own`` (N,) when ``sigma`` is
        None, else drawn log-uniformly within the range and the SNR window."""
        if self.sigma is None:
            return np.asarray(own, dtype=np.float64)
        norm = np.sqrt(np.sum(np.asarray(clean, np.float64) ** 2, axis=(1, 2)))
        low = np.maximum(self.sigma[0], norm / SNR_RANGE.high)
        high = np.minimum(self.sigma[1], norm / SNR_RANGE.low)
        high = np.maximum(high, np.minimum(low, self.sigma[1]))  # an empty window: its nearer end
        low = np.minimum(low, high)
        return np.clip(np.exp(rng.uniform(np.log(low), np.log(high))), low, high)

    def draw(self, clean: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A noisy copy of ``clean`` (N, H, W) in photo-electrons: Poisson(clean) + N(0, sigma)."""
        clean = np.clip(np.asarray(clean, np.float64), 0.0, None)
        noisy = rng.poisson(clean).astype(np.float64)
        noisy += rng.standard_normal(clean.shape) * np.asarray(sigma, np.float64)[:, None, None]
        return noisy.astype(np.float32)

    def realize(self, clean: np.ndarray, own: np.ndarray, key) -> tuple[np.ndarray, np.ndarray]:
        """``(noisy images, sigma)`` for the images ``clean`` with the generator ``key``
        (a tuple of integers: the same key, the same noise)."""
        rng = np.random.default_rng([self.seed, *key])
        sigma = self.sigmas(clean, own, rng)
        return self.draw(clean, sigma, rng), sigma.astype(np.float32)
