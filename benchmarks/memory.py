"""Peak memory of `galaxies predict` and `galaxies fit` on a large data set (read in blocks).

Builds (once, in ``--cache``, outside the repository) a fixed-galaxy set of ``--size`` images
(the snr60 galaxy: `FixedSpec` sets take ~2 s per 1,000 images), then runs each command in its
own process and prints that process's peak resident memory (``ru_maxrss`` of the child, from
``os.wait4``; with workers, the largest process), next to what its imports alone take and what
holding the set's noisy images would take. The target of the issue: under 1 GB for predict and
fit on 50,000 images (printed in MiB, against 1 GiB).

* ``predict``: `galaxies predict` with a quick-profile network on every image;
* ``fit --limit``: `galaxies fit` on the first ``--fit-limit`` images (a fit costs ~0.3 s);
* ``fit, every row``: `galaxies.inference.galsim_fit.fit_dataset` on every image with a stand-in for the
  fit of a row that costs nothing (the reading and the dispatch of the fit, not its time);
* ``hsm, every row``: `galaxies.inference.hsm.hsm_dataset` on every image over ``--jobs`` processes
  (the worker pool's path, real work of ~1 ms an image);
* ``load_dataset img``: reading the noisy images whole, as every command did before.

``--before DIR`` also runs predict and hsm with the package of another checkout (e.g. the
main branch before the reading in blocks) for comparison.

    python benchmarks/memory.py --model DIR            # 50,000 images, ~3 min after the set
    python benchmarks/memory.py --before /work/main    # and the whole-array code, for comparison
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

IMPORT_TF = "import keras, tensorflow; from galaxies.evaluation import estimators"
IMPORT_NETWORK = "from galaxies.evaluation import estimators; estimators.load({model!r})"
IMPORT_FIT = ("import galsim, scipy.optimize; from galaxies.inference import galsim_fit; "
             "from galaxies.storage import chunked; from galaxies.runtime import parallel")
PREDICT = ("from galaxies.interfaces.cli import main; main(['predict', {model!r}, {data!r}, {out!r}, '--force'"
           "{options}])")
FIT = ("from galaxies.interfaces.cli import main; main(['fit', {data!r}, {out!r}, '--limit', '{limit}', "
       "'--jobs', '1', '--force'])")
FIT_EVERY_ROW = """
import numpy as np
from galaxies.inference import galsim_fit
def nothing(images, psf_fwhm, sigma, starts):  # the reading and dispatch only
    return [(np.full(5, float(im.sum())), True, 0, 0, 0.0, "") for im in images]
galsim_fit._fit_rows = nothing
galsim_fit.fit_dataset({data!r}, {out!r}, jobs=1, progress=False, force=True)
"""
HSM = "from galaxies.inference import hsm; hsm.hsm_dataset({data!r}, {out!r}, jobs={jobs}, progress=False, force=True)"
LOAD = "from galaxies.storage import files; files.load_dataset({data!r}, fields=('img',))"


def build_set(size: int, cache: Path) -> Path:
    """The snr60 galaxy in ``size`` noise realizations, built once in ``cache``."""
    from galaxies.simulation.generate import generate
    from galaxies.simulation.recipes import RECIPES
    from galaxies.storage import files
    path = cache / f"snr60-{size}.h5"
    if path.is_file() and files.dataset_info(path)["size"] == size:
        return path
    cache.mkdir(parents=True, exist_ok=True)
    recipe = RECIPES["snr60"]
    print(f"building {size:,} snr60 realizations in {path}", flush=True)
    start = time.perf_counter()
    generate(path, recipe.spec, size, recipe.seed, progress=False, name="snr60", force=True)
    print(f"  {time.perf_counter() - start:.0f} s, {path.stat().st_size / 1e9:.2f} GB", flush=True)
    return path


def peak(code: str, root: Path = REPO) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of ``python -c code`` with the package of ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "2",
           "CUDA_VISIBLE_DEVICES": ""}
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tempfile.gettempdir(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"failed ({child.returncode}): {code}\n{stderr.decode()[-2000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "galaxies-memory")
    parser.add_argument("--model", default=str(REPO / "models" / "quick" / "xception_v1"),
                        help="a network's directory [default: the quick profile's xception_v1]")
    parser.add_argument("--fit-limit", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1, help="processes of the HSM run")
    parser.add_argument("--before", type=Path, default=None,
                        help="a checkout whose package to measure too (predict, hsm)")
    args = parser.parse_args()
    if not Path(args.model).is_dir():
        raise SystemExit(f"--model {args.model}: no such model directory (train the quick profile "
                         f"or give one)")
    sys.path.insert(0, str(REPO))
    data = str(build_set(args.size, args.cache))
    out = str(args.cache / "out.h5")
    images_mb = args.size * 64 * 64 * 4 / 2**20
    print(f"\n{args.size:,} images ({images_mb:,.0f} MiB of noisy images, as many again "
          f"noiseless); load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    one_block = ", '--limit', '1024'"
    runs = [
        ("imports: TensorFlow, Keras", IMPORT_TF, None, ""),
        ("imports: TensorFlow, the network", IMPORT_NETWORK, None, ""),
        ("galaxies predict (every image)", PREDICT, "imports: TensorFlow, the network", ""),
        ("galaxies predict --limit 1024", PREDICT, "imports: TensorFlow, the network",
         one_block),
        ("  the same, --batch-size 64", PREDICT, "imports: TensorFlow, the network",
         one_block + ", '--batch-size', '64'"),
        ("imports: GalSim, SciPy, the fit", IMPORT_FIT, None, ""),
        (f"galaxies fit --limit {args.fit_limit}", FIT, "imports: GalSim, SciPy, the fit", ""),
        ("fit_dataset, every row, no-cost fit", FIT_EVERY_ROW, "imports: GalSim, SciPy, the fit", ""),
        (f"hsm_dataset, every row, {args.jobs} process(es)", HSM, "imports: GalSim, SciPy, the fit", ""),
        ("load_dataset(fields=('img',)), whole", LOAD, None, "")]
    if args.before is not None:
        runs += [("before: galaxies predict (every image)", PREDICT, None, ""),
                 (f"before: hsm_dataset, {args.jobs} process(es)", HSM, None, "")]
        print(f"before: the package of {args.before}")
    results = {}
    print(f"\n{'command':<48}{'peak RSS':>11}{'less imports':>14}{'wall':>8}  target < 1 GiB")
    for name, template, imports, options in runs:
        code = template.format(model=args.model, data=data, out=out, limit=args.fit_limit,
                               jobs=args.jobs, options=options)
        root = args.before if name.startswith("before") else REPO
        mb, wall = peak(code, root)
        results[name] = mb
        rest = f"{mb - results[imports]:>10,.0f} MiB" if imports else " " * 14
        target = "" if name.startswith(("imports", "load", "before", " ")) else (
            "ok" if mb < 1024 else "MISSED")
        print(f"{name:<48}{mb:>7,.0f} MiB{rest}{wall:>7.0f}s  {target}", flush=True)
    Path(out).unlink(missing_ok=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    print(json.dumps({k: round(v) for k, v in results.items()}))


if __name__ == "__main__":
    main()
