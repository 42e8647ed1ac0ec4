"""Radial Fourier profiles of the unit Sérsic and the unit Moffat, tabulated once from GalSim.

The differentiable model (`galaxies.inference.differentiable.render`) draws a galaxy in Fourier space, as
GalSim does, so it needs the Fourier transform of a Sérsic profile of any index: GalSim computes
it by a Hankel transform per index, which is neither differentiable nor cheap. We sample
GalSim's own ``kValue`` of the unit-half-light-radius Sérsic at every node of a grid in the
index (`N_STEP`), on a grid in ``x = k r`` that is uniform in ``u = log(1 + x / X_SCALE)``
(`U_STEP`): fine where the profiles of large index fall steeply (small x), coarse in their
smooth power-law tails; the Moffat (beta = 2, FWHM 1) on the same grid in ``k * fwhm``. The
render interpolates both with Catmull-Rom cubics (continuous first derivatives, so the
derivative in n is continuous too).

Beside the values we keep, per node, the two numbers GalSim uses to choose its FFT grid
(``stepk`` and ``maxk`` of the unit profile), so that the render can pick the same grid for the
same galaxy (`galaxies.inference.differentiable.grid`).

The tables take seconds to build; they are cached on disk (`cache_path`), keyed by their
resolution and GalSim's version, and loaded once per process.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from galaxies.conventions import GALSIM_SERSIC_N, MOFFAT_BETA
from galaxies.runtime.profiles import ROOT
from galaxies.storage.atomic import atomic_path

__all__ = ["N_STEP", "U_STEP", "X_SCALE", "X_MAX", "ProfileTables", "profile_tables",
           "x_nodes", "cache_path"]

#: Spacing of the Sérsic-index nodes (GALSIM_SERSIC_N is covered, 0.3 to 6.2).
N_STEP = 0.05
#: The grid in ``x = k * half_light_radius`` (or ``k * fwhm``): uniform in
#: ``u = log(1 + x / X_SCALE)`` with step U_STEP, from 0 to at least X_MAX.
U_STEP = 0.005
X_SCALE = 0.5
X_MAX = 64.0


def x_nodes() -> np.ndarray:
    """The table's nodes in x: ``X_SCALE * expm1(j * U_STEP)`` for j = -1 .. L + 1 (one node
    before 0 and two past the last interval, for the cubics' end intervals)."""
    intervals = int(np.ceil(np.log1p(X_MAX / X_SCALE) / U_STEP))
    return X_SCALE * np.expm1(np.arange(-1, intervals + 2) * U_STEP)


@dataclass(frozen=True)
class ProfileTables:
    """The tabulated Fourier profiles.

    ``sersic`` (nodes, points): unit-flux, unit-half-light-radius Sérsic ``F_n(|x|)`` at
    ``n = n_nodes[i]`` and ``x = x_nodes()[j]``; ``moffat`` (points,): unit-flux Moffat of FWHM 1;
    ``sersic_stepk`` / ``sersic_maxk`` (nodes,) and ``moffat_stepk`` / ``moffat_maxk``: GalSim's
    ``stepk`` and ``maxk`` of those unit profiles (1 / arcsec).
    """

    n_nodes: np.ndarray
    sersic: np.ndarray
    sersic_stepk: np.ndarray
    sersic_maxk: np.ndarray
    moffat: np.ndarray
    moffat_stepk: float
    moffat_maxk: float


def cache_path() -> Path:
    """Where the tables are kept: ``$GALAXIES_CACHE`` or ``data/cache`` under the project."""
    import galsim
    folder = Path(os.environ.get("GALAXIES_CACHE", ROOT / "data" / "cache"))
    name = f"kprofiles-n{N_STEP:g}-u{U_STEP:g}-{X_SCALE:g}-{X_MAX:g}-galsim{galsim.__version__}.npz"
    return folder / name


def _sample(profile, x: np.ndarray) -> np.ndarray:
    """``profile.kValue(|x|, 0)`` at every ``x`` (real: the profiles are symmetric)."""
    import galsim
    return np.array([profile._kValue(galsim.PositionD(abs(float(v)), 0.0)).real for v in x])


def build() -> ProfileTables:
    """Sample GalSim's Fourier profiles (seconds; `profile_tables` caches the result)."""
    import galsim
    lo, hi = GALSIM_SERSIC_N
    nodes = np.round(np.arange(lo, hi + N_STEP / 2, N_STEP), 10)
    x = x_nodes()
    sersic, stepk, maxk = [], [], []
    for n in nodes:
        unit = galsim.Sersic(float(n), half_light_radius=1.0)
        sersic.append(_sample(unit, x))
        stepk.append(unit.stepk)
        maxk.append(unit.maxk)
    moffat = galsim.Moffat(beta=MOFFAT_BETA, fwhm=1.0)
    return ProfileTables(n_nodes=nodes, sersic=np.array(sersic),
                         sersic_stepk=np.array(stepk), sersic_maxk=np.array(maxk),
                         moffat=_sample(moffat, x), moffat_stepk=float(moffat.stepk),
                         moffat_maxk=float(moffat.maxk))


@functools.lru_cache(maxsize=1)
def profile_tables() -> ProfileTables:
    """The tables, from the disk cache when it holds them, else built and cached."""
    path = cache_path()
    if path.is_file():
        try:
            with np.load(path) as f:
                return ProfileTables(**{k: (f[k] if f[k].ndim else f[k].item()) for k in f.files})
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache is rebuilt
    tables = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, force=True) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **tables.__dict__)
    except OSError:
        pass  # a read-only checkout still works, building the tables once per process
    return tables
