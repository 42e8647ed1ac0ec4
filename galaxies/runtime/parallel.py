"""Worker processes for the package's parallel loops (data generation, fits, bounds).

Workers are started with ``spawn`` (safe when the caller holds threads: TensorFlow, Jupyter,
Streamlit) and run single-threaded: with one process per core, GalSim's OpenMP FFT threads and
BLAS threads only compete with the other workers, and inflate CPU time by ~30%.

Past one machine the same loops run on a Dask cluster (`galaxies.runtime.cluster`): inside
``with engine(scheduler):`` (``local`` or ``tcp://host:port``), or everywhere when the
environment variable ``GALAXIES_SCHEDULER`` names one, `process_pool` yields a pool over the
cluster and `map_rows` sends its chunks there. The local process pool stays the default.
"""
from __future__ import annotations

import contextlib
import itertools
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Iterator

from .workers import bare_main, single_threaded

#: The environment variable naming the default scheduler (unset or ``none``: the local pool).
SCHEDULER_ENV = "GALAXIES_SCHEDULER"
_LOCAL_POOL = ("", "none")
_engines: list = []  # the engines of the enclosing `engine` blocks, innermost last
_defaults: dict = {}  # address -> Cluster made from the environment variable, kept until exit


@contextlib.contextmanager
def engine(scheduler: str | None = None, workers: int | None = None):
    """Run the package's parallel loops inside the block on the Dask cluster at ``scheduler``:
    ``local`` (a ``LocalCluster`` of ``workers`` processes, default one per core), a
    scheduler's address ``tcp://host:port``, or ``none`` (the local process pool). ``None``
    keeps the enclosing block's engine, else takes ``GALAXIES_SCHEDULER``. Yields the
    `galaxies.runtime.cluster.Cluster` (None for the local pool); a cluster made here is closed on exit.
    """
    if scheduler is None:
        if _engines:
            yield _engines[-1]
            return
        scheduler = os.environ.get(SCHEDULER_ENV, "")
    scheduler = scheduler.strip()
    if scheduler.lower() in _LOCAL_POOL:
        made = None
    elif _engines and _engines[-1] is not None and _engines[-1].address == scheduler:
        made = _engines[-1]
    else:
        from .cluster import Cluster
        made = Cluster(scheduler, workers)
    _engines.append(made)
    try:
        yield made
    finally:
        _engines.pop()
        if made is not None and made not in _engines:
            made.close()


def remote():
    """The Dask cluster the parallel loops use now (a `galaxies.runtime.cluster.Cluster`), or None for
    the local process pool. Outside `engine` blocks, ``GALAXIES_SCHEDULER`` decides, and the
    cluster it names is made on first use and kept for the life of this process."""
    if _engines:
        return _engines[-1]
    address = os.environ.get(SCHEDULER_ENV, "").strip()
    if address.lower() in _LOCAL_POOL:
        return None
    if address not in _defaults:
        import atexit

        from .cluster import Cluster
        _defaults[address] = cluster = Cluster(address)
        atexit.register(cluster.close)
    return _defaults[address]


def workers_for(jobs: int) -> int:
    """The workers a loop asked for ``jobs`` uses: ``jobs`` on the local pool, the cluster's
    task slots under Dask."""
    cluster = remote()
    return jobs if cluster is None else cluster.slots()


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``workers`` single-threaded spawned processes, shut down on exit (pending
    work cancelled if the block raises, Ctrl-C included). Under a Dask engine (`remote`), a
    pool over the cluster instead (``workers`` is the cluster's business)."""
    cluster = remote()
    if cluster is not None:
        pool = cluster.pool()
        try:
            yield pool
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return
    with bare_main():
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=single_threaded)
        try:
            yield pool
        except BaseException:
            # stop now: a worker would otherwise finish its task, and an interrupted run
            # could hang at exit waiting for it (3.11 has no public way to do this)
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()


def map_rows(work, arrays: tuple, jobs: int, *constants, desc: str = "", progress: bool = True
             ) -> tuple[list, int]:
    """``work(*chunk_of_each_array, *constants) -> list`` (one result per row) over every row
    of ``arrays``, in order; returns ``(results, workers used)``. ``arrays`` may also be a row
    source read as the work goes (`galaxies.storage.chunked.RowSource`): ``len()`` rows and
    ``chunks(size)``, tuples of ``size`` rows of each array (the last fewer), in order.

    The image-by-image loops of the package (fits, refinements) go through here: chunks of at
    most 8 rows, a tqdm bar, and at most one worker per 4 rows (a worker costs seconds to start:
    it imports GalSim and builds its Sérsic tables). With one worker the rows run in this
    process, single-threaded as a worker would be; under a Dask engine they always go to the
    cluster (``jobs`` is then its task slots).
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    from tqdm.auto import tqdm

    from .console import show_progress

    lazy = not isinstance(arrays, (tuple, list))
    size = len(arrays) if lazy else len(arrays[0])
    cluster = remote()
    jobs = min(workers_for(jobs), max(1, size // 4))
    chunk = max(1, min(8, size // (4 * jobs)))
    parts = enumerate(arrays.chunks(chunk) if lazy else
                      (tuple(a[s:s + chunk] for a in arrays) for s in range(0, size, chunk)))
    results: list = [None] * size
    bar = tqdm(total=size, unit="img", desc=desc, disable=not show_progress(progress))
    try:
        if jobs == 1 and cluster is None:
            import galsim
            threads = galsim.get_omp_threads()
            galsim.set_omp_threads(1)
            try:
                for i, part in parts:
                    results[i * chunk:(i + 1) * chunk] = work(*part, *constants)
                    bar.update(len(part[0]))
            finally:
                galsim.set_omp_threads(threads)
        else:
            with process_pool(jobs) as pool:
                futures: dict = {}
                while True:  # a few chunks in flight: a row source is read as they finish
                    for i, part in itertools.islice(parts, 4 * jobs - len(futures)):
                        futures[pool.submit(work, *part, *constants)] = i * chunk
                    if not futures:
                        break
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        s = futures.pop(future)
                        part = future.result()
                        results[s:s + len(part)] = part
                        bar.update(len(part))
    finally:
        bar.close()
    return results, jobs
