"""What every worker process of the package's loops needs, on a local pool or a Dask cluster:
the cores it may use, one thread for GalSim and the BLAS, and a main script it will not re-run.
"""
from __future__ import annotations

import contextlib
import os
import sys
import types
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
def bare_main() -> Iterator[None]:
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
