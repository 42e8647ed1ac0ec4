"""The recommended network's training levers, one at a time, against the network the pipeline
trained: labels learned as logarithms, a centred crop of the input, more epochs, each galaxy's
error weighed by its own bound (``--variant``: another Xception variant's recipe, e.g. the
uncertainty network's).

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

``--orientations`` judges every run a second time with its estimates averaged over the eight
orientations of the pixel grid (`OrientationAverage`): an ablation, not an estimator (it costs
eight forward passes), that says how much of a network's distance to the posterior mean is
noise in how it answers to the orientation, which more training or an ensemble could remove,
and how much is shared by every orientation.

``--floor`` prints, for every run on ``test``, the RMS of (estimate - posterior mean) relative
to the posterior mean for flux, n and r, in four groups by the relative bound (bound / value): a
network whose relative error stays level while the bound shrinks has a floor of precision, which
the best-measured galaxies (bright, sharp, of low index) show as many bounds (`distance_by_bound`).

``--realizations R`` sees each galaxy of ``test`` through R new noise realizations of its
noiseless image and splits every run's error on flux, n and r, in the same groups, into a
per-galaxy offset from the truth (what the network answers for that galaxy whatever the noise)
and a scatter over the realizations (the noise it passes on), both in bounds
(`offset_and_scatter`): a floor made of offsets is a function the network has not learned
(capacity, training), one made of scatter is noise.

``--ensemble`` judges, for each lever trained over several seeds, the mean of its runs'
estimates (`Ensemble`): another ablation (K networks, K forward passes) that says how much of
the distance to the posterior mean is the spread between trainings, which one network of the
same budget keeps.

    python benchmarks/levers.py --profile quick --levers plain log-flux-r crop48 --seeds 0 1
        [--epochs 24] [--out models/lever] [--judge-only | --retrain] [--orientations] [--ensemble] [--floor]
        [--realizations 40]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from galaxies.conventions import LABEL_COLUMNS  # noqa: E402
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
    # the weightings by the bound replace the recipe's constant label weights
    "bound-weighted": dict(loss_weighting="bound", label_weights=None),
    "bound-weighted-flux": dict(loss_weighting="bound-per-label", loss_weighted_labels=("flux",),
                                label_weights=None),
    "label-bound": dict(loss_weighting="label-bound", label_weights=None),
    # every label's squared error weighed the same (the recipe before the flux's weight)
    "equal-weights": dict(label_weights=None),
    "flux-x4": dict(label_weights=(4.0, 1.0, 1.0, 1.0, 1.0)),
    "flux-x16": dict(label_weights=(16.0, 1.0, 1.0, 1.0, 1.0)),
    "flux-x4-r-x2": dict(label_weights=(4.0, 1.0, 2.0, 1.0, 1.0)),
    "average-20": dict(average_epochs=20),
    "lr-half": dict(learning_rate=1.5e-3),  # the quick profile's peak is 3e-3
    "lr-double": dict(learning_rate=6e-3),
    "linear-16": dict(model_kwargs=dict(linear_features=16)),
    # the linear path with the flux learned as itself, so that the output layer can take it
    # straight from a weighted sum of the pixels
    "linear-16-linear-flux": dict(model_kwargs=dict(linear_features=16),
                                  log_labels=("sersic_n", "sersic_r")),
    # capacity: half as many residual blocks again (a floor made of per-galaxy offsets is a
    # function the network has not learned; see --realizations)
    "blocks-12": dict(model_kwargs=dict(blocks=12)),
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
    if "model_kwargs" in options:  # a lever's sizes laid over the profile's architecture
        options["model_kwargs"] = {**profiles.get(profile).xception_model, **options["model_kwargs"]}
    return train_variant(profile, variant, options, model_path(variant, lever, seed, out, epochs))


class OrientationAverage:
    """A saved network whose estimate is the mean of its estimates of the eight orientations of
    each image (`galaxies.networks.training.stream.dihedral`, each estimate turned back: the
    shear's sign flips are their own inverses), and its ``pred_std`` the mean of theirs.

    The likelihood and the training prior are invariant under these symmetries (a round PSF,
    the galaxy at the stamp's centre, the shear's angle uniform), so the posterior mean is
    equivariant and the average is at least as close to it, on average, as the network."""

    def __init__(self, network):
        self.network = network
        self.trainset = network.trainset

    def predict_dataset(self, ds):
        from galaxies.networks.training.saved import dataset_arrays
        from galaxies.networks.training.stream import dihedral

        images, psf, _ = dataset_arrays(ds, self.network.config, None)
        means, stds = [], []
        for element in range(8):
            turned, _ = dihedral(images, np.zeros((len(images), 5)), element)
            turned_psf = None if psf is None else dihedral(psf, np.zeros((len(psf), 5)), element)[0]
            pred, std = self.network.predict(turned, ds.psf_fwhm, ds.sigma, turned_psf)
            means.append(dihedral(images[:1], pred, element)[1])
            stds.append(std)
        return np.mean(means, axis=0), None if stds[0] is None else np.mean(stds, axis=0)


def distance_by_bound(pred: np.ndarray, reference: np.ndarray, bound: np.ndarray,
                      bins: int = 4) -> dict:
    """For flux, n and r (the positive labels), the rows split into ``bins`` groups of equal
    size by their relative bound ``bound / reference``, tightest first; per group ``(median
    relative bound, RMS of (pred - reference) / reference, RMS of (pred - reference) / bound)``.
    A level relative RMS over groups of shrinking bound is a floor of precision."""
    out = {}
    for j, name, groups in _by_relative_bound(bound, reference, bins):
        cells = []
        for median, group in groups:
            gap = pred[group, j] - reference[group, j]
            cells.append((median, float(np.sqrt(np.mean((gap / reference[group, j]) ** 2))),
                          float(np.sqrt(np.mean((gap / bound[group, j]) ** 2)))))
        out[name] = cells
    return out


def _by_relative_bound(bound: np.ndarray, value: np.ndarray, bins: int):
    """For flux, n and r (the positive labels): ``(column, name, groups)``, the rows split into
    ``bins`` groups of equal size by ``bound / |value|``, tightest first, each group as
    ``(its median relative bound, its rows)``."""
    for j, name in enumerate(LABEL_COLUMNS[:3]):
        relative = bound[:, j] / np.abs(value[:, j])
        yield j, name, [(float(np.median(relative[group])), group)
                        for group in np.array_split(np.argsort(relative, kind="stable"), bins)]


def print_floor(networks: dict, profile) -> None:
    """`distance_by_bound` of every network (label -> an object with ``predict_dataset``) on the
    rows of ``test`` with a cached posterior, against the bound-weighted posterior mean."""
    from galaxies.evaluation import against_posterior, testsets
    from galaxies.storage import files

    ds = files.load_dataset(profile.dataset(profiles.RANDOM_TESTSET))
    trainset = next(iter(networks.values())).trainset
    post = against_posterior.reference(profile, profiles.RANDOM_TESTSET,
                                       against_posterior.prior_recipe(trainset, profile))
    rows = post.rows
    bound = testsets.crb(profile, profiles.RANDOM_TESTSET)[rows]
    print(f"test ({len(rows)} galaxies in quarters by bound / value, tightest first): RMS of "
          "(estimate - bound-weighted posterior mean) over that mean, and in bounds; "
          "cells: median bound / value: % / bounds")
    for label, network in networks.items():
        pred = network.predict_dataset(ds)[0][rows]
        print(f"  {label}")
        for name, row in distance_by_bound(pred, post.weighted_mean[rows], bound).items():
            line = "  ".join(f"{100 * c[0]:4.1f}%: {100 * c[1]:4.1f}% / {c[2]:.2f}" for c in row)
            print(f"    {name:9s} {line}")
    print()


def offset_and_scatter(preds: np.ndarray, truth: np.ndarray, bound: np.ndarray,
                       bins: int = 4) -> dict:
    """Each galaxy seen through several noise realizations: ``preds`` (R, N, 5), the estimates
    of R realizations of N galaxies. For flux, n and r, the galaxies split into ``bins`` groups
    of equal size by ``bound / truth``, tightest first; per group ``(median relative bound, RMS
    over galaxies of the mean offset from the truth over the truth, the same in bounds, RMS of
    the scatter over realizations in bounds)``. An offset is what the estimator answers for that
    galaxy whatever the noise (a function it has not learned, or the prior's pull, which is
    small where the bound is tight); a scatter above 1 bound is noise it passes on beyond the
    best unbiased estimator's."""
    out = {}
    for j, name, groups in _by_relative_bound(bound, truth, bins):
        cells = []
        for median, group in groups:
            offset = preds[:, group, j].mean(axis=0) - truth[group, j]
            scatter = preds[:, group, j].std(axis=0, ddof=1)
            cells.append((median, float(np.sqrt(np.mean((offset / truth[group, j]) ** 2))),
                          float(np.sqrt(np.mean((offset / bound[group, j]) ** 2))),
                          float(np.sqrt(np.mean((scatter / bound[group, j]) ** 2)))))
        out[name] = cells
    return out


def print_realizations(networks: dict, profile, realizations: int, seed: int = 1) -> None:
    """`offset_and_scatter` of every network on the rows of ``test`` with a bound, each galaxy's
    noiseless image given ``realizations`` new noise draws of the generator's model
    (`galaxies.networks.training.noise.FreshNoise`, its own sigma; seeded)."""
    from galaxies.evaluation import testsets
    from galaxies.networks.training.noise import FreshNoise
    from galaxies.storage import files

    ds = files.load_dataset(profile.dataset(profiles.RANDOM_TESTSET))
    bound = testsets.crb(profile, profiles.RANDOM_TESTSET)
    rows = np.flatnonzero(np.isfinite(bound).all(axis=1))
    sub, bound = ds.subset(rows), bound[rows]
    draws = [FreshNoise(seed=seed).realize(sub.img_nonoise, sub.sigma, (r,))[0]
             for r in range(realizations)]
    print(f"test ({len(rows)} galaxies in quarters by bound / truth, tightest first; each through "
          f"{realizations} noise realizations): cells: median bound / truth: RMS per-galaxy offset "
          "from the truth, % / bounds; RMS scatter over the realizations, bounds")
    for label, network in networks.items():
        preds = np.array([network.predict_dataset(dataclasses.replace(sub, img=images))[0]
                          for images in draws])
        print(f"  {label}")
        for name, row in offset_and_scatter(preds, sub.label, bound).items():
            line = "  ".join(f"{100 * c[0]:4.1f}%: {100 * c[1]:4.1f}% / {c[2]:.2f}, {c[3]:.2f}"
                             for c in row)
            print(f"    {name:9s} {line}")
    print()


class Ensemble:
    """Saved networks of one recipe trained from different seeds, whose estimate is the mean
    of theirs (and ``pred_std`` the mean of theirs). Each network converges to the posterior
    mean plus an error of its own training; where those errors are independent, the mean of K
    networks keeps 1 / sqrt(K) of them, and what it keeps beyond that is shared by the recipe."""

    def __init__(self, networks):
        if not networks:
            raise ValueError("an ensemble needs at least one network")
        self.networks = list(networks)
        self.trainset = self.networks[0].trainset

    def predict_dataset(self, ds):
        answers = [network.predict_dataset(ds) for network in self.networks]
        stds = [std for _, std in answers]
        mean = np.mean([pred for pred, _ in answers], axis=0)
        return mean, None if any(s is None for s in stds) else np.mean(stds, axis=0)


def main(argv=None) -> int:
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
    parser.add_argument("--orientations", action="store_true",
                        help="judge every run again averaged over the 8 orientations of the grid")
    parser.add_argument("--floor", action="store_true",
                        help="print each run's relative distance to the posterior mean on test "
                             "by bins of relative bound")
    parser.add_argument("--realizations", type=int, default=0, metavar="R",
                        help="see each galaxy of test through R new noise realizations and print "
                             "each run's per-galaxy offset from the truth and scatter, by bins of "
                             "relative bound")
    parser.add_argument("--ensemble", action="store_true",
                        help="judge the mean of each lever's runs over --seeds (at least two)")
    args = parser.parse_args(argv)
    if args.realizations and args.realizations < 2:
        parser.error(f"--realizations {args.realizations}: a scatter needs at least 2 realizations")
    if args.ensemble and len(set(args.seeds)) < 2:
        parser.error(f"--ensemble averages over seeds; got --seeds {' '.join(map(str, args.seeds))}, "
                     "give at least two")
    from loss_weighting import print_tables

    from galaxies.evaluation.against_posterior import judge_network
    from galaxies.networks.training import SavedModel

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
    # each run loaded once, and judged, averaged and split by bound from that copy
    networks = {label: SavedModel.load(path) for label, path in runs.items() if path.is_dir()}
    frames = {label: judge_network(network, profile) for label, network in networks.items()}
    if args.orientations:
        frames.update({f"{label}, 8 orientations": judge_network(OrientationAverage(network), profile)
                       for label, network in networks.items()})
    ensembles = {}
    if args.ensemble:
        for lever in args.levers:
            members = [networks[label] for label in (f"{lever} seed {seed}" for seed in
                                                      dict.fromkeys(args.seeds)) if label in networks]
            if len(members) >= 2:
                label = f"{lever}, mean of {len(members)} seeds"
                ensembles[label] = Ensemble(members)
                frames[label] = judge_network(ensembles[label], profile)
    print_tables(frames, profile, variant)
    if args.floor:
        print_floor({**networks, **ensembles}, profile)
    if args.realizations:
        print_realizations({**networks, **ensembles}, profile, args.realizations)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
