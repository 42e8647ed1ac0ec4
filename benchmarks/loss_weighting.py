"""The bound-weighted loss against the plain squared error, on the recommended network.

Trains the profile's recommended network (its variant's recipe, epochs, batch size and
learning rate) with each bound-weighted loss asked (``--weighting``: ``bound``, the metric's
own weights, or ``bound-per-label``; `galaxies.networks.training.weighting`; ``--labels``: the
per-label weights on those labels only, the others the plain error) for each seed,
optionally also with the plain loss at further seeds, into ``--out`` (models/<profile>/
untouched), and judges every run beside the recommended model already trained
(``models/<profile>/<recommended>``, the plain loss at the profile's seed) on the same rows:

1. ``test``: the per-galaxy normalized RMS (each galaxy's error over its own bound, the rows
   with a bound) and, on the rows with a cached posterior, its ratio to the bound-weighted
   posterior mean's;
2. the fixed sets (snr60, snr30, compact, extended): RMSE / CRB, and the RMS to the posterior
   mean in bounds where cached.

The training set's bounds (JAX model) are cached in ``--bound-cache`` (default: beside the
set). Nothing is written under data/ or models/<profile>/ otherwise.

    python benchmarks/loss_weighting.py --profile quick --seeds 0 [--plain-seeds 1]
        [--weighting bound bound-per-label] [--cap 10] [--labels flux sersic_r]
        [--out models/lever] [--bound-cache data/lever-crb]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402

from galaxies.conventions import LABEL_COLUMNS  # noqa: E402
from galaxies.networks.training import read_info  # noqa: E402
from galaxies.runtime import profiles  # noqa: E402


def train(profile, weighting: str, seed: int, out: Path, bound_cache=None, cap=None,
          labels=None) -> Path:
    """Train the recommended variant with ``weighting`` (weights capped at ``cap`` times
    their median; on the ``labels`` only, if given) and ``seed`` into ``out``; prints the
    training time. Returns the model directory."""
    estimator, trainset = profile.recommended.rsplit("_", 1)
    path = out / f"{estimator}-{run_name(weighting, cap, labels)}-seed{seed}_{trainset}"
    options = (dict(loss_weighting=weighting, loss_weight_cap=cap, loss_weighted_labels=labels,
                    label_weights=None)  # the bound's weights replace the recipe's
               if weighting != "none" else {})
    return train_variant(profile, profile.recommended, dict(options, seed=seed), path,
                         bound_cache=bound_cache)


def train_variant(profile, variant: str, options: dict, path: Path, **fit_kwargs) -> Path:
    """Train the Xception ``variant`` under ``profile`` with its `TrainingConfig` fields
    replaced by ``options`` into ``path`` (``fit_kwargs`` to `fit`; a head variant on the
    profile's trained model of its base, whose seed it must have); prints the training time,
    speed, epochs and best validation loss. Returns ``path``."""
    from galaxies.evaluation.experiments import xception
    from galaxies.networks.training import fit

    estimator, trainset = variant.rsplit("_", 1)
    start = time.perf_counter()
    saved = fit(xception.config(variant, profile, **options), profile.dataset(trainset), path,
                estimator=estimator, verbose=0, base=xception.head_base(variant, profile),
                **fit_kwargs)
    print(f"  {path.name}: {time.perf_counter() - start:.0f} s in all, "
          f"{saved.info['training_seconds']:.0f} s training "
          f"({saved.info['train_images_per_second']:.0f} images/s), {saved.info['epochs_run']} "
          f"epochs, best epoch {saved.info['best_epoch']}, best val loss "
          f"{saved.info['best_val_loss']:.4f}", flush=True)
    return path


def run_name(weighting: str, cap=None, labels=None) -> str:
    """A run's name: its weighting, its cap and its weighted labels if any
    (``bound-cap10``, ``bound-per-label-on-flux-sersic_r``)."""
    if weighting == "none":
        return weighting
    return (weighting + ("" if cap is None else f"-cap{cap:g}")
            + ("" if not labels else "-on-" + "-".join(labels)))


def judge(model_dir: Path, profile) -> pd.DataFrame:
    """`galaxies.evaluation.against_posterior.judge_network` of the model at ``model_dir``."""
    from galaxies.evaluation import against_posterior
    from galaxies.networks.training import SavedModel
    return against_posterior.judge_network(SavedModel.load(model_dir), profile)


def print_tables(frames: dict, profile, name: str | None = None) -> None:
    """Print the runs' judgements (`judge`, by run label) of the variant ``name`` (default:
    the recommended) side by side: on ``test`` the normalized RMS and its ratio to the
    reference's, on the fixed sets RMSE / CRB and the RMS to the posterior mean; for networks
    with a standard deviation, its median over the posterior's and its 68% coverage."""
    name = name or profile.recommended
    table = pd.concat(frames, names=["run"]).reset_index(level=0)
    pd.set_option("display.width", 160)
    for column, sets, title in (
            ("norm rmse", [profiles.RANDOM_TESTSET], "test: per-galaxy normalized RMS"),
            ("ratio", [profiles.RANDOM_TESTSET],
             "test: normalized RMS / the bound-weighted posterior mean's"),
            ("norm rmse", list(profiles.FIXED_TESTSETS), "fixed sets: RMSE / CRB"),
            ("rms to posterior", list(profiles.FIXED_TESTSETS),
             "fixed sets: RMS to the posterior mean / CRB"),
            ("std ratio", list(profiles.TESTSETS), "pred_std / posterior std (median)"),
            ("coverage", list(profiles.TESTSETS), "68% coverage of pred +- pred_std")):
        part = table[table["testset"].isin(sets)]
        if column not in part or part[column].isna().all():
            continue
        wide = part.pivot_table(index=["testset", "run"], columns="parameter", values=column,
                                sort=False)[list(LABEL_COLUMNS)]
        print(f"{name}, {title}")
        print(wide.round(2).to_string(), "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="smoke, quick or full [default: quick]")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0],
                        help="seeds of the bound-weighted runs")
    parser.add_argument("--weighting", nargs="+", default=["bound"],
                        choices=["bound", "bound-per-label"], help="the weighted losses to train")
    parser.add_argument("--cap", type=float, default=None,
                        help="cap the weights at this multiple of each label's median")
    parser.add_argument("--labels", nargs="+", default=None, choices=list(LABEL_COLUMNS),
                        help="weigh only these labels by the bound (with bound-per-label; "
                             "the others the plain error) [default: all]")
    parser.add_argument("--plain-seeds", type=int, nargs="*", default=[],
                        help="seeds of further plain-loss runs (the seed noise)")
    parser.add_argument("--out", default="models/lever", help="folder of the new models")
    parser.add_argument("--bound-cache", default=None,
                        help="folder of the training set's bounds [default: beside the set]")
    parser.add_argument("--judge-only", action="store_true",
                        help="judge the models already in --out, train nothing")
    args = parser.parse_args(argv)
    profile = profiles.get(args.profile)
    out = Path(args.out)
    baseline = profile.recommended_dir
    seed = read_info(baseline)["config"]["seed"] if baseline.is_dir() else "?"
    runs = {f"plain seed {seed} (models/{profile.name})": baseline}
    for weighting, seeds in (("none", args.plain_seeds),
                             *((w, args.seeds) for w in args.weighting)):
        for seed in seeds:
            estimator, trainset = profile.recommended.rsplit("_", 1)
            name = run_name(weighting, args.cap, args.labels)
            path = out / f"{estimator}-{name}-seed{seed}_{trainset}"
            if not args.judge_only:
                path = train(profile, weighting, seed, out, args.bound_cache, args.cap,
                             args.labels)
            runs[f"{'plain' if weighting == 'none' else name} seed {seed}"] = path
    frames = {label: judge(path, profile) for label, path in runs.items() if path.is_dir()}
    print_tables(frames, profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
