"""The likelihood-trained network: the recommended network fine-tuned on images' own NLL.

A copy of the profile's recommended network (models/ is not touched) takes ``--steps``
optimizer steps of `galaxies.networks.training.likelihood.LikelihoodTuner` on batches of the noisy
images of its training set (no labels read), then it, the network before, and the JAX fit
(``lm-jax_fit`` predictions) are judged on the same first ``--rows`` rows of every fixed set
(RMSE / CRB, bias / CRB) and of ``test`` (normalized RMS), and the mean NLL of those images
at each estimate less the fit's (in the flux column), with the NLL of the training batches
along the way and the network's seconds per image.

    python benchmarks/likelihood_network.py --profile quick --steps 100 [--rows 100]
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--rows", type=int, default=100, help="rows of each test set judged")
    parser.add_argument("--train-rows", type=int, default=2000)
    parser.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    parser.add_argument("--gradient", action="store_true",
                        help="the plain NLL gradient instead of the Gauss-Newton direction")
    args = parser.parse_args(argv)
    profile = profiles.get(args.profile)
    from galaxies.networks.training import SavedModel
    from galaxies.networks.training.likelihood import LikelihoodTuner, nll_and_gradient

    estimator, trainset = profile.recommended.rsplit("_", 1)
    before = SavedModel.load(profile.recommended_dir)
    tuned = SavedModel.load(profile.recommended_dir)
    train = files.load_dataset(profile.dataset(trainset), fields=("img",), rows=args.train_rows)
    tuner = LikelihoodTuner(tuned, learning_rate=args.learning_rate,
                            precondition=not args.gradient, optimizer=args.optimizer)
    print(f"profile {profile.name}: {profile.recommended} fine-tuned on the NLL of {trainset}'s "
          f"first {len(train)} noisy images, {args.steps} steps of {args.batch_size}, "
          f"{args.optimizer}, learning rate {args.learning_rate:g}, "
          f"{'NLL gradient' if args.gradient else 'Gauss-Newton direction'}")
    clock, cpu = time.perf_counter(), time.process_time()
    history = tuner.tune(train.img, train.psf_fwhm, train.sigma, args.steps, args.batch_size)
    print(f"tuning: {time.perf_counter() - clock:.0f} s wall, {time.process_time() - cpu:.0f} s CPU; "
          f"mean NLL of the batches, by tenths of the run: "
          + " ".join(f"{np.mean(part):.1f}" for part in np.array_split(history, 10) if len(part)))
    rows = []
    for testset in profiles.TESTSETS:
        ds = files.load_dataset(profile.dataset(testset), fields=("img",), rows=args.rows)
        crb = testsets.crb(profile, testset)[: len(ds)]
        keep = np.isfinite(crb).all(axis=1)
        fit_path = profile.predictions("lm-jax", "fit", testset)
        candidates, nll_of = {}, {}
        if fit_path.is_file():
            fit = files.load_predictions(fit_path)
            where = {int(r): k for k, r in enumerate(fit.index)}
            have = np.array([r in where for r in range(len(ds))])
            keep &= have
            pred = np.full((len(ds), 5), np.nan)
            pred[have] = fit.pred[[where[r] for r in range(len(ds)) if r in where]]
            candidates["lm-jax fit"] = pred
        for label, network in (("network before", before), ("likelihood-tuned", tuned)):
            clock = time.perf_counter()
            candidates[label] = network.predict_dataset(ds)[0]
            seconds = (time.perf_counter() - clock) / len(ds)
            candidates[label + " "] = seconds
        for label, pred in candidates.items():
            if not isinstance(pred, np.ndarray):
                continue
            figures = judge(pred[keep], ds.label[keep], crb[keep])
            # the objective itself: each image's NLL at the estimate, less the fit's
            figures["nll - fit's"] = np.full(5, np.nan)
            nll = nll_and_gradient(ds.img[keep], ds.psf_fwhm[keep], ds.sigma[keep], pred[keep],
                                   tuner.model)[0]
            nll_of[label] = nll
            figures["nll - fit's"][0] = np.mean(nll - nll_of.get("lm-jax fit", np.nan))
            for name, values in figures.items():
                rows.append({"testset": testset, "estimator": label, "figure": name,
                             **dict(zip(LABEL_COLUMNS, values)), "n": int(keep.sum())})
        print(f"{testset}: seconds per image, network {candidates['likelihood-tuned ']:.2e}")
    table = pd.DataFrame(rows).set_index(["testset", "figure", "estimator"])
    pd.set_option("display.width", 160)
    print(table.round(2).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
