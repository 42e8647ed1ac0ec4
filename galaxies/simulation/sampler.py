"""Exact SNR-window sampling that spends (almost) no renders on galaxies the cut rejects.

A training set keeps a galaxy only if ``SNR = sqrt(sum(clean**2)) / sigma`` lies in
`SNR_RANGE` (noise plays no part: the SNR is of the noiseless image). GalSim draws linearly in
flux, so ``SNR = flux * A / sigma`` where ``A = ||unit-flux image||_2`` depends on the shape
(n, r, |g|, PSF) only, and the cut is a window on the flux given the shape:
``flux in [10 sigma / A, 100 sigma / A]``.

The rejection sampler draws every parameter of a candidate (flux included) and renders it;
59% of renders are thrown away at ``--sersics 1000``. An `Envelope` bounds ``A`` from below
and above without rendering (a table of ``log A`` rendered once on a grid of shapes,
multilinear interpolation, and a relative `MARGIN` far above the interpolation error measured
in ``tests/simulation/test_sampler.py``), hence bounds the flux window from outside. A candidate whose
flux lies outside the envelope's window cannot pass the cut and is rejected without a render;
the others are rendered and cut exactly as before. This is the scheme "accept the shape with
probability Lmax / Delta, render, accept with probability L / Lmax, flux uniform on the exact
window", with the candidate's own uniform flux as the randomness, so the kept rows are not
only distributed like the rejection sampler's: they are the same rows, bit for bit, and only
the renders of sure rejections are saved.

Every rendered candidate's exact ``A`` is checked against its envelope; one outside it
(`EnvelopeError`) stops the generation rather than bias it silently.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from galaxies.conventions import RANGES, SNR_RANGE, shear_components

__all__ = ["SAMPLERS", "MARGIN", "Envelope", "EnvelopeError", "draw_candidates", "table_nodes",
           "envelope_from_table", "worth_a_table"]

#: ``"envelope"`` (the default) skips sure rejections; ``"rejection"`` renders every candidate.
SAMPLERS = ("envelope", "rejection")
#: Relative margin on ``A`` around the interpolated table (the measured error is < 0.2%).
MARGIN = 0.02
#: Table nodes: Sérsic indices (unless the set's grid is this small or smaller, then its
#: values), radii (log-spaced), |g|**2 and PSF FWHMs (log-spaced, when the PSF varies).
N_NODES, R_NODES, G_NODES, PSF_NODES = 12, 12, 6, 5

# Columns of a candidate row.
_FLUX, _N, _R, _G1, _G2, _PSF, _SIGMA, _SEED = range(8)


# ------------------------------------------------------------------------ random draws

def _uniforms(seed: int, index: int, attempt: int) -> np.ndarray:
    """Eight independent 64-bit draws for candidate ``attempt`` of row ``index``."""
    return np.random.SeedSequence(seed, spawn_key=(index, attempt)).generate_state(8, np.uint64)


def draw_candidates(spec, seed: int, index: np.ndarray, attempt: np.ndarray) -> np.ndarray:
    """Candidate parameters for rows ``index`` at attempts ``attempt``: an (m, 8) array of
    flux, n, r, g1, g2, psf_fwhm, sigma and the noise seed."""
    state = np.array([_uniforms(seed, int(i), int(k)) for i, k in zip(index, attempt)],
                     dtype=np.uint64).reshape(-1, 8)
    u = (state[:, :7] >> np.uint64(11)).astype(np.float64) * 2.0**-53  # in [0, 1)
    lo = {k: r.low for k, r in RANGES.items()}
    hi = {k: r.high for k, r in RANGES.items()}
    out = np.empty((len(state), 8))
    grid = spec.sersic_grid
    if grid is None:
        out[:, _N] = lo["sersic_n"] + (hi["sersic_n"] - lo["sersic_n"]) * u[:, 0]
    else:
        out[:, _N] = grid[np.minimum((u[:, 0] * len(grid)).astype(int), len(grid) - 1)]
    out[:, _R] = lo["sersic_r"] + (hi["sersic_r"] - lo["sersic_r"]) * u[:, 1]
    out[:, _FLUX] = lo["flux"] + (hi["flux"] - lo["flux"]) * u[:, 2]
    out[:, _G1], out[:, _G2] = shear_components(hi["shear"] * u[:, 3], np.pi * u[:, 4])
    out[:, _PSF] = (spec.psf_fwhm if spec.psf_fwhm is not None
                    else lo["psf_fwhm"] + (hi["psf_fwhm"] - lo["psf_fwhm"]) * u[:, 5])
    out[:, _SIGMA] = (spec.sigma if spec.sigma is not None
                      else lo["sigma"] + (hi["sigma"] - lo["sigma"]) * u[:, 6])
    out[:, _SEED] = (state[:, 7] % np.uint64(2**31 - 1)).astype(np.float64) + 1
    return out



# ------------------------------------------------------------------------- the envelope


class EnvelopeError(RuntimeError):
    """A rendered galaxy's SNR per unit flux fell outside its envelope: the envelope is not
    conservative there, and skipped candidates may have been wrongly rejected."""


def _axes(spec) -> list[np.ndarray]:
    grid = spec.sersic_grid
    n = grid if grid is not None and len(grid) <= N_NODES else np.linspace(
        RANGES["sersic_n"].low, RANGES["sersic_n"].high, N_NODES)
    r = np.linspace(np.log(RANGES["sersic_r"].low), np.log(RANGES["sersic_r"].high), R_NODES)
    g2 = np.linspace(0.0, RANGES["shear"].high ** 2, G_NODES)
    psf = (np.log([spec.psf_fwhm]) if spec.psf_fwhm is not None else np.linspace(
        np.log(RANGES["psf_fwhm"].low), np.log(RANGES["psf_fwhm"].high), PSF_NODES))
    return [np.asarray(n, float), r, g2, np.asarray(psf, float)]


def table_nodes(spec) -> np.ndarray:
    """The shapes to render for ``spec``'s table, as candidate rows (flux 1, sigma 1, so
    their SNR is ``A``), in the C order of the table's axes."""
    n, log_r, g2, log_psf = (a.ravel() for a in np.meshgrid(*_axes(spec), indexing="ij"))
    out = np.zeros((len(n), 8))
    out[:, _FLUX], out[:, _SIGMA], out[:, _SEED] = 1.0, 1.0, 1.0
    out[:, _N], out[:, _R], out[:, _G1] = n, np.exp(log_r), np.sqrt(g2)
    out[:, _PSF] = np.exp(log_psf)
    return out


def worth_a_table(spec, size: int) -> bool:
    """Whether a table pays for itself: about 1.4 renders a row are saved (acceptance 0.41),
    against the table's renders. Either way the rows written are the same."""
    return len(table_nodes(spec)) < 1.4 * size


@dataclass(frozen=True)
class Envelope:
    """Bounds on ``A`` (SNR per unit flux at sigma 1) for any shape, from a table of ``log A``.

    ``None`` table: no bounds (every candidate is rendered, as by the rejection sampler).
    """

    axes: tuple | None = None
    log_a: np.ndarray | None = None
    margin: float = MARGIN

    def log_a_at(self, candidates: np.ndarray) -> np.ndarray:
        """Multilinear interpolation of the table at the candidates' shapes."""
        g = np.hypot(candidates[:, _G1], candidates[:, _G2])
        points = [candidates[:, _N], np.log(candidates[:, _R]), g**2, np.log(candidates[:, _PSF])]
        where, weights = [], []
        for axis, x in zip(self.axes, points):
            if len(axis) == 1:
                where.append((np.zeros(len(x), int), np.zeros(len(x), int)))
                weights.append(np.ones(len(x)))
                continue
            k = np.clip(np.searchsorted(axis, x) - 1, 0, len(axis) - 2)
            t = np.clip((x - axis[k]) / (axis[k + 1] - axis[k]), 0.0, 1.0)
            where.append((k, k + 1))
            weights.append(t)
        out = np.zeros(len(candidates))
        for corner in itertools.product((0, 1), repeat=len(self.axes)):
            index = tuple(w[c] for w, c in zip(where, corner))
            weight = np.prod([t if c else 1 - t for t, c in zip(weights, corner)], axis=0)
            out += weight * self.log_a[index]
        return out

    def bounds(self, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(a_lo, a_hi)`` of each candidate; (0, inf) without a table."""
        if self.log_a is None:
            return np.zeros(len(candidates)), np.full(len(candidates), np.inf)
        a = np.exp(self.log_a_at(candidates))
        return a * (1 - self.margin), a * (1 + self.margin)

    def may_pass(self, candidates: np.ndarray) -> np.ndarray:
        """Mask of the candidates whose SNR can lie in `SNR_RANGE`: those to render."""
        a_lo, a_hi = self.bounds(candidates)
        flux, sigma = candidates[:, _FLUX], candidates[:, _SIGMA]
        return (flux * a_hi >= SNR_RANGE.low * sigma) & (flux * a_lo <= SNR_RANGE.high * sigma)

    def check(self, candidates: np.ndarray, snrs: np.ndarray) -> float:
        """Raise `EnvelopeError` if a rendered candidate's ``A = SNR sigma / flux`` is outside
        its bounds; return the smallest relative slack (how close the nearest one came)."""
        if self.log_a is None or not len(candidates):
            return np.inf
        a = snrs * candidates[:, _SIGMA] / candidates[:, _FLUX]
        centre = np.exp(self.log_a_at(candidates))
        slack = self.margin - np.abs(a / centre - 1)
        if slack.min() < 0:
            j = int(np.argmin(slack))
            raise EnvelopeError(
                f"SNR per unit flux {a[j]:.6g} of candidate (n, r, g1, g2, psf) = "
                f"{tuple(np.round(candidates[j, [_N, _R, _G1, _G2, _PSF]], 4))} is "
                f"{abs(a[j] / centre[j] - 1):.2%} from the envelope's {centre[j]:.6g}, beyond "
                f"its margin {self.margin:.0%}; generate with sampler='rejection'")
        return float(slack.min()) / self.margin


def envelope_from_table(spec, snrs: np.ndarray) -> Envelope:
    """The envelope of ``spec`` from the SNRs of `table_nodes` (rendered at flux 1, sigma 1)."""
    axes = tuple(_axes(spec))
    return Envelope(axes, np.log(np.asarray(snrs, float)).reshape([len(a) for a in axes]))
