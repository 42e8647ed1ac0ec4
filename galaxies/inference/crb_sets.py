"""Cramér–Rao bounds of every galaxy of a data set, computed in parallel and cached.

`for_dataset` returns an (N, 5) array of bounds, one row per row of the set, from
`galaxies.inference.crb.cramer_rao_bound` (GalSim renders, central differences, in worker processes) or,
with ``renderer="jax"``, from `galaxies.inference.differentiable.bound.cramer_rao_bounds` (the JAX model's
autodiff Jacobians, batched in this process). They are kept beside the set, in ``<set>.crb.h5``
for GalSim's and ``<set>.crb-jax.h5`` for JAX's (`cache_path`; the renderer is part of the
cache's fingerprint too, so the two never mix), and reused while the set's labels, PSF and
noise are unchanged. Identical galaxies (a fixed-galaxy test set) are computed once.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from galaxies.conventions import LABEL_COLUMNS, check_parameters
from galaxies.runtime.console import show_progress
from galaxies.runtime.errors import InputError

from .crb import STEPS, cramer_rao_bound
from .differentiable import RENDERERS

__all__ = ["RENDERERS", "for_dataset", "cache_path", "checked_rows", "selected_rows"]



def _check_renderer(renderer: str) -> None:
    if renderer not in RENDERERS:
        raise InputError(f"renderer {renderer!r}: choose among {', '.join(RENDERERS)}")


def cache_path(dataset_path, renderer: str = "galsim", sigma: float | None = None,
               folder=None) -> Path:
    """Where the bounds of a data set are kept: ``v1.crb.h5`` next to ``v1.h5`` (GalSim's),
    ``v1.crb-jax.h5`` (the JAX model's); ``v1.crb-jax-sigma250.h5`` with every row's read
    noise replaced by ``sigma``; in ``folder`` instead of beside the set when given."""
    _check_renderer(renderer)
    path = Path(dataset_path)
    suffix = ("" if renderer == "galsim" else "-" + renderer) + ("" if sigma is None else f"-sigma{sigma:g}")
    return Path(folder or path.parent) / f"{path.stem}.crb{suffix}.h5"


def _fingerprint(label: np.ndarray, psf_fwhm: np.ndarray, sigma: np.ndarray,
                 renderer: str = "galsim") -> str:
    digest = hashlib.sha256()
    for array in (label, psf_fwhm, sigma):
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    if renderer == "galsim":  # GalSim's differences have steps; the fingerprint of old caches
        digest.update(json.dumps(STEPS, sort_keys=True).encode())
    else:
        digest.update(renderer.encode())
    return digest.hexdigest()


def _bounds_of(rows: np.ndarray) -> np.ndarray:
    """Bounds of parameter rows ``(flux, n, r, g1, g2, psf_fwhm, sigma)``; NaN where the
    Fisher matrix is singular (e.g. a galaxy too faint to constrain n)."""
    out = np.full((len(rows), 5), np.nan)
    for k, (flux, n, r, g1, g2, psf, sigma) in enumerate(rows):
        try:
            out[k] = cramer_rao_bound(flux, n, r, g1, g2, psf, sigma)
        except np.linalg.LinAlgError:
            pass
    return out


def _jax_bounds(rows: np.ndarray, bar) -> np.ndarray:
    """`_bounds_of` on the JAX model: batches of `galaxies.storage.chunked.BLOCK_ROWS` rows in this
    process (JAX uses the cores itself)."""
    from galaxies.storage.chunked import BLOCK_ROWS

    from .differentiable.bound import cramer_rao_bounds
    from .differentiable.model import DifferentiableModel

    model, out = DifferentiableModel(), np.empty((len(rows), 5))
    for start in range(0, len(rows), BLOCK_ROWS):
        batch = rows[start:start + BLOCK_ROWS]
        out[start:start + len(batch)] = cramer_rao_bounds(batch[:, :5], batch[:, 5], batch[:, 6],
                                                          model=model)
        bar.update(len(batch))
    return out


def _galsim_bounds(rows: np.ndarray, jobs: int, bar) -> np.ndarray:
    """`_bounds_of` in worker processes (or here, for few galaxies), neighbouring indices
    together."""
    from galaxies.runtime.parallel import process_pool, remote

    order = np.argsort(rows[:, 1], kind="stable")  # neighbouring n: warmer GalSim caches
    # a worker costs seconds to start (it imports GalSim): only worth it for many galaxies;
    # a Dask cluster's workers are running already
    cluster = remote()
    jobs = cluster.slots() if cluster is not None else max(1, min(jobs, len(rows) // 16))
    chunks = [c for c in np.array_split(order, max(1, min(len(order), 8 * jobs))) if len(c)]
    values = np.empty((len(rows), 5))
    if cluster is None and (jobs == 1 or len(chunks) == 1):
        for chunk in chunks:
            values[chunk] = _bounds_of(rows[chunk])
            bar.update(len(chunk))
    else:
        with process_pool(min(jobs, len(chunks))) as pool:
            results = pool.map(_bounds_of, [rows[c] for c in chunks])
            for chunk, result in zip(chunks, results):
                values[chunk] = result
                bar.update(len(chunk))
    return values


def _read_cache(path: Path, fingerprint: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cached bounds and a mask of the rows already computed (none if stale or missing)."""
    import h5py
    empty = np.full((size, 5), np.nan), np.zeros(size, dtype=bool)
    try:
        with h5py.File(path, "r") as f:
            if (f.attrs.get("dataset_fingerprint") != fingerprint or f["crb"].shape != (size, 5)
                    or f["computed"].shape != (size,)):
                return empty
            return f["crb"][()], f["computed"][()].astype(bool)
    except (OSError, KeyError):
        return empty


def selected_rows(size: int, limit: int | None = None, rows=None, path="the set") -> np.ndarray:
    """The rows of a set of ``size`` rows to work on, sorted: ``rows`` (each in [0, size)),
    else the first ``limit`` (None: every row). Raises `InputError` for a bad request."""
    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 1):
        raise InputError(f"limit = {limit} must be a positive integer (or None for every row)")
    if rows is not None:
        wanted = np.unique(np.asarray(rows, dtype=np.int64))
        if len(wanted) and (wanted[0] < 0 or wanted[-1] >= size):
            raise InputError(f"rows must lie in [0, {size}) for {path}")
        return wanted
    return np.arange(size if limit is None else min(int(limit), size))


def checked_rows(label, psf_fwhm, sigma) -> np.ndarray:
    """Parameter rows ``(flux, n, r, g1, g2, psf_fwhm, sigma)`` of a data set, in float64,
    checked against the simulated ranges.

    Values stored as float32 may sit a rounding step outside a range they were drawn inside
    (r = 0.6 becomes 0.6000000238): those are moved back onto the edge; anything further out
    raises `ParameterRangeError` naming the row.
    """
    from galaxies.conventions import RANGES
    from galaxies.runtime.errors import ParameterRangeError

    rows = np.column_stack([np.asarray(label, np.float64), np.asarray(psf_fwhm, np.float64),
                            np.asarray(sigma, np.float64)])
    slack = 1e-6
    for j, name in enumerate(["flux", "sersic_n", "sersic_r", None, None, "psf_fwhm", "sigma"]):
        if name is None:
            continue
        low, high = RANGES[name].low, RANGES[name].high
        near = (rows[:, j] >= low * (1 - slack)) & (rows[:, j] <= high * (1 + slack))
        rows[near, j] = np.clip(rows[near, j], low, high)
    g = np.hypot(rows[:, 3], rows[:, 4])
    limit = RANGES["shear"].high
    near = (g > limit) & (g <= limit * (1 + slack))
    rows[near, 3:5] *= (limit / g[near])[:, None]
    for k, row in enumerate(rows):
        try:
            check_parameters(*row)
        except ParameterRangeError as err:
            raise ParameterRangeError(f"row {k}: {err}") from None
    return rows


def for_dataset(path, limit: int | None = None, jobs: int | None = None,
                progress: bool = True, rows=None, renderer: str = "galsim",
                sigma: float | None = None, cache_dir=None) -> np.ndarray:
    """Cramér–Rao bounds of every galaxy of a data set: an (N, 5) array, row i for row i of
    the set, in label units.

    Parameters
    ----------
    path
        the data set (HDF5, the contract of docs/architecture.md).
    limit
        compute only the first ``limit`` rows (the others are NaN).
    jobs
        worker processes (default: all cores; 1 computes in this process).
    progress
        show a tqdm progress bar.
    rows
        instead of ``limit``: the row numbers to compute (e.g. those an estimator predicted);
        the others are NaN.
    renderer
        ``"galsim"`` (`galaxies.inference.crb`, in ``jobs`` processes) or ``"jax"`` (the
        differentiable model, batched in this process; ``jobs`` unused).
    sigma
        the read noise of every galaxy instead of each row's own (e.g. a noise level a
        training stream draws); None: the set's.
    cache_dir
        the folder of the cache (default: the set's own, e.g. when that one is read-only).

    Results are kept in `cache_path` (``<set>.crb.h5`` or ``<set>.crb-jax.h5``, written
    atomically) and reused while the set's labels, PSF and noise are unchanged; rows computed
    before are not recomputed.
    Identical galaxies (a fixed-parameter test set) are computed once. A galaxy whose Fisher
    matrix is singular gets NaN bounds.
    """
    from tqdm.auto import tqdm

    from galaxies.runtime.resources import resolve_jobs
    from galaxies.storage import atomic, files

    _check_renderer(renderer)
    dataset = files.load_dataset(path, fields=())
    jobs = resolve_jobs(jobs)
    size = len(dataset)
    wanted = selected_rows(size, limit, rows, path)
    noise = dataset.sigma if sigma is None else np.full(size, sigma, dtype=np.float64)
    params = np.zeros((size, 7))
    params[wanted] = checked_rows(dataset.label[wanted], dataset.psf_fwhm[wanted], noise[wanted])
    fingerprint = _fingerprint(dataset.label, dataset.psf_fwhm, noise, renderer)
    store = cache_path(path, renderer, sigma, cache_dir)
    crb, computed = _read_cache(store, fingerprint, size)
    todo_rows = wanted[~computed[wanted]]
    if len(todo_rows):
        unique, inverse = np.unique(params[todo_rows], axis=0, return_inverse=True)
        inverse = inverse.ravel()
        bar = tqdm(total=len(unique), unit="galaxy", desc=f"CRB {Path(path).stem}",
                   disable=not show_progress(progress))
        try:
            values = (_jax_bounds(unique, bar) if renderer == "jax"
                      else _galsim_bounds(unique, jobs, bar))
        finally:
            bar.close()
        crb[todo_rows] = values[inverse]
        computed[todo_rows] = True
        try:
            store.parent.mkdir(parents=True, exist_ok=True)
            with atomic.atomic_h5(store, force=True) as f:
                f.create_dataset("crb", data=crb).attrs["columns"] = list(LABEL_COLUMNS)
                f.create_dataset("computed", data=computed)
                f.attrs["dataset"] = str(Path(path).name)
                f.attrs["dataset_fingerprint"] = fingerprint
                f.attrs["renderer"] = renderer
                if renderer == "galsim":
                    f.attrs["steps"] = json.dumps(STEPS, sort_keys=True)
                f.attrs["noise_model"] = "Gaussian, variance sigma^2 + mu (Poisson + read noise)"
                f.attrs["galaxies_version"] = files._version()
        except OSError as err:  # a read-only folder: keep the bounds, say why they are not kept
            warnings.warn(f"the bounds are not cached in {store} ({err}); they will be computed "
                          f"again next time", stacklevel=2)
    out = np.full((size, 5), np.nan)
    out[wanted] = crb[wanted]
    return out
