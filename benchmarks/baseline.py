"""Accuracy and speed of the maximum-likelihood baseline on the snr60 test galaxy.

Fits ``--size`` noise realizations of the snr60 galaxy (the profile's snr60 set when it is large
enough, else a set built here with the same recipe) and prints, per parameter, bias, standard
deviation and RMSE next to the Cramér–Rao bound, the share of fits that did not converge, and
the CPU time per image on one core. The targets of the issue are printed with each figure:
RMSE <= 1.10 x CRB for flux, r, g1 and g2, under 1% non-converged, <= 0.5 s per image.

Then, on a few images in this process, where the time of a fit goes (GalSim renders against
the rest); and on the first ``--plain`` realizations (over ``--jobs`` processes), a plain
L-BFGS-B fit from the same start (five parameters, scipy's finite-difference gradient, a fresh
GalSim Sérsic index at every step): its time, its RMSE / CRB next to ours on the same images,
and which of the two reached the lower likelihood minimum.

    python benchmarks/baseline.py                    # 200 realizations, 2 processes
    python benchmarks/baseline.py --size 400 --jobs 2 --plain 400   # the plain fit on all 400 (~13 min)
"""
from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path

import numpy as np

from galaxies.conventions import LABEL_COLUMNS
from galaxies.evaluation import evaluate
from galaxies.inference import crb, galsim_fit, likelihood
from galaxies.runtime import profiles
from galaxies.simulation.generate import generate
from galaxies.simulation.recipes import RECIPES
from galaxies.simulation.render import GalaxyRenderer
from galaxies.storage import files


def snr60_set(size: int, profile, folder: Path) -> Path:
    """The profile's snr60 set if it has ``size`` rows, else a new one with the same recipe."""
    path = profile.dataset("snr60")
    if path.is_file() and files.dataset_info(path)["size"] >= size:
        return path
    recipe = RECIPES["snr60"]
    out = folder / "snr60.h5"
    print(f"building {size} snr60 realizations in {out} (the {profile.name} set has fewer)")
    return generate(out, recipe.spec, size, recipe.seed, progress=False, name="snr60")


def accuracy(pred_path: Path, data_path: Path) -> None:
    table = evaluate.against_dataset_crb(pred_path, data_path, progress=False)
    predictions = files.load_predictions(pred_path)
    converged = predictions.extra["converged"]
    seconds = predictions.extra["seconds"]
    print(f"\nL-BFGS-B on {len(predictions)} snr60 realizations ({predictions.attrs['jobs']} processes, "
          f"{predictions.attrs['wall_seconds']:.0f} s wall)")
    print(f"{'parameter':<10}{'bias':>11}{'std':>11}{'rmse':>11}{'crb':>11}{'rmse/crb':>10}  target")
    for name, row in table.iterrows():
        target = "" if name == "sersic_n" else (
            "<= 1.10 " + ("ok" if row["rmse/crb"] <= 1.10 else "MISSED"))
        print(f"{name:<10}{row['bias']:>11.4g}{row['std']:>11.4g}{row['rmse']:>11.4g}"
              f"{row['crb']:>11.4g}{row['rmse/crb']:>10.3f}  {target}")
    share = 100 * (1 - converged.mean())
    print(f"not converged: {share:.2f}% ({int((~converged).sum())} of {len(converged)})  "
          f"target < 1%: {'ok' if share < 1 else 'MISSED'}")
    print(f"CPU seconds per image, one core: mean {seconds.mean():.3f} (with each process's "
          f"one-off Sérsic tables), median {np.median(seconds):.3f}, 90th percentile "
          f"{np.percentile(seconds, 90):.3f}  target <= 0.5: {'ok' if seconds.mean() <= 0.5 else 'MISSED'}")
    print(f"objective evaluations per fit: mean {predictions.extra['nfev'].mean():.1f}")


def time_budget(images: np.ndarray, sigma: float) -> None:
    """Share of a fit's CPU time spent in GalSim renders, after the node tables are built."""
    import galsim
    galsim.set_omp_threads(1)
    for image in images[:2]:  # build the tables of the nodes these fits visit
        galsim_fit.fit_image(image, 0.5, sigma)
    spent = {"render": 0.0, "renders": 0}
    draw = likelihood.SersicModel._draw

    def timed(self, galaxy):
        t0 = time.process_time()
        try:
            return draw(self, galaxy)
        finally:
            spent["render"] += time.process_time() - t0
            spent["renders"] += 1
    likelihood.SersicModel._draw = timed
    try:
        t0 = time.process_time()
        results = [galsim_fit.fit_image(image, 0.5, sigma) for image in images[2:]]
        total = time.process_time() - t0
    finally:
        likelihood.SersicModel._draw = draw
    k = len(results)
    seconds = np.array([r.seconds for r in results])
    print(f"\nwhere the time goes ({k} fits in this process, tables built): {total / k:.3f} s per fit "
          f"(median {np.median(seconds):.3f}), {spent['renders'] / k:.0f} GalSim renders per fit "
          f"({1e3 * spent['render'] / spent['renders']:.2f} ms each on average), renders "
          f"{100 * spent['render'] / total:.0f}% of the time, the rest (moments, weighted sums, "
          f"scipy) {100 * (1 - spent['render'] / total):.0f}%; {np.mean([r.nfev for r in results]):.1f} "
          f"evaluations per fit")


def plain_fit(image: np.ndarray, sigma: float, start: np.ndarray, renderer: GalaxyRenderer):
    """The plain way: five parameters, scipy's finite-difference gradient, an exact GalSim
    Sérsic index at every step (a new Hankel table each time n moves)."""
    from scipy.optimize import minimize

    scale = np.array([1e5, 1.0, 0.1, 0.1, 0.1])
    bounds = [(3e4, 4e5), (0.5, 6.0), (0.1, 0.6), (-0.67, 0.67), (-0.67, 0.67)]
    t0 = time.process_time()
    result = minimize(lambda x: full_nll(image, x * scale, sigma, renderer), start / scale,
                      method="L-BFGS-B", bounds=[(lo / s, hi / s) for (lo, hi), s in zip(bounds, scale)])
    return result.x * scale, time.process_time() - t0, result.success


def full_nll(image: np.ndarray, params, sigma: float, renderer: GalaxyRenderer) -> float:
    """Gaussian NLL with variance sigma^2 + mu(params), an exact-index GalSim render."""
    mu = renderer.draw(*params, 0.5).astype(np.float64)
    v = sigma**2 + np.maximum(mu, 0.0)
    return 0.5 * float(np.sum((image.astype(np.float64) - mu) ** 2 / v + np.log(v)))


def _compare_one(image: np.ndarray, sigma: float):
    """Our fit and the plain fit of one image from the same start (the plain fit's flux from
    the image's sum); the plain NLL minus ours, both with exact-index renders."""
    renderer = _plain_renderer()
    fit = galsim_fit.fit_image(image, 0.5, sigma)
    start = fit.start.copy()
    start[0] = np.clip(image.sum(), 3.1e4, 3.9e5)
    params, seconds, success = plain_fit(image, sigma, start, renderer)
    gap = full_nll(image, params, sigma, renderer) - full_nll(image, fit.params, sigma, renderer)
    return fit.params, fit.seconds, params, seconds, success, gap


@functools.cache
def _plain_renderer() -> GalaxyRenderer:
    """This process's renderer for the plain fit (every index kept), GalSim on one thread."""
    import galsim
    galsim.set_omp_threads(1)
    return GalaxyRenderer(max_sersics=100_000)


def plain_comparison(images: np.ndarray, sigma: float, jobs: int) -> None:
    """Our fit against the plain one on the same images: time, accuracy, likelihood reached."""
    import multiprocessing

    truth = np.array([getattr(RECIPES["snr60"].spec, c) for c in LABEL_COLUMNS])
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        out = pool.starmap(_compare_one, [(image, sigma) for image in images], chunksize=2)
    ours, ours_s, plain, plain_s, success, gap = (np.array(column) for column in zip(*out))
    bound = crb.cramer_rao_bound(*truth, 0.5, sigma)
    print(f"\nplain L-BFGS-B (five parameters, finite-difference gradient, exact index at every "
          f"step, same start) on {len(images)} images: {plain_s.mean():.2f} s per image against "
          f"{ours_s.mean():.3f} s for ours ({plain_s.mean() / ours_s.mean():.0f}x); plain converged "
          f"{100 * success.mean():.1f}%")
    for name, estimates in (("ours", ours), ("plain", plain)):
        error = estimates - truth
        print(f"  {name:<6} rmse/crb {np.round(np.sqrt((error ** 2).mean(0)) / bound, 3).tolist()}  "
              f"bias/crb {np.round(error.mean(0) / bound, 3).tolist()}  ({', '.join(LABEL_COLUMNS)})")
    print(f"  the plain fit's NLL minus ours (exact-index renders): median {np.median(gap):.3f}; "
          f"plain lower by more than 0.01 on {int((gap < -0.01).sum())} of {len(gap)} images")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200, help="snr60 realizations to fit (>= 200 for the target)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for the fits")
    parser.add_argument("--profile", default=None, help="whose snr60 set to use if large enough")
    parser.add_argument("--plain", type=int, default=3, help="images for the plain-fit comparison (0: skip)")
    args = parser.parse_args()
    profile = profiles.get(args.profile)
    with tempfile.TemporaryDirectory() as tmp:
        data = snr60_set(args.size, profile, Path(tmp))
        pred = galsim_fit.fit_dataset(data, Path(tmp) / "lbfgsb_fit__snr60.h5", limit=args.size,
                                    jobs=args.jobs)
        accuracy(pred, data)
        rows = min(max(32, args.plain), files.dataset_info(data)["size"])
        images = files.load_dataset(data, fields=("img",), rows=rows).img
    time_budget(images[:32], 200.0)
    if args.plain:
        plain_comparison(images[:args.plain], 200.0, args.jobs)


if __name__ == "__main__":
    main()
