"""Dask against the local process pool on this machine: throughput, overhead, identical bits.

For the local pool with ``--jobs`` 1 and 2, and for a Dask scheduler with 1 and 2 workers
(``dask scheduler`` and ``dask worker --nthreads 1`` started as separate processes, fresh for
each count, joined with ``galaxies.runtime.parallel.engine("tcp://...")``), measures:

* generation: images/s of a random set (PSF and noise random, ``--sersics`` indices), cold
  (a fresh pool or freshly started workers: imports and GalSim tables included) and warm (the
  same run again: Dask workers, and this process for jobs 1, keep their tables; a local pool
  is spawned anew by each call, so it is always cold);
* the fit: images/s of the maximum-likelihood fit of the first ``--fit`` images;
* the overhead of one trivial task through the pool (``abs(-1)``: submit to result, after a
  warm-up), the cost a task pays for going through the engine;
* whether the set and the fits are the bits of ``--jobs 1`` (fits: all but their timings).

    python benchmarks/dask_scaling.py                          # 2000 images, 24 fits
    python benchmarks/dask_scaling.py --size 500 --fit 8       # a quicker look
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import wait
from pathlib import Path

import h5py
import numpy as np

from galaxies.inference.galsim_fit import fit_dataset
from galaxies.runtime import parallel
from galaxies.runtime.cluster import LocalhostCluster
from galaxies.simulation.generate import RandomSpec, generate_random

TIMING = {"seconds", "seconds_per_image", "median_seconds_per_image", "wall_seconds", "jobs"}


def same(a, b, skip=()) -> bool:
    with h5py.File(a, "r") as x, h5py.File(b, "r") as y:
        return (sorted(x) == sorted(y)
                and all(np.array_equal(x[k][()], y[k][()]) for k in x if k not in skip)
                and all(np.array_equal(x.attrs[k], y.attrs.get(k)) for k in x.attrs if k not in skip))


def task_overhead(jobs: int, tasks: int) -> float:
    """Seconds per trivial task through `parallel.process_pool`, after a warm-up."""
    with parallel.process_pool(jobs) as pool:
        wait([pool.submit(abs, -1) for _ in range(2 * jobs)])
        start = time.perf_counter()
        wait([pool.submit(abs, -k) for k in range(tasks)])
        return (time.perf_counter() - start) / tasks


def measure(label: str, jobs: int, args, folder: Path, reference) -> tuple[dict, tuple]:
    spec = RandomSpec(sersics=args.sersics, psf_fwhm=None, sigma=None)
    row = {"engine": label, "workers": jobs}
    paths = []
    for run in ("cold", "warm"):
        path = folder / f"{label}-{jobs}-{run}.h5"
        start = time.perf_counter()
        generate_random(path, spec, args.size, seed=args.seed, jobs=jobs, force=True, progress=False)
        row[f"gen img/s {run}"] = args.size / (time.perf_counter() - start)
        paths.append(path)
    fits = folder / f"{label}-{jobs}-fit.h5"
    start = time.perf_counter()
    fit_dataset(reference[0] if reference else paths[0], fits, limit=args.fit, jobs=jobs,
                progress=False, force=True)
    row["fit img/s"] = args.fit / (time.perf_counter() - start)
    row["task ms"] = 1e3 * task_overhead(jobs, args.tasks)
    if reference is None:
        reference = (paths[0], fits)
    row["same bits"] = (all(same(reference[0], p) for p in paths)
                        and same(reference[1], fits, skip=TIMING))
    print(f"  {label} {jobs}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in row.items() if k not in ("engine", "workers")),
          flush=True)
    return row, reference


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2000, help="images generated [2000]")
    parser.add_argument("--sersics", type=int, default=20, help="Sérsic indices [20]")
    parser.add_argument("--fit", type=int, default=24, help="images fitted [24]")
    parser.add_argument("--tasks", type=int, default=200, help="trivial tasks timed [200]")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()

    import pandas as pd
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start; "
          f"{args.size} images (--sersics {args.sersics}), {args.fit} fits", flush=True)
    rows, reference = [], None
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        folder = Path(tmp)
        for jobs in args.workers:
            row, reference = measure("local pool", jobs, args, folder, reference)
            rows.append(row)
        for workers in args.workers:
            start = time.perf_counter()
            with LocalhostCluster(folder / f"dask-{workers}", workers=workers) as running:
                started = time.perf_counter() - start
                with parallel.engine(running.address):
                    row, _ = measure("dask", workers, args, folder, reference)
            row["start s"] = started
            rows.append(row)
    table = pd.DataFrame(rows).set_index(["engine", "workers"])
    with pd.option_context("display.float_format", "{:.3g}".format, "display.width", 120):
        print(f"\n{table.to_string()}")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end; 'start s': the scheduler and "
          f"workers up and registered; 'task ms': one trivial task, submit to result")


if __name__ == "__main__":
    main()
