"""Generate data sets of simulated galaxies: parallel, deterministic, and fast.

Two kinds of set:

* **random** (training sets): each galaxy's parameters are drawn at random (Sérsic index
  continuous or from ``sersics`` equally spaced values, radius and flux uniform, shear by
  ``|g| ~ U(0, 0.67)`` and ``beta ~ U(0, pi)``, PSF and noise fixed or uniform in their
  ranges), and a galaxy is kept only if its SNR lies in [10, 100]; otherwise all of its
  parameters are drawn again (the original study's rejection sampling). The default sampler
  (``"envelope"``, `sampler`) skips the renders of candidates whose flux cannot pass the cut
  given their shape, keeping exactly the rows of ``sampler="rejection"``.
* **fixed** (test sets): one set of parameters; rows differ only by noise realization.

Determinism: candidate ``k`` of row ``i`` takes its parameters and its noise seed from
``SeedSequence(seed, spawn_key=(i, k))``, so a row depends only on the seed and its index,
never on which process drew it nor on the order results come back: any ``jobs`` gives the
same bits.

Streaming: rows are made and written ``CHUNK_ROWS`` at a time; ``resume=True`` continues a
killed run from its complete chunks (`galaxies.storage.resumable`), bit for bit.

Speed: candidates go to workers by Sérsic index, so each worker builds GalSim's costly
per-index Hankel table once (`galaxies.simulation.render.GalaxyRenderer`).
"""
from __future__ import annotations

import contextlib
import math
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from galaxies.conventions import (IMAGE_SIZE, MOFFAT_BETA, PIXEL_SCALE, RANGES, SNR_RANGE,
                                  check_parameters, check_range, snr)
from galaxies.runtime import console
from galaxies.runtime.errors import InputError, ParameterRangeError
from galaxies.runtime.parallel import process_pool, remote, workers_for
from galaxies.runtime.resources import check_disk, check_memory, resolve_jobs
from galaxies.storage import files, resumable

from . import sampler
from .render import GalaxyRenderer, add_noise
from .sampler import _FLUX, _G1, _G2, _N, _PSF, _R, _SIGMA, _uniforms, draw_candidates

#: Give up on a row after this many rejected candidates (only reachable with settings whose
#: SNR can hardly fall in the window).
MAX_ATTEMPTS = 10_000
#: Candidates per task sent to a worker: small enough for a smooth progress bar.
TASK_SIZE = 64


@dataclass(frozen=True)
class RandomSpec:
    """How a training set draws its galaxies.

    Parameters:
        sersics:   number of equally spaced Sérsic indices in [0.5, 6]; ``None``: continuous.
        psf_fwhm:  fixed PSF FWHM in arcsec; ``None``: uniform in [0.5, 1.0] per galaxy.
        sigma:     fixed read noise; ``None``: uniform in [200, 400] per galaxy.
        sampler:   ``"envelope"`` skips the renders of sure rejections (`galaxies.simulation.sampler`);
                   ``"rejection"`` renders every candidate. Both write the same rows.
    """

    sersics: int | None = None
    psf_fwhm: float | None = 0.5
    sigma: float | None = 200.0
    sampler: str = "envelope"

    kind = "random"

    def __post_init__(self):
        if self.sersics is not None and (int(self.sersics) != self.sersics or self.sersics < 1):
            raise ParameterRangeError(
                f"sersics = {self.sersics} must be a positive integer (or omitted for continuous n)")
        if self.psf_fwhm is not None:
            check_range("psf_fwhm", self.psf_fwhm)
        if self.sigma is not None:
            check_range("sigma", self.sigma)
        if self.sampler not in sampler.SAMPLERS:
            raise InputError(f"sampler = {self.sampler!r} is not one of "
                             f"{', '.join(map(repr, sampler.SAMPLERS))}")

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

    ``jobs`` single-process pools, so candidates of one Sérsic index always go to the same
    process and reuse its table; ``jobs=1`` renders here, single-threaded. Under a Dask engine
    ``worker`` names a cluster worker the task prefers (it runs elsewhere if that is lost)."""
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

#: Rows a chunk: generated, written, flushed and marked done together (a resumed run continues
#: at the first chunk not done); the images of a few chunks are all a run holds in memory.
CHUNK_ROWS = 256
_STATS = 2  # counts kept per chunk: candidates drawn, candidates rendered


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
    it is shared), or whose per-row bookkeeping (~40 bytes a row) memory cannot."""
    images = 2 + (0 if shared_psf else 1)
    check_disk(path, size * (images * IMAGE_SIZE * IMAGE_SIZE * 4 + 4 * (5 + 3)),
               f"a data set of {size:,} images")
    check_memory(size * 40, f"generating {size:,} images")


def _open(path, spec, size, seed, name, force, resume, chunk_rows):
    """The partial file of ``path`` (new, or resumed), with the PSF image of a fixed PSF."""
    shared = spec.kind == "fixed" or spec.psf_fwhm is not None
    recipe = recipe_attribute(spec, size, seed, name)

    def create(f):
        fields = files.create_dataset_fields(f, size, shared_psf=shared)
        if shared:
            fields["psf_img"][0] = _worker_renderer().draw_psf(spec.psf_fwhm)
        files.write_attrs(f, seed, recipe)
    return resumable.resumable_h5(path, recipe, size, chunk_rows, _STATS, create,
                                  force=force, resume=resume)


class _Chunk:
    """The rows of one chunk, held in memory until every one has its galaxy."""

    def __init__(self, rows: range, with_psf: bool):
        n, shape = len(rows), (len(rows), IMAGE_SIZE, IMAGE_SIZE)
        self.start, self.left, self.counts = rows.start, n, np.zeros(_STATS, np.int64)
        self.img, self.img_nonoise = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        self.psf_img = np.zeros(shape, np.float32) if with_psf else None
        self.label = np.zeros((n, 5), np.float32)
        self.psf_fwhm, self.sigma, self.snr = (np.zeros(n, np.float32) for _ in range(3))

    def write(self, f) -> None:
        rows = slice(self.start, self.start + len(self.label))
        for key in ("img", "img_nonoise", "psf_img", "label", "psf_fwhm", "sigma", "snr"):
            if getattr(self, key) is not None:
                f[key][rows] = getattr(self, key)


def _envelope(spec, size: int, jobs: int, submit) -> sampler.Envelope:
    """The envelope of ``spec``'s SNR per unit flux (rendered by the workers, each table index
    by the worker that owns it), or none for the rejection sampler or a set too small to
    repay the table's renders."""
    if spec.sampler == "rejection" or not sampler.worth_a_table(spec, size):
        return sampler.Envelope()
    nodes = sampler.table_nodes(spec)
    owner = np.searchsorted(np.unique(nodes[:, _N]), nodes[:, _N]) % jobs
    futures = {submit(w, nodes[owner == w], False, (np.inf, np.inf)): w for w in range(jobs)
               if (owner == w).any()}
    snrs = np.zeros(len(nodes))
    for future, w in futures.items():
        snrs[owner == w] = future.result()[1]
    return sampler.envelope_from_table(spec, snrs)


def _generate_rows(f, progress, spec, seed: int, size: int, jobs: int, bar) -> None:
    """Fill the chunks ``progress`` lists as not done, writing each when its rows are kept."""
    with_psf, grid, chunk_rows = spec.psf_fwhm is None, spec.sersic_grid, progress.chunk_rows
    todo, active, pending, in_flight = iter(progress.todo()), {}, [], {}
    attempts = np.zeros(size, np.int64)
    target = max(chunk_rows, 8 * jobs * TASK_SIZE)

    def count(rows, column):
        for k, m in zip(*np.unique(rows // chunk_rows, return_counts=True)):
            active[k].counts[column] += m

    def redraw(rows):
        attempts[rows] += 1
        if len(rows) and attempts[rows].max() >= MAX_ATTEMPTS:
            raise RuntimeError(f"row {int(rows[np.argmax(attempts[rows])])} found no galaxy with "
                               f"SNR in [{SNR_RANGE.low:g}, {SNR_RANGE.high:g}] after {MAX_ATTEMPTS} "
                               f"draws; check the PSF and noise settings ({spec})")

    def submit_rows(rows, submit):
        """Draw until each row's candidate may pass the cut, then send those to render."""
        kept_rows, kept = [rows[:0]], [np.empty((0, 8))]
        while len(rows):
            candidates = draw_candidates(spec, seed, rows, attempts[rows])
            count(rows, 0)
            ok = envelope.may_pass(candidates)
            kept_rows.append(rows[ok]), kept.append(candidates[ok])
            rows = rows[~ok]
            redraw(rows)
        rows, candidates = np.concatenate(kept_rows), np.concatenate(kept)
        owner = (rows if grid is None else np.searchsorted(grid, candidates[:, _N])) % jobs
        for w in range(jobs):
            mine = np.flatnonzero(owner == w)
            mine = mine[np.argsort(candidates[mine, _N], kind="stable")]
            for task in np.array_split(mine, math.ceil(len(mine) / TASK_SIZE) or 1):
                if len(task):
                    in_flight[submit(w, candidates[task], with_psf)] = rows[task], candidates[task]

    with _workers(jobs) as submit:
        envelope = _envelope(spec, size, jobs, submit)
        f.attrs["envelope_renders"] = 0 if envelope.log_a is None else envelope.log_a.size
        while True:
            if sum(len(r) for r, _ in in_flight.values()) <= target // 2:
                rows = list(pending)
                pending.clear()
                while sum(map(len, rows)) < target and (k := next(todo, None)) is not None:
                    active[k] = _Chunk(progress.rows(k, size), with_psf)
                    rows.append(np.arange(active[k].start, active[k].start + active[k].left))
                if rows:
                    submit_rows(np.sort(np.concatenate(rows)), submit)
            if not in_flight:
                return
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                rows, candidates = in_flight.pop(future)
                keep, snrs, clean, noisy, psf = future.result()
                envelope.check(candidates, snrs)
                count(rows, 1)
                pending.append(rows[~keep])
                redraw(rows[~keep])
                for j, m in enumerate(np.flatnonzero(keep)):
                    i, c = rows[m], candidates[m]
                    chunk = active[i // chunk_rows]
                    r = i - chunk.start
                    chunk.img[r], chunk.img_nonoise[r] = noisy[j], clean[j]
                    if with_psf:
                        chunk.psf_img[r] = psf[j]
                    chunk.label[r] = c[[_FLUX, _N, _R, _G1, _G2]]
                    chunk.psf_fwhm[r], chunk.sigma[r], chunk.snr[r] = c[_PSF], c[_SIGMA], snrs[m]
                    chunk.left -= 1
                for k in sorted({int(i) // chunk_rows for i in rows[keep]}):
                    if active[k].left == 0:
                        active[k].write(f)
                        progress.mark_done(k, active.pop(k).counts)
                        bar.update(len(progress.rows(k, size)))


def generate_random(path, spec: RandomSpec, size: int, seed: int, jobs: int | None = None,
                    force: bool = False, progress: bool = True, name: str | None = None,
                    resume: bool = False, chunk_rows: int = CHUNK_ROWS) -> Path:
    """Write a random-parameter data set of ``size`` galaxies to ``path`` (HDF5), chunk by
    chunk; ``resume`` continues the partial file an interrupted run left (`galaxies.storage.resumable`)."""
    from tqdm.auto import tqdm
    size, jobs = _check_size(size), workers_for(resolve_jobs(jobs))
    _check_room(path, size, shared_psf=spec.psf_fwhm is not None)
    try:
        with _open(path, spec, size, seed, name, force, resume, chunk_rows) as (f, chunks):
            left = sum(len(chunks.rows(k, size)) for k in chunks.todo())
            with tqdm(total=size, initial=size - left, unit="img", smoothing=0.05, desc=f"generate "
                      f"{name or Path(path).stem}", disable=not console.show_progress(progress)) as bar:
                _generate_rows(f, chunks, spec, seed, size, jobs, bar)
            drawn, rendered = chunks.stats.sum(axis=0)
            f.attrs["acceptance_rate"] = size / drawn
            f.attrs["renders_kept"] = size / (rendered + f.attrs["envelope_renders"])
    except sampler.EnvelopeError:  # the chunks done may have skipped what they should keep
        resumable.partial_name(path).unlink(missing_ok=True)
        raise
    return Path(path)


def generate_fixed(path, spec: FixedSpec, size: int, seed: int, force: bool = False,
                   progress: bool = True, name: str | None = None, resume: bool = False,
                   chunk_rows: int = CHUNK_ROWS) -> Path:
    """Write a fixed-parameter test set: ``size`` noise realizations of one galaxy."""
    from tqdm.auto import tqdm
    size = _check_size(size)
    _check_room(path, size, shared_psf=True)
    renderer = _worker_renderer()
    clean = renderer.draw(spec.flux, spec.sersic_n, spec.sersic_r, spec.g1, spec.g2, spec.psf_fwhm)
    label = np.array([spec.flux, spec.sersic_n, spec.sersic_r, spec.g1, spec.g2], np.float32)
    with _open(path, spec, size, seed, name, force, resume, chunk_rows) as (f, chunks):
        for k in tqdm(chunks.todo(), disable=not console.show_progress(progress), unit="chunk",
                      desc=f"generate {name or Path(path).stem}"):
            rows = chunks.rows(k, size)
            sl, n = slice(rows.start, rows.stop), len(rows)
            seeds = [int(_uniforms(seed, i, 0)[7] % np.uint64(2**31 - 1)) + 1 for i in rows]
            f["img"][sl] = np.stack([add_noise(clean, spec.sigma, s) for s in seeds])
            f["img_nonoise"][sl] = np.broadcast_to(clean, (n,) + clean.shape)
            f["label"][sl] = np.broadcast_to(label, (n, 5))
            f["psf_fwhm"][sl], f["sigma"][sl] = spec.psf_fwhm, spec.sigma
            f["snr"][sl] = snr(clean, spec.sigma)
            chunks.mark_done(k, (n, 0))
    return Path(path)


def generate(path, spec: RandomSpec | FixedSpec, size: int, seed: int, jobs: int | None = None,
             force: bool = False, progress: bool = True, name: str | None = None,
             resume: bool = False, chunk_rows: int = CHUNK_ROWS) -> Path:
    """Write a data set of either kind (see `generate_random` and `generate_fixed`)."""
    options = dict(force=force, progress=progress, name=name, resume=resume, chunk_rows=chunk_rows)
    if isinstance(spec, FixedSpec):
        return generate_fixed(path, spec, size, seed, **options)
    return generate_random(path, spec, size, seed, jobs=jobs, **options)
