"""Worker processes for the package's parallel loops (data generation, fits, bounds).

Workers are started with ``spawn`` (safe when the caller holds threads: TensorFlow, Jupyter,
Streamlit) and run single-threaded: with one process per core, GalSim's OpenMP FFT threads and
BLAS threads only compete with the other workers, and inflate CPU time by ~30%.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import sys
import types
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Iterator

_blas_limit = None  # kept alive in each worker: threadpoolctl undoes the limit when collected


def default_jobs() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def single_threaded() -> None:
    """Limit GalSim's OpenMP and the BLAS to one thread in this process."""
    global _blas_limit
    import galsim
    galsim.set_omp_threads(1)
    try:
        from threadpoolctl import threadpool_limits
        _blas_limit = threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


@contextlib.contextmanager
def _bare_main() -> Iterator[None]:
    """Hide the caller's main script from spawned children.

    A spawned child re-imports the parent's ``__main__`` by its file path. Under Streamlit
    (which installs the app script as ``__main__``), a notebook kernel or a test runner that is
    at best slow and at worst fails; the workers need only this package.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``workers`` single-threaded spawned processes, shut down on exit (pending
    work cancelled if the block raises, Ctrl-C included)."""
    with _bare_main():
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
    source read as the work goes (`galaxies.chunked.RowSource`): ``len()`` rows and
    ``chunks(size)``, tuples of ``size`` rows of each array (the last fewer), in order.

    The image-by-image loops of the package (fits, refinements) go through here: chunks of at
    most 8 rows, a tqdm bar, and at most one worker per 4 rows (a worker costs seconds to start:
    it imports GalSim and builds its Sérsic tables). With one worker the rows run in this
    process, single-threaded as a worker would be.
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    from tqdm.auto import tqdm

    lazy = not isinstance(arrays, (tuple, list))
    size = len(arrays) if lazy else len(arrays[0])
    jobs = min(jobs, max(1, size // 4))
    chunk = max(1, min(8, size // (4 * jobs)))
    parts = enumerate(arrays.chunks(chunk) if lazy else
                      (tuple(a[s:s + chunk] for a in arrays) for s in range(0, size, chunk)))
    results: list = [None] * size
    bar = tqdm(total=size, unit="img", desc=desc, disable=not progress)
    try:
        if jobs == 1:
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
