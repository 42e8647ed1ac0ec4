"""The recommended network's training levers, one at a time, against the network the pipeline
trained: labels learned as logarithms, a centred crop of the input, more epochs (``--variant``:
another Xception variant's recipe, e.g. the uncertainty network's).

Each lever is a set of `galaxies.networks.training.TrainingConfig` fields (`LEVERS`) laid over
the recommended variant's recipe (its training set, noise, epochs, batch size and learning
rate; ``--epochs`` replaces the epochs of every run). Every run is trained for each seed into
``--out`` (models/<profile>/ untouched) and judged beside ``models/<profile>/<recommended>``
on the same rows, as `benchmarks/loss_weighting.py` judges the bound-weighted loss:

1. ``test``: the per-galaxy normalized RMS and, on the rows with a cached posterior, its ratio
   to the bound-weighted posterior mean's;
2. the fixed sets: RMSE / CRB, and the RMS to the posterior mean in bounds where cached.

Each run's training time is printed (the crop's lever is its speed as much as its accuracy).
A run already in ``--out`` is judged again, not retrained, unless ``--retrain``.

    python benchmarks/levers.py --profile quick --levers plain log-flux-r crop48 --seeds 0 1
        [--epochs 24] [--out models/lever] [--judge-only | --retrain]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from galaxies.networks.training import read_info  # noqa: E402
from galaxies.runtime import profiles  # noqa: E402

#: name -> the `TrainingConfig` fields the lever changes ("plain": the recipe itself)
LEVERS = {
    "plain": {},
    "log-flux-r": dict(log_labels=("flux", "sersic_r")),
    "log-flux-n-r": dict(log_labels=("flux", "sersic_n", "sersic_r")),
    "crop48": dict(crop=48),
    "crop48-log-flux-n-r": dict(crop=48, log_labels=("flux", "sersic_n", "sersic_r")),
    "no-early-stop": dict(patience=1_000),
}


def model_path(variant: str, lever: str, seed: int, out: Path, epochs: int | None = None) -> Path:
    """Where a lever's run is kept: ``<out>/<estimator>-<lever>[-<epochs>ep]-seed<seed>_<set>``."""
    estimator, trainset = variant.rsplit("_", 1)
    budget = "" if epochs is None else f"-{epochs}ep"
    return out / f"{estimator}-{lever}{budget}-seed{seed}_{trainset}"


def train(profile, variant: str, lever: str, seed: int, out: Path, epochs: int | None = None) -> Path:
    """Train ``variant`` with ``lever`` and ``seed`` (and ``epochs``, if given) into its
    `model_path` (`loss_weighting.train_variant`). Returns the model directory."""
    from loss_weighting import train_variant

    options = dict(LEVERS[lever], seed=seed, **({} if epochs is None else {"epochs": epochs}))
    return train_variant(profile, variant, options, model_path(variant, lever, seed, out, epochs))


def main(argv=None) -> int:
    from loss_weighting import judge, print_tables

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="smoke, quick or full [default: quick]")
    parser.add_argument("--variant", default=None,
                        help="the Xception variant whose recipe the levers change "
                             "[default: the profile's recommended network]")
    parser.add_argument("--levers", nargs="+", default=["log-flux-r"], choices=list(LEVERS),
                        help="the levers to train, each on its own")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of every lever")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of every run [default: the recipe's]")
    parser.add_argument("--out", default="models/lever", help="folder of the new models")
    parser.add_argument("--judge-only", action="store_true",
                        help="judge the models already in --out, train nothing")
    parser.add_argument("--retrain", action="store_true",
                        help="train again the runs already in --out")
    args = parser.parse_args(argv)
    profile = profiles.get(args.profile)
    out = Path(args.out)
    from galaxies.evaluation.experiments import xception
    variant = xception.variant(args.variant or profile.recommended).name
    baseline = xception.model_dir(variant, profile)
    seed = read_info(baseline)["config"]["seed"] if baseline.is_dir() else "?"
    runs = {f"pipeline seed {seed} (models/{profile.name})": baseline}
    for lever in args.levers:
        for seed in args.seeds:
            path = model_path(variant, lever, seed, out, args.epochs)
            if not args.judge_only and (args.retrain or not path.is_dir()):
                train(profile, variant, lever, seed, out, args.epochs)
            runs[f"{lever} seed {seed}"] = path
    frames = {label: judge(path, profile) for label, path in runs.items() if path.is_dir()}
    print_tables(frames, profile, variant)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
