"""Likelihood refinement (`galaxies.inference.refine`) against the full L-BFGS-B fit, on the same images.

For each test set (``--testsets``, default snr60 and snr30) and each number of steps K
(``--steps``, default 1 2 3), refines the first ``--size`` rows of a start with
`galaxies.inference.refine.refine_dataset` and prints, per parameter, RMSE / CRB and bias / CRB of the
start, of the fit and of the refined estimates (each galaxy's error over its own bound: on the
random ``test`` set the per-galaxy normalized RMS); with ``--started-fit`` the fit started from
the start too, timed next to today's fit; then per K the CPU seconds per image (the
refinement alone, and with the start's own time), the Gauss-Newton steps and renders used, the
flagged fractions, and the z-score std and 68% coverage of ``pred_std``; and the targets:

* RMSE / CRB and |bias| / CRB within 0.03 of the fit's on every parameter;
* at most 0.05 s of CPU per image, the start's time included;
* z-score std in 0.9..1.1 and 68% coverage in 63..73% for the parameters the fit itself
  estimates within 1.1 x CRB.

The start is ``--start`` (predictions files, one per test set, matched by their ``dataset``
attribute, e.g. a network's) or ``--perturb S`` (the truth plus S Cramér–Rao bounds of Gaussian
noise, seeded by ``--seed``). The fit is ``--fit`` (predictions files of ``lbfgsb``), else
``lbfgsb_fit__<testset>.h5`` in ``--predictions``, else fitted here on the same rows (~0.35 s an
image, kept in ``--work``). Data sets come from ``--data`` (default: the profile's). Nothing is
written next to the data sets (the bound is computed here, not cached).

    python benchmarks/refine.py --profile quick --size 200 --start \\
        results/quick/predictions/xception_v1__snr60.h5 \\
        results/quick/predictions/xception-fresh_v3__snr30.h5
    python benchmarks/refine.py --perturb 1.5 --size 200 --steps 1 2 3 --jobs 2

CPU times depend on the machine and on what else runs on it: the figures are this run's.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from galaxies.conventions import LABEL_COLUMNS
from galaxies.inference import crb, galsim_fit, refine
from galaxies.runtime import profiles
from galaxies.storage import files

SHORT = ("flux", "n", "r", "g1", "g2")
ACCURACY, SECONDS, FIT_WITHIN = 0.03, 0.05, 1.10
Z_STD, COVERAGE = (0.9, 1.1), (63.0, 73.0)


def perturbed_start(data: Path, size: int, scale: float, seed: int, out: Path) -> Path:
    """A predictions file: the truth of the first ``size`` rows plus ``scale`` bounds of noise."""
    ds = files.load_dataset(data, fields=(), rows=size)
    bound = bounds_of(ds)
    rng = np.random.default_rng(seed)
    pred = ds.label.astype(np.float64) + scale * bound * rng.standard_normal((len(ds), 5))
    return files.write_predictions(out, pred, ds.rows, estimator=f"truth{scale:g}crb",
                                   dataset=ds.name, seconds_per_image=0.0)


def bounds_of(ds: files.Dataset) -> np.ndarray:
    """The Cramér–Rao bound of each row (N, 5); identical galaxies computed once."""
    rows = np.column_stack([ds.label, ds.psf_fwhm, ds.sigma]).astype(np.float64)
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    values = np.array([crb.cramer_rao_bound(*row[:5], psf_fwhm=row[5], sigma=row[6])
                       for row in unique])
    return values[inverse.ravel()]


def scores(pred: files.Predictions, rows: np.ndarray, truth: np.ndarray, bound: np.ndarray) -> dict:
    """RMSE and bias of each galaxy's error over its own bound (for a fixed galaxy: RMSE / CRB
    and bias / CRB; on a random set the per-galaxy normalized RMS), z-score std and coverage on
    ``rows`` (and on those without flags)."""
    where = {int(r): k for k, r in enumerate(pred.index)}
    missing = [int(r) for r in rows if int(r) not in where]
    if missing:
        raise SystemExit(f"{pred.path} has no prediction for rows {missing[:5]}")
    take = np.array([where[int(r)] for r in rows])
    error = pred.pred[take].astype(np.float64) - truth
    out = {"rmse": np.sqrt(np.nanmean((error / bound)**2, axis=0)),
           "bias": np.nanmean(error / bound, axis=0)}
    if pred.pred_std is not None:
        z = error / pred.pred_std[take]
        out["z std"] = np.nanstd(z, axis=0, ddof=1)
        out["coverage"] = 100 * np.nanmean(np.abs(z) <= 1, axis=0)
        clean = pred.extra["flags"][take] == 0 if "flags" in pred.extra else slice(None)
        out["z std unflagged"] = np.nanstd(z[clean], axis=0, ddof=1)
        out["coverage unflagged"] = 100 * np.nanmean(np.abs(z[clean]) <= 1, axis=0)
    return out


def fit_file(testset: str, data: Path, size: int, args, work: Path) -> Path:
    """The fit's predictions on ``testset``: given, in the predictions folder, or made here."""
    for path in args.fit or []:
        if files.load_predictions(path).dataset == testset:
            return Path(path)
    path = Path(args.predictions) / f"lbfgsb_fit__{testset}.h5"
    if path.is_file() and set(range(size)) <= set(files.load_predictions(path).index.tolist()):
        return path
    path = work / f"lbfgsb_fit__{testset}_{size}.h5"
    if not (path.is_file() and len(files.load_predictions(path)) >= size):
        print(f"fitting {size} images of {testset} with L-BFGS-B into {path} ...", flush=True)
        galsim_fit.fit_dataset(data, path, limit=size, jobs=args.jobs, progress=False)
    return path


def start_file(testset: str, data: Path, args, work: Path) -> Path:
    if args.start:
        for path in args.start:
            if files.load_predictions(path).dataset == testset:
                return Path(path)
        raise SystemExit(f"no --start file has dataset '{testset}'")
    return perturbed_start(data, args.size, args.perturb, args.seed,
                           work / f"truth{args.perturb:g}crb__{testset}.h5")


def report(testset: str, args, work: Path) -> None:
    profile = profiles.get(args.profile)
    data = Path(args.data) / f"{testset}.h5" if args.data else profile.dataset(testset)
    start_path = start_file(testset, data, args, work)
    start = files.load_predictions(start_path)
    rows = start.index[:args.size]
    ds = files.load_dataset(data, fields=(), rows=np.sort(rows))
    order = {int(r): k for k, r in enumerate(ds.rows)}
    take = np.array([order[int(r)] for r in rows])
    truth, bound = ds.label[take].astype(np.float64), bounds_of(ds)[take]
    fit = files.load_predictions(fit_file(testset, data, int(rows.max()) + 1, args, work))
    results = {"start": scores(start, rows, truth, bound), "fit": scores(fit, rows, truth, bound)}
    runs = {}
    for k in args.steps:
        out = work / f"{start.estimator}+newton{k}__{testset}.h5"
        refine.refine_dataset(start_path, data, out, steps=k, jobs=args.jobs, limit=len(rows),
                              progress=False)
        runs[k] = files.load_predictions(out)
        results[f"K={k}"] = scores(runs[k], rows, truth, bound)
    if args.started_fit:
        out = work / f"lbfgsb+{start.estimator}__{testset}.h5"
        galsim_fit.fit_dataset(data, out, limit=len(rows), start=start_path, jobs=args.jobs,
                             progress=False, force=True)
        started = files.load_predictions(out)
        results["fit/net"] = scores(started, rows, truth, bound)
    print(f"\n=== {testset}: {len(rows)} images of {data}; start {start.estimator} ({start_path}); "
          f"fit {fit.path}")
    print("CRB (RMS over the rows): " + "  ".join(
        f"{s} {b:.4g}" for s, b in zip(SHORT, np.sqrt(np.mean(bound**2, axis=0)))))
    names = list(results)
    for quantity in ("rmse", "bias"):
        print(f"\n{quantity} / CRB".ljust(12) + "".join(f"{n:>9}" for n in names))
        for j, s in enumerate(SHORT):
            print(f"{s:<11}" + "".join(f"{results[n][quantity][j]:>9.3f}" for n in names))
    print(f"\n{'K':<4}{'s/img':>8}{'median':>8}{'+start':>8}{'steps':>7}{'renders':>8}"
          f"{'flagged%':>9}{'bound%':>7}{'notconv%':>9}{'failed%':>8}{'max|drmse|':>11}"
          f"{'max|dbias|':>11}  targets")
    calibrated = results["fit"]["rmse"] <= FIT_WITHIN
    for k, pred in runs.items():
        flags, r = pred.extra["flags"], results[f"K={k}"]
        d_rmse = np.abs(r["rmse"] - results["fit"]["rmse"])
        d_bias = np.abs(np.abs(r["bias"]) - np.abs(results["fit"]["bias"]))
        share = {name: 100 * np.mean((flags & bit) > 0) for name, bit in refine.FLAGS.items()}
        z_ok = all(Z_STD[0] <= r["z std"][j] <= Z_STD[1] and COVERAGE[0] <= r["coverage"][j]
                   <= COVERAGE[1] for j in np.flatnonzero(calibrated))
        verdict = (f"accuracy {'ok' if max(d_rmse.max(), d_bias.max()) <= ACCURACY else 'MISSED'}"
                   f", time {'ok' if pred.seconds_per_image <= SECONDS else 'MISSED'}"
                   f", pred_std {'ok' if z_ok else 'MISSED'}")
        print(f"{k:<4}{pred.attrs['refine_seconds_per_image']:>8.4f}"
              f"{np.median(pred.extra['seconds']):>8.4f}{pred.seconds_per_image:>8.4f}"
              f"{np.mean(pred.extra['steps']):>7.2f}{np.mean(pred.extra['renders']):>8.1f}"
              f"{100 * np.mean(flags > 0):>9.1f}{share['bound']:>7.1f}"
              f"{share['not_converged']:>9.1f}"
              f"{share['failed']:>8.1f}{d_rmse.max():>11.3f}{d_bias.max():>11.3f}  {verdict}")
    if args.started_fit:
        gap = max(np.abs(results["fit/net"]["rmse"] - results["fit"]["rmse"]).max(),
                  np.abs(np.abs(results["fit/net"]["bias"]) - np.abs(results["fit"]["bias"])).max())
        fit_alone = started.attrs["fit_seconds_per_image"]
        print(f"\nnetwork-started fit: {started.seconds_per_image:.4f} s per image with the start "
              f"({fit_alone:.4f} s the fit alone, median {np.median(started.extra['seconds']):.4f}) "
              f"against today's fit {fit.seconds_per_image:.4f} s (median "
              f"{np.median(fit.extra['seconds']):.4f}; {fit.path.name}); not converged "
              f"{100 * (1 - np.mean(started.extra['converged'])):.1f}%; max |difference| from the "
              f"fit {gap:.3f} CRB (target <= 0.02: {'ok' if gap <= 0.02 else 'MISSED'})")
    print(f"\npred_std: z-score std / 68% coverage (targets {Z_STD[0]}..{Z_STD[1]} and "
          f"{COVERAGE[0]:g}..{COVERAGE[1]:g}% where the fit is within {FIT_WITHIN} x CRB: "
          f"{', '.join(s for s, c in zip(SHORT, calibrated) if c) or 'none'})")
    print(f"{'K':<4}" + "".join(f"{s:>14}" for s in SHORT))
    for suffix in ("", " unflagged"):
        for k in runs:
            r = results[f"K={k}"]
            z, cover = r["z std" + suffix], r["coverage" + suffix]
            print(f"{k:<4}" + "".join(f"{z[j]:>7.3f}/{cover[j]:>5.1f}%"
                                      for j in range(len(LABEL_COLUMNS))) + suffix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=None, help="where data and predictions live")
    parser.add_argument("--data", help="folder of the test sets (default: the profile's)")
    parser.add_argument("--predictions", help="folder with lbfgsb_fit__<testset>.h5 "
                        "(default: the profile's predictions folder)")
    parser.add_argument("--testsets", nargs="+", default=["snr60", "snr30", "test"])
    parser.add_argument("--started-fit", action="store_true",
                        help="also run L-BFGS-B from the start (galaxies fit --start) and time it")
    parser.add_argument("--size", type=int, default=200, help="rows of each test set")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 3])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--start", nargs="+", help="predictions files to start from")
    group.add_argument("--perturb", type=float, default=1.5,
                       help="else start from the truth plus this many CRBs of noise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit", nargs="+", help="the fit's predictions files")
    parser.add_argument("--jobs", type=int, default=1, help="processes (refinement and fit)")
    parser.add_argument("--work", help="folder for the files made here (default: a temporary one)")
    args = parser.parse_args()
    args.predictions = args.predictions or profiles.get(args.profile).predictions_dir
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for testset in args.testsets:
            report(testset, args, work)


if __name__ == "__main__":
    main()
