"""The likelihood-trained network: the recommended network fine-tuned on images' own likelihood.

Copies of the profile's recommended network (models/ is not touched), one per
``--learning-rate`` (constant, or along a cosine to 1% with ``--cosine``), take ``--steps``
Adam steps of `galaxies.networks.training.likelihood.LikelihoodTuner` on batches of the noisy images of its
training set (no labels read): ``--target nll`` on their NLL, ``--target mle``
(``mle-fisher``) toward their own maximum-likelihood fits in units of their bounds (with their
Fisher matrices; fitted once, the first ``--train-rows`` images, timed). Then they, the
network before, and the JAX fit (``lm-jax_fit`` predictions) are judged on the same first
``--rows`` rows of every fixed set and of ``test`` that have a fit (``--fit-missing``: the
rows the pipeline did not fit are fitted here): RMSE / CRB, bias / CRB, the mean NLL of those
images at each estimate less the fit's (in the flux column), and the RMS of (estimate - fit) /
CRB, the amortized fit's distance to the fit it imitates; with the batches' figures along the
way and the networks' seconds per image.

    python benchmarks/likelihood_network.py --profile quick --target mle-fisher --steps 24000 \
        --learning-rate 1e-4 [--cosine] [--rows 100 [--fit-missing]] [--train-rows 16000]
        [--targets-cache fits.npz]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from galaxies.conventions import LABEL_COLUMNS  # noqa: E402
from galaxies.evaluation import testsets  # noqa: E402
from galaxies.runtime import profiles
from galaxies.storage import files


def judge(pred, truth, crb) -> dict:
    """RMSE / CRB and bias / CRB per parameter, each galaxy over its own bound."""
    z = (pred - truth) / crb
    return {"rmse/crb": np.sqrt(np.mean(z**2, axis=0)), "bias/crb": z.mean(axis=0)}


def training_targets(train, model, cache=None):
    """The fits of the training images (`MLETargets`): read from the ``cache`` file where it
    holds them (its first rows), the missing rows fitted (timed) and the cache extended."""
    from galaxies.networks.training.likelihood import MLETargets, mle_targets

    have = MLETargets.load(cache) if cache and os.path.isfile(cache) else None
    done = 0 if have is None else min(len(have), len(train))
    parts = [] if have is None else [have.subset(slice(0, done))]
    if done < len(train):
        clock, cpu = time.perf_counter(), time.process_time()
        rest = slice(done, len(train))
        parts.append(mle_targets(train.img[rest], train.psf_fwhm[rest], train.sigma[rest], model))
        print(f"the fits of training images {done} to {len(train)}: {time.perf_counter() - clock:.0f} "
              f"s wall, {time.process_time() - cpu:.0f} s CPU", flush=True)
    targets = MLETargets.concatenate(parts)
    if cache and done < len(train):
        targets.save(cache, force=True)
    print(f"{int(targets.usable.sum())} of {len(train)} training fits usable"
          + (f" ({done} read from {cache})" if done else ""), flush=True)
    return targets


def judged_fits(profile, testset, ds, model, fit_missing: bool = False,
                wanted: np.ndarray | None = None) -> np.ndarray:
    """The JAX fit's estimates of the rows of ``ds`` (the first rows of ``testset``), (N, 5):
    from the pipeline's ``lm-jax`` predictions where they hold the row; the others NaN, or,
    with ``fit_missing``, fitted here by `mle_targets` (the same JAX fit, timed) where
    ``wanted`` (N,; default every row), so that a fit's bias is judged on as many realizations
    as the networks'."""
    from galaxies.networks.training.likelihood import mle_targets

    fit = np.full((len(ds), 5), np.nan)
    path = profile.predictions("lm-jax", "fit", testset)
    if path.is_file():
        found = files.load_predictions(path)
        inside = found.index < len(ds)
        fit[found.index[inside]] = found.pred[inside]
    wanted = np.ones(len(ds), bool) if wanted is None else np.asarray(wanted, bool)
    missing = np.flatnonzero(~np.isfinite(fit).all(axis=1) & wanted)
    if fit_missing and len(missing):
        clock = time.perf_counter()
        fitted = mle_targets(ds.img[missing], ds.psf_fwhm[missing], ds.sigma[missing], model)
        fit[missing] = fitted.theta  # kept where not converged, as the pipeline keeps them
        print(f"{testset}: {len(missing)} rows without the pipeline's fit fitted here "
              f"({int((~fitted.usable).sum())} not converged or without a bound), "
              f"{time.perf_counter() - clock:.0f} s wall", flush=True)
    return fit


def tune(args, profile, train, targets):
    """``{label: tuned SavedModel}``, one per learning rate, printing each run's figures."""
    from galaxies.networks.training import SavedModel
    from galaxies.networks.training.likelihood import LikelihoodTuner

    tuned = {}
    for rate in args.learning_rate:
        network = SavedModel.load(profile.recommended_dir)
        tuner = LikelihoodTuner(network, learning_rate=rate, target=args.target,
                                optimizer=args.optimizer,
                                decay_steps=args.steps if args.cosine else None)
        clock, cpu = time.perf_counter(), time.process_time()
        history = tuner.tune(train.img, train.psf_fwhm, train.sigma, args.steps,
                             args.batch_size, targets=targets)
        figure = "mean NLL" if args.target == "nll" else "loss (toward the fits)"
        print(f"learning rate {rate:g}: {time.perf_counter() - clock:.0f} s wall, "
              f"{time.process_time() - cpu:.0f} s CPU; {figure} of the batches, by tenths of "
              f"the run: " + " ".join(f"{np.mean(part):.2f}"
                                      for part in np.array_split(history, 10) if len(part)))
        tuned[f"tuned {rate:g}"] = network
    return tuned


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--target", default="mle-fisher", choices=("mle-fisher", "mle", "nll"),
                        help="train toward each image's own fit (metric its bound, or its "
                             "Fisher matrix), or on its NLL")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, nargs="+", default=[1e-4])
    parser.add_argument("--rows", type=int, default=100, help="rows of each test set judged")
    parser.add_argument("--train-rows", type=int, default=1000)
    parser.add_argument("--fit-missing", action="store_true",
                        help="fit the judged rows the pipeline's lm-jax predictions lack (by "
                             "default they are left out of every estimator's figures)")
    parser.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    parser.add_argument("--cosine", action="store_true",
                        help="the learning rate decays along a cosine to 1%% over the --steps")
    parser.add_argument("--targets-cache", default=None,
                        help="an .npz file keeping the training images' fits between runs "
                             "(extended when --train-rows asks for more)")
    args = parser.parse_args(argv)
    profile = profiles.get(args.profile)
    from galaxies.inference.differentiable.model import DifferentiableModel
    from galaxies.networks.training import SavedModel
    from galaxies.networks.training.likelihood import nll_and_gradient

    estimator, trainset = profile.recommended.rsplit("_", 1)
    before = SavedModel.load(profile.recommended_dir)
    train = files.load_dataset(profile.dataset(trainset), fields=("img",), rows=args.train_rows)
    model = DifferentiableModel()
    print(f"profile {profile.name}: {profile.recommended} fine-tuned ({args.target}) on "
          f"{trainset}'s first {len(train)} noisy images, {args.steps} steps of "
          f"{args.batch_size}, {args.optimizer}")
    targets = None
    if args.target != "nll":
        targets = training_targets(train, model, args.targets_cache)
    networks = {"network before": before, **tune(args, profile, train, targets)}
    rows = []
    for testset in profiles.TESTSETS:
        ds = files.load_dataset(profile.dataset(testset), fields=("img",), rows=args.rows)
        crb = testsets.crb(profile, testset)[: len(ds)]
        keep = np.isfinite(crb).all(axis=1)
        candidates, seconds = {}, {}
        fit = judged_fits(profile, testset, ds, model, args.fit_missing, wanted=keep)
        if not np.isfinite(fit).all(axis=1).any():
            parser.error(f"{testset}: none of its first {len(ds)} rows has the pipeline's lm-jax "
                         f"fit; run `make run` first or pass --fit-missing")
        keep &= np.isfinite(fit).all(axis=1)
        candidates["lm-jax fit"] = fit
        for label, network in networks.items():
            clock = time.perf_counter()
            candidates[label] = network.predict_dataset(ds)[0]
            seconds[label] = (time.perf_counter() - clock) / len(ds)
        fit_nll = nll_and_gradient(ds.img[keep], ds.psf_fwhm[keep], ds.sigma[keep], fit[keep],
                                   model)[0]
        for label, pred in candidates.items():
            figures = judge(pred[keep], ds.label[keep], crb[keep])
            # the objective itself: each image's NLL at the estimate, less the fit's
            nll = nll_and_gradient(ds.img[keep], ds.psf_fwhm[keep], ds.sigma[keep], pred[keep],
                                   model)[0]
            figures["nll - fit's"] = np.r_[np.mean(nll - fit_nll), np.full(4, np.nan)]
            figures["rms (x-fit)/crb"] = np.sqrt(np.mean(
                ((pred[keep] - fit[keep]) / crb[keep]) ** 2, axis=0))
            for name, values in figures.items():
                rows.append({"testset": testset, "estimator": label, "figure": name,
                             **dict(zip(LABEL_COLUMNS, values)), "n": int(keep.sum())})
        print(f"{testset}: seconds per image, " + ", ".join(
            f"{label} {value:.2e}" for label, value in seconds.items()))
    table = pd.DataFrame(rows).set_index(["testset", "figure", "estimator"])
    pd.set_option("display.width", 160)
    print(table.round(2).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
