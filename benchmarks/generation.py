"""Data-set generation speed: our generator against a plain GalSim loop.

Builds a training set like v1 (PSF 0.5, sigma 200, SNR cut) with ``--sersics`` indices using
``galaxies.generate`` over ``--jobs`` processes, and measures its CPU time per kept image
(this process and its workers). Then runs the plain loop the seed would have run without its
GalSim fork, on a sample: rows in random order, every candidate drawn with
``galsim.Sersic(...).drawImage`` and the same SNR rejection. Prints both, their ratio, the
images per second per core, and what continuous n costs.

    python benchmarks/generation.py                 # the full-profile size, 200,000 images
    python benchmarks/generation.py --size 20000    # a quicker look
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import galsim
import numpy as np

from galaxies.generate import RandomSpec, generate_random
from galaxies.parallel import default_jobs
from galaxies.simulate import (IMAGE_SIZE, MOFFAT_BETA, PIXEL_SCALE, RANGES, SNR_RANGE,
                               add_noise, shear_components, snr)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def plain_loop(count: int, sersics: int | None, seed: int) -> tuple[float, int]:
    """The naive generator: returns CPU seconds per kept image and the candidates drawn."""
    rng = np.random.default_rng(seed)
    grid = None if sersics is None else np.linspace(0.5, 6.0, sersics)
    psf = galsim.Moffat(beta=MOFFAT_BETA, fwhm=0.5)
    drawn = 0
    start = time.process_time()
    for _ in range(count):
        while True:
            drawn += 1
            n = rng.uniform(0.5, 6.0) if grid is None else rng.choice(grid)
            r = rng.uniform(RANGES["sersic_r"].low, RANGES["sersic_r"].high)
            flux = rng.uniform(RANGES["flux"].low, RANGES["flux"].high)
            g1, g2 = shear_components(rng.uniform(0, 0.67), rng.uniform(0, np.pi))
            gal = galsim.Sersic(n, half_light_radius=r, flux=flux).shear(g1=g1, g2=g2)
            clean = galsim.Convolve(gal, psf).drawImage(nx=IMAGE_SIZE, ny=IMAGE_SIZE,
                                                        scale=PIXEL_SCALE).array
            if SNR_RANGE.low <= snr(clean, 200.0) <= SNR_RANGE.high:
                add_noise(clean, 200.0, int(rng.integers(1, 2**31)))
                break
    return (time.process_time() - start) / count, drawn


def ours(size: int, sersics: int | None, jobs: int, folder: Path) -> tuple[float, float, float]:
    """CPU seconds per kept image, wall seconds, and the acceptance rate."""
    import h5py
    path = folder / f"bench-{sersics}-{size}.h5"
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    generate_random(path, RandomSpec(sersics=sersics, psf_fwhm=0.5, sigma=200.0), size,
                    seed=2024, jobs=jobs, force=True, progress=True)
    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    with h5py.File(path) as f:
        acceptance = float(f.attrs["acceptance_rate"])
    path.unlink()
    return cpu / size, wall, acceptance


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=200_000, help="images in our set [200000]")
    parser.add_argument("--sersics", type=int, default=1000, help="Sérsic indices [1000]")
    parser.add_argument("--jobs", type=int, default=default_jobs())
    parser.add_argument("--plain-sample", type=int, default=300, help="kept images in the plain loop")
    parser.add_argument("--continuous-sample", type=int, default=300,
                        help="images generated with continuous n")
    args = parser.parse_args()

    galsim.set_omp_threads(1)  # CPU time on one core for both loops (see generate.py)
    print(f"GalSim {galsim.__version__}; {args.jobs} worker process(es)")
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        cpu_ours, wall, acceptance = ours(args.size, args.sersics, args.jobs, Path(tmp))
        cpu_cont, _, _ = ours(args.continuous_sample, None, args.jobs, Path(tmp))
    cpu_plain, drawn = plain_loop(args.plain_sample, args.sersics, seed=7)

    print(f"\nour generator, --sersics {args.sersics}, {args.size} images: "
          f"{1e3 * cpu_ours:.2f} ms CPU per image ({1 / cpu_ours:.0f} images/s per core), "
          f"{wall:.0f} s wall, acceptance {acceptance:.2f}")
    print(f"plain GalSim loop, {args.plain_sample} images in random order: "
          f"{1e3 * cpu_plain:.1f} ms CPU per image ({1 / cpu_plain:.1f} images/s per core), "
          f"acceptance {args.plain_sample / drawn:.2f}")
    print(f"speed-up (CPU time per image, plain / ours): {cpu_plain / cpu_ours:.1f}x")
    print(f"continuous n ({args.continuous_sample} images): {1e3 * cpu_cont:.1f} ms CPU per image "
          f"({cpu_plain / cpu_cont:.1f}x the plain loop): every candidate needs a new Hankel table")


if __name__ == "__main__":
    main()
