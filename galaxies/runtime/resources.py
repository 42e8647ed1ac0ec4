"""Checks that a request fits this machine before any work or memory is spent on it.

A data set of a billion images, a file that claims 10^7 rows in a few kilobytes, a pool of a
thousand processes: each is refused up front with a `ResourceError` or `InputError` naming the
request and what is available, instead of a MemoryError or a full disk minutes later.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import InputError, ResourceError

__all__ = ["free_disk", "free_memory", "check_disk", "check_memory", "resolve_jobs",
           "MAX_JOBS_PER_CORE"]

#: worker processes allowed per core (a few more than cores can help I/O-bound runs; a
#: thousand only thrash)
MAX_JOBS_PER_CORE = 4


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.3g} GB"


def free_disk(path) -> int:
    """Bytes free on the file system that holds ``path`` (or its nearest existing folder; a
    link at ``path``, even one that loops, is not followed)."""
    path = Path(os.path.abspath(path))
    while not path.is_dir():
        path = path.parent
    return shutil.disk_usage(path).free


def free_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable``; else physical)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_disk(path, nbytes: float, what: str) -> None:
    """Refuse to write ``nbytes`` at ``path`` when the disk cannot hold them."""
    free = free_disk(path)
    if nbytes > free:
        raise ResourceError(f"{what} needs {_gb(nbytes)} at {path}, but only {_gb(free)} is free "
                            f"there; ask for fewer rows or choose another folder")


def check_memory(nbytes: float, what: str,
                 remedy: str = "read fewer rows (--limit) or fewer fields") -> None:
    """Refuse to allocate ``nbytes`` when memory cannot hold them (with a 10% margin); the
    message names ``what`` needs them and the ``remedy``."""
    free = free_memory()
    if nbytes > 0.9 * free:
        raise ResourceError(f"{what} needs {_gb(nbytes)} of memory, but only {_gb(free)} is "
                            f"available; {remedy}")


def resolve_jobs(jobs, tasks: int | None = None) -> int:
    """Worker processes for a request of ``jobs`` (None: one per core this process may use),
    between 1 and `MAX_JOBS_PER_CORE` per core, and no more than ``tasks``."""
    from .workers import default_jobs
    cores = default_jobs()
    if jobs is None:
        jobs = cores
    if isinstance(jobs, bool) or not float(jobs).is_integer() or not 1 <= jobs <= MAX_JOBS_PER_CORE * cores:
        raise InputError(f"jobs = {jobs}: choose 1 to {MAX_JOBS_PER_CORE * cores} worker processes "
                         f"({cores} cores here)")
    jobs = int(jobs)
    return max(1, min(jobs, tasks)) if tasks is not None else jobs
