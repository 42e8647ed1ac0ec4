"""Generate data sets of simulated galaxies: parallel, deterministic, and fast.

Two kinds of set:

* **random** (training sets): each galaxy's parameters are drawn at random (Sérsic index
  continuous or from ``sersics`` equally spaced values, radius and flux uniform, shear by
  ``|g| ~ U(0, 0.67)`` and ``beta ~ U(0, pi)``, PSF and noise fixed or uniform in their
  ranges), and a galaxy is kept only if its SNR lies in [10, 100]; otherwise all of its
  parameters are drawn again (the seed's rejection sampling).
* **fixed** (test sets): one set of parameters; rows differ only by noise realization.

Determinism: candidate ``k`` of row ``i`` takes its parameters and its noise seed from
``SeedSequence(seed, spawn_key=(i, k))``, so a row depends only on the seed and its index,
never on which process drew it: any ``jobs`` gives bitwise-identical files.

Speed: GalSim's costly per-index Hankel table is built once per Sérsic index: candidates are
routed to worker processes by their index, and each worker keeps its tables (see
`galaxies.simulate.GalaxyRenderer`). `benchmarks/generation.py` measures the gain.
"""
from __future__ import annotations

import contextlib
import math
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import atomic, files
from .errors import InputError
from .parallel import process_pool, remote, workers_for
from .resources import check_disk, check_memory, resolve_jobs
from .simulate import (IMAGE_SIZE, MOFFAT_BETA, PIXEL_SCALE, RANGES, SNR_RANGE,
                       GalaxyRenderer, ParameterRangeError, add_noise, check_parameters,
                       check_range, shear_components, snr)

#: Give up on a row after this many rejected candidates (only reachable with settings whose
#: SNR can hardly fall in the window).
MAX_ATTEMPTS = 10_000
#: Candidates per task sent to a worker: small enough for a smooth progress bar.
TASK_SIZE = 64

# Columns of a candidate row.
_FLUX, _N, _R, _G1, _G2, _PSF, _SIGMA, _SEED = range(8)


@dataclass(frozen=True)
class RandomSpec:
    """How a training set draws its galaxies.

    Parameters:
        sersics:   number of equally spaced Sérsic indices in [0.5, 6]; ``None``: continuous.
        psf_fwhm:  fixed PSF FWHM in arcsec; ``None``: uniform in [0.5, 1.0] per galaxy.
        sigma:     fixed read noise; ``None``: uniform in [200, 400] per galaxy.
    """

    sersics: int | None = None
    psf_fwhm: float | None = 0.5
    sigma: float | None = 200.0

    kind = "random"

    def __post_init__(self):
        if self.sersics is not None and (int(self.sersics) != self.sersics or self.sersics < 1):
            raise ParameterRangeError(
                f"sersics = {self.sersics} must be a positive integer (or omitted for continuous n)")
        if self.psf_fwhm is not None:
            check_range("psf_fwhm", self.psf_fwhm)
        if self.sigma is not None:
            check_range("sigma", self.sigma)

    @property
    def sersic_grid(self) -> np.ndarray | None:
        if self.sersics is None:
            return None
        return np.linspace(RANGES["sersic_n"].low, RANGES["sersic_n"].high, int(self.sersics))

    def as_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class FixedSpec:
    """One fixed galaxy (a test set): rows differ only by their noise."""

    flux: float
    sersic_n: float
    sersic_r: float
    g1: float
    g2: float
    psf_fwhm: float = 0.5
    sigma: float = 200.0

    kind = "fixed"

    def __post_init__(self):
        check_parameters(self.flux, self.sersic_n, self.sersic_r, self.g1, self.g2,
                         self.psf_fwhm, self.sigma)

    def as_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}


# ------------------------------------------------------------------------ random draws

def _uniforms(seed: int, index: int, attempt: int) -> np.ndarray:
    """Eight independent 64-bit draws for candidate ``attempt`` of row ``index``."""
    return np.random.SeedSequence(seed, spawn_key=(index, attempt)).generate_state(8, np.uint64)


def draw_candidates(spec: RandomSpec, seed: int, index: np.ndarray, attempt: np.ndarray) -> np.ndarray:
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


# ----------------------------------------------------------------------------- workers

_renderer: GalaxyRenderer | None = None


def _worker_renderer() -> GalaxyRenderer:
    global _renderer
    if _renderer is None:
        _renderer = GalaxyRenderer()
    return _renderer


def render_candidates(candidates: np.ndarray, with_psf: bool, snr_range=(SNR_RANGE.low, SNR_RANGE.high)):
    """Render candidates (rows of `draw_candidates`), keep those inside the SNR range.

    Returns ``(keep, snr, clean, noisy, psf)``: a mask and the SNR of every candidate, and the
    images of the kept ones (``psf`` is None unless ``with_psf``).
    """
    renderer = _worker_renderer()
    order = np.argsort(candidates[:, _N], kind="stable")  # same index back to back
    keep = np.zeros(len(candidates), dtype=bool)
    snrs = np.zeros(len(candidates))
    clean_kept, noisy_kept, psf_kept = {}, {}, {}
    for j in order:
        flux, n, r, g1, g2, psf, sigma, seed = candidates[j]
        clean = renderer.draw(flux, n, r, g1, g2, psf)
        snrs[j] = snr(clean, sigma)
        if snr_range[0] <= snrs[j] <= snr_range[1]:
            keep[j] = True
            clean_kept[j] = clean
            noisy_kept[j] = add_noise(clean, sigma, int(seed))
            if with_psf:
                psf_kept[j] = renderer.draw_psf(psf)
    kept = np.flatnonzero(keep)
    stack = lambda d: np.stack([d[j] for j in kept]) if len(kept) else None  # noqa: E731
    return keep, snrs, stack(clean_kept), stack(noisy_kept), stack(psf_kept) if with_psf else None


@contextlib.contextmanager
def _workers(jobs: int):
    """Yield ``submit(worker, *args) -> Future`` running `render_candidates`.

    ``jobs`` single-process pools, so candidates with the same Sérsic index always go to the
    same process and reuse its table; ``jobs=1`` renders in this process (one thread, as a
    worker would). Under a Dask engine, ``worker`` names one of the cluster's workers (in the
    order of their addresses): the task prefers it, and runs elsewhere if it is lost."""
    import galsim
    cluster = remote()
    if cluster is not None:
        addresses = cluster.addresses()
        with process_pool(jobs) as pool:
            yield lambda worker, *args: pool.submit(
                render_candidates, *args,
                worker=addresses[worker % len(addresses)] if addresses else None)
    elif jobs == 1:
        threads = galsim.get_omp_threads()
        galsim.set_omp_threads(1)

        def submit(worker, *args) -> Future:
            future: Future = Future()
            future.set_result(render_candidates(*args))
            return future
        try:
            yield submit
        finally:
            galsim.set_omp_threads(threads)
    else:
        with contextlib.ExitStack() as stack:
            pools = [stack.enter_context(process_pool(1)) for _ in range(jobs)]
            yield lambda worker, *args: pools[worker].submit(render_candidates, *args)


# ----------------------------------------------------------------------------- writers

def recipe_attribute(spec, size: int, seed: int, name: str | None) -> dict:
    record = {**spec.as_dict(), "size": int(size), "seed": int(seed), "image_size": IMAGE_SIZE,
              "pixel_scale": PIXEL_SCALE, "moffat_beta": MOFFAT_BETA}
    if spec.kind == "random":
        record["snr_range"] = [SNR_RANGE.low, SNR_RANGE.high]
    if name:
        record["name"] = name
    return record


def _check_size(size: int) -> int:
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise InputError(f"size = {size} must be a positive integer")
    return int(size)


def _check_room(path, size: int, shared_psf: bool) -> None:
    """Refuse a data set the disk cannot hold (the two images of a row and a PSF image unless
    it is shared), or whose per-row labels and bookkeeping (~40 bytes a row) memory cannot."""
    images = 2 + (0 if shared_psf else 1)
    check_disk(path, size * (images * IMAGE_SIZE * IMAGE_SIZE * 4 + 4 * (5 + 3)),
               f"a data set of {size:,} images")
    check_memory(size * 40, f"generating {size:,} images")


def generate_random(path, spec: RandomSpec, size: int, seed: int, jobs: int | None = None,
                    force: bool = False, progress: bool = True, name: str | None = None) -> Path:
    """Write a random-parameter data set of ``size`` galaxies to ``path`` (HDF5, atomically)."""
    from tqdm.auto import tqdm

    size, jobs = _check_size(size), workers_for(resolve_jobs(jobs))
    _check_room(path, size, shared_psf=spec.psf_fwhm is not None)
    with_psf = spec.psf_fwhm is None
    grid = spec.sersic_grid
    labels = np.zeros((size, 5), np.float32)
    psf_fwhm, sigma, snrs = (np.zeros(size, np.float32) for _ in range(3))
    attempts = np.zeros(size, np.int64)
    bar = tqdm(total=size, unit="img", desc=f"generate {name or Path(path).stem}",
               disable=not progress, smoothing=0.05)
    with bar, atomic.atomic_h5(path, force) as f, _workers(jobs) as submit:
        fields = files.create_dataset_fields(f, size, shared_psf=not with_psf)
        if not with_psf:
            fields["psf_img"][0] = _worker_renderer().draw_psf(spec.psf_fwhm)
        pending = np.arange(size)
        while len(pending):
            candidates = draw_candidates(spec, seed, pending, attempts[pending])
            if grid is None:
                owner = pending % jobs
            else:
                owner = np.searchsorted(grid, candidates[:, _N]) % jobs
            futures = {}
            for w in range(jobs):
                mine = np.flatnonzero(owner == w)
                mine = mine[np.argsort(candidates[mine, _N], kind="stable")]
                for chunk in np.array_split(mine, math.ceil(len(mine) / TASK_SIZE) or 1):
                    if len(chunk):
                        futures[submit(w, candidates[chunk], with_psf)] = chunk
            rejected = []
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    chunk = futures.pop(future)
                    keep, snr_c, clean, noisy, psf = future.result()
                    rows = pending[chunk]
                    rejected.append(rows[~keep])
                    for k, j in enumerate(np.flatnonzero(keep)):
                        i, c = rows[j], candidates[chunk[j]]
                        fields["img"][i] = noisy[k]
                        fields["img_nonoise"][i] = clean[k]
                        if with_psf:
                            fields["psf_img"][i] = psf[k]
                        labels[i] = c[[_FLUX, _N, _R, _G1, _G2]]
                        psf_fwhm[i], sigma[i], snrs[i] = c[_PSF], c[_SIGMA], snr_c[j]
                    bar.update(int(keep.sum()))
            pending = np.sort(np.concatenate(rejected)) if rejected else pending[:0]
            attempts[pending] += 1
            if len(pending) and attempts.max() >= MAX_ATTEMPTS:
                raise RuntimeError(
                    f"row {int(pending[np.argmax(attempts[pending])])} found no galaxy with SNR in "
                    f"[{SNR_RANGE.low:g}, {SNR_RANGE.high:g}] after {MAX_ATTEMPTS} draws; "
                    f"check the PSF and noise settings ({spec})")
            bar.set_postfix(acceptance=f"{size / (size + attempts.sum()):.2f}")
        fields["label"][...] = labels
        fields["psf_fwhm"][...] = psf_fwhm
        fields["sigma"][...] = sigma
        fields["snr"][...] = snrs
        files.write_attrs(f, seed, recipe_attribute(spec, size, seed, name))
        f.attrs["acceptance_rate"] = size / (size + attempts.sum())
    return Path(path)


def generate_fixed(path, spec: FixedSpec, size: int, seed: int, force: bool = False,
                   progress: bool = True, name: str | None = None) -> Path:
    """Write a fixed-parameter test set: ``size`` noise realizations of one galaxy."""
    from tqdm.auto import tqdm

    size = _check_size(size)
    _check_room(path, size, shared_psf=True)
    renderer = _worker_renderer()
    clean = renderer.draw(spec.flux, spec.sersic_n, spec.sersic_r, spec.g1, spec.g2, spec.psf_fwhm)
    label = np.array([spec.flux, spec.sersic_n, spec.sersic_r, spec.g1, spec.g2], np.float32)
    with atomic.atomic_h5(path, force) as f:
        fields = files.create_dataset_fields(f, size, shared_psf=True)
        fields["psf_img"][0] = renderer.draw_psf(spec.psf_fwhm)
        block = 1024
        for start in tqdm(range(0, size, block), disable=not progress, unit="block",
                          desc=f"generate {name or Path(path).stem}"):
            rows = range(start, min(start + block, size))
            seeds = [int(_uniforms(seed, i, 0)[7] % np.uint64(2**31 - 1)) + 1 for i in rows]
            fields["img"][rows.start:rows.stop] = np.stack([add_noise(clean, spec.sigma, s) for s in seeds])
        fields["img_nonoise"][...] = np.broadcast_to(clean, (size,) + clean.shape)
        fields["label"][...] = np.broadcast_to(label, (size, 5))
        fields["psf_fwhm"][...] = spec.psf_fwhm
        fields["sigma"][...] = spec.sigma
        fields["snr"][...] = snr(clean, spec.sigma)
        files.write_attrs(f, seed, recipe_attribute(spec, size, seed, name))
    return Path(path)


def generate(path, spec: RandomSpec | FixedSpec, size: int, seed: int, jobs: int | None = None,
             force: bool = False, progress: bool = True, name: str | None = None) -> Path:
    """Write a data set of either kind (see `generate_random` and `generate_fixed`)."""
    if isinstance(spec, FixedSpec):
        return generate_fixed(path, spec, size, seed, force=force, progress=progress, name=name)
    return generate_random(path, spec, size, seed, jobs=jobs, force=force, progress=progress, name=name)
