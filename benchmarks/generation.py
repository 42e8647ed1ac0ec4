"""Data-set generation speed: our generator against a plain GalSim loop.

Builds a training set like v1 (PSF 0.5, sigma 200, SNR cut) with ``--sersics`` indices using
``galaxies.simulation.generate`` (the envelope sampler) over ``--jobs`` processes, and measures its CPU
time per kept image (this process and its workers) and the fraction of its renders kept. Its
cost is a fixed part (a Hankel table per Sérsic index, the envelope's table) and a part per
image, so it is measured at ``--size`` and at a quarter of it, and the line through the two
gives the cost per image at 200,000 images (the full profile) as well. Then a set of
``--compare-size`` rows with the rejection sampler and another seed: two-sample
Kolmogorov–Smirnov tests of every label and the SNR against ours. Then the plain loop the seed
would have run without its GalSim fork, on a sample: rows in random order, every candidate
drawn with ``galsim.Sersic(...).drawImage`` and the same SNR rejection. Prints both, their
ratio, the images per second per core, and what continuous n costs.

    python benchmarks/generation.py                 # the full-profile size, 200,000 images
    python benchmarks/generation.py --size 20000 --jobs 1   # a quicker look
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import galsim
import numpy as np
from scipy import stats

from galaxies.conventions import (IMAGE_SIZE, MOFFAT_BETA, PIXEL_SCALE, RANGES, SNR_RANGE,
                                  shear_components, snr)
from galaxies.runtime.workers import default_jobs
from galaxies.simulation.generate import RandomSpec, generate_random
from galaxies.simulation.render import add_noise


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


def ours(size: int, sersics: int | None, jobs: int, folder: Path, sampler: str = "envelope",
         seed: int = 2024, keep: bool = False) -> dict:
    """CPU seconds per kept image, wall seconds, acceptance rate, fraction of renders kept,
    and (``keep``) the labels and SNR of the set."""
    import h5py
    path = folder / f"bench-{sampler}-{sersics}-{size}.h5"
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    generate_random(path, RandomSpec(sersics=sersics, psf_fwhm=0.5, sigma=200.0, sampler=sampler),
                    size, seed=seed, jobs=jobs, force=True, progress=True)
    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    with h5py.File(path) as f:
        out = {"cpu": cpu / size, "cpu_total": cpu, "wall": wall,
               "acceptance": float(f.attrs["acceptance_rate"]),
               "renders_kept": float(f.attrs["renders_kept"]),
               "table": int(f.attrs["envelope_renders"])}
        if keep:
            out["columns"] = {**dict(zip(("flux", "sersic_n", "sersic_r", "g1", "g2"),
                                         f["label"][()].T)), "snr": f["snr"][()]}
    path.unlink()
    return out


def fresh(size: int, sersics: int | None, jobs: int, folder: Path, sampler: str = "envelope",
          seed: int = 2024, keep: bool = False) -> dict:
    """`ours` in a new process, so that no GalSim table of a former run is reused (with
    ``--jobs 1`` the rendering happens in the process that calls `generate_random`)."""
    import json
    import subprocess
    import sys
    out = folder / "result"
    code = (f"import sys, json, numpy as np; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import galsim; galsim.set_omp_threads(1); from generation import ours; "
            f"r = ours({size}, {sersics}, {jobs}, __import__('pathlib').Path({str(folder)!r}), "
            f"{sampler!r}, {seed}, {keep}); np.savez({str(out)!r}, **r.pop('columns', {{}})); "
            f"open({str(out)!r} + '.json', 'w').write(json.dumps(r))")
    subprocess.run([sys.executable, "-c", code], check=True)
    result = json.loads(Path(f"{out}.json").read_text())
    if keep:
        with np.load(f"{out}.npz") as columns:
            result["columns"] = dict(columns)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=200_000, help="images in our set [200000]")
    parser.add_argument("--sersics", type=int, default=1000, help="Sérsic indices [1000]")
    parser.add_argument("--jobs", type=int, default=default_jobs())
    parser.add_argument("--plain-sample", type=int, default=300, help="kept images in the plain loop")
    parser.add_argument("--continuous-sample", type=int, default=300,
                        help="images generated with continuous n")
    parser.add_argument("--compare-size", type=int, default=5000,
                        help="rows of the rejection sampler's set for the two-sample tests")
    args = parser.parse_args()

    galsim.set_omp_threads(1)  # CPU time on one core for both loops (see generate.py)
    print(f"GalSim {galsim.__version__}; {args.jobs} worker process(es); load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        tmp = Path(tmp).resolve()
        big = fresh(args.size, args.sersics, args.jobs, Path(tmp), keep=True)
        small = fresh(args.size // 4, args.sersics, args.jobs, Path(tmp))
        rejection = fresh(args.compare_size, args.sersics, args.jobs, Path(tmp), "rejection",
                          seed=2025, keep=True)
        cont = fresh(args.continuous_sample, None, args.jobs, Path(tmp))
    cpu_plain, drawn = plain_loop(args.plain_sample, args.sersics, seed=7)
    per_image = (big["cpu_total"] - small["cpu_total"]) / (args.size - args.size // 4)
    fixed = big["cpu_total"] - per_image * args.size
    full = per_image + fixed / 200_000

    print(f"\nour generator, --sersics {args.sersics}, {args.size} images: "
          f"{1e3 * big['cpu']:.2f} ms CPU per image ({1 / big['cpu']:.0f} images/s per core), "
          f"{big['wall']:.0f} s wall, SNR acceptance {big['acceptance']:.2f}, renders kept "
          f"{big['renders_kept']:.2f} (envelope table {big['table']} renders included)")
    print(f"  at {args.size // 4} images {1e3 * small['cpu']:.2f} ms: fixed {fixed:.0f} s CPU "
          f"(Hankel tables, envelope table) + {1e3 * per_image:.2f} ms per image; "
          f"at 200000 images {1e3 * full:.2f} ms per image")
    print(f"rejection sampler, {args.compare_size} images: {1e3 * rejection['cpu']:.2f} ms CPU per "
          f"image, renders kept {rejection['renders_kept']:.2f}")
    print("two-sample KS tests, ours against the rejection sampler (another seed): " + ", ".join(
        f"{k} p={stats.ks_2samp(big['columns'][k], rejection['columns'][k]).pvalue:.2f}"
        for k in big["columns"]))
    print(f"plain GalSim loop, {args.plain_sample} images in random order: "
          f"{1e3 * cpu_plain:.1f} ms CPU per image ({1 / cpu_plain:.1f} images/s per core), "
          f"acceptance {args.plain_sample / drawn:.2f}")
    print(f"speed-up (CPU time per image, plain / ours): {cpu_plain / big['cpu']:.1f}x at "
          f"{args.size} images, {cpu_plain / full:.1f}x at 200000 (fixed cost spread)")
    print(f"continuous n ({args.continuous_sample} images): {1e3 * cont['cpu']:.1f} ms CPU per "
          f"image ({cpu_plain / cont['cpu']:.1f}x the plain loop): every candidate rendered "
          f"needs a new Hankel table")


if __name__ == "__main__":
    main()
