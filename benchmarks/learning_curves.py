"""Learning curves of the recommended network: validation error against training galaxies,
epochs and network size.

Trains the profile's recommended configuration (``xception-fresh_v3``: fresh noise on v3's
noiseless images, PSF FWHM and sigma known) on several numbers of training galaxies and at
several network sizes (`NETS`: builder keywords of `galaxies.networks.models.xception`), every run
judged on the same validation rows (`galaxies.networks.training.TrainingConfig.train_rows`: fewer rows
of one seeded split). For each run it records the validation loss of every epoch, the
training seconds, and, from the trained network's predictions, the RMSE / CRB and bias / CRB
on each fixed-galaxy test set (`galaxies.runtime.profiles.FIXED_TESTSETS`) and the per-galaxy
normalized RMS on the random ``test`` set. Nothing is written to ``models/``: the networks
stay in memory, their predictions in a temporary folder.

Two files, under ``results/<profile>/`` (or ``--out``), rewritten after every run so that an
interrupted grid keeps what finished; a run already in them (same net, rows and epochs) is
not trained again:

* ``learning_curves.csv``: one row per run (net, training galaxies, epochs, seed);
* ``learning_curves_epochs.csv``: one row per run and epoch (loss, val_loss, learning rate).

    python benchmarks/learning_curves.py --profile quick                  # every net, sizes 1/4, 1/2, 1
    python benchmarks/learning_curves.py --nets small large --sizes 7200 3600
    python benchmarks/learning_curves.py --nets default --sizes 7200 --epochs 24
    python benchmarks/learning_curves.py --nets default --sizes 7200 --seed 1   # another draw

Another ``--seed`` draws another split (so other validation rows), initialization, noise and
order: the spread between seeds is the yardstick for the differences between runs.
The validation loss is the MSE of the labels standardized by each run's own training rows,
so runs on different rows differ in scale by the spread of their label means and widths (a
percent or two); the test-set ratios to the CRB are in label units and compare exactly.
Training times depend on the machine and on what else runs on it: the figures are this run's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402

from galaxies.conventions import LABEL_COLUMNS  # noqa: E402
from galaxies.evaluation import evaluate, testsets
from galaxies.runtime import profiles  # noqa: E402
from galaxies.runtime.errors import InputError  # noqa: E402
from galaxies.storage import files

#: network sizes by name (builder keywords; ``default``: the profile's own, ``xception_model``)
NETS = {
    "small": dict(entry_filters=32, block_filters=32, blocks=4, exit_filters=64),
    "default": None,
    "large": dict(entry_filters=96, block_filters=96, blocks=8, exit_filters=192),
}
RUNS_FILE, EPOCHS_FILE = "learning_curves.csv", "learning_curves_epochs.csv"
KEY = ["net", "train_rows", "epochs", "seed"]


def default_sizes(profile) -> list[int]:
    """A quarter, a half and the whole of the recommended set's training split."""
    from galaxies.evaluation.experiments import xception
    config = xception.config(profile.recommended, profile)
    rows = config.limit or files.dataset_info(profile.dataset(_trainset(profile)))["size"]
    whole = rows - max(1, round(config.validation_fraction * rows))
    return sorted({max(1, whole // 4), max(1, whole // 2), whole})


def _trainset(profile) -> str:
    return profile.recommended.rsplit("_", 1)[1]


def train_one(profile, net: str, train_rows: int, epochs: int | None = None,
              seed: int | None = None, verbose=0):
    """One run: the recommended configuration with ``train_rows`` training galaxies and the
    network ``net`` of `NETS` (``seed``: another split, initialization, noise and order than
    the configuration's). Returns ``(run row, history frame)``."""
    from galaxies.evaluation import estimators
    from galaxies.evaluation.experiments import xception
    from galaxies.networks.training import fit

    if net not in NETS:
        raise InputError(f"unknown net {net!r}; choose from {', '.join(NETS)}")
    overrides = {"train_rows": int(train_rows)}
    if epochs is not None:
        overrides["epochs"] = int(epochs)
    if seed is not None:
        overrides["seed"] = int(seed)
    if NETS[net] is not None:
        overrides["model_kwargs"] = dict(NETS[net])
    config = xception.config(profile.recommended, profile, **overrides)
    saved = fit(config, profile.dataset(_trainset(profile)), verbose=verbose)
    info, history = saved.info, saved.history()
    row = {"net": net, "train_rows": info["train_rows"], "epochs": config.epochs, "seed": config.seed,
           "model_kwargs": json.dumps(config.model_kwargs), "parameters": info["parameters"],
           "validation_rows": info["validation_rows"], "epochs_run": info["epochs_run"],
           "best_epoch": info["best_epoch"], "best_val_loss": info["best_val_loss"],
           "final_val_loss": float(history["val_loss"].iloc[-1]),
           "training_seconds": info["training_seconds"]}
    estimator, trainset = profile.recommended.rsplit("_", 1)
    network = estimators.Network(saved, name=estimator, trainset=trainset)
    with tempfile.TemporaryDirectory() as folder:
        for testset in profiles.TESTSETS:
            if not profile.dataset(testset).is_file():
                continue  # a test set this root has not built: its columns stay empty
            path = network.predict_file(profile.dataset(testset), Path(folder) / f"{testset}.h5")
            table = evaluate.against_crb(path, files.load_dataset(profile.dataset(testset), fields=()),
                                         testsets.crb(profile, testset))
            measures = (("norm rmse",) if testset == profiles.RANDOM_TESTSET
                        else ("rmse/crb", "bias/crb"))
            for measure in measures:
                for parameter in LABEL_COLUMNS:
                    row[f"{testset} {measure} {parameter}"] = float(table.loc[parameter, measure])
    history = history.assign(**{k: row[k] for k in KEY})[KEY + list(history.columns)]
    return row, history


def _read(path: Path) -> pd.DataFrame | None:
    """A file of earlier runs (those written before runs had a seed have the default's)."""
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    if "seed" not in frame:
        from galaxies.networks.training import TrainingConfig
        frame.insert(KEY.index("seed"), "seed", TrainingConfig.seed)
    return frame


def measure(profile, nets, sizes, epochs=None, out=None, seed=None, log=print):
    """Train every (size, net) not yet in ``out``'s files, rewriting them after each run.
    Returns the runs table (every run in the file)."""
    from galaxies.networks.training import TrainingConfig
    from galaxies.storage import atomic

    out = Path(out or profile.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    epochs = int(epochs or profile.epochs)
    seed = TrainingConfig.seed if seed is None else int(seed)
    runs, per_epoch = _read(out / RUNS_FILE), _read(out / EPOCHS_FILE)
    for size in sizes:
        for net in nets:
            if runs is not None and ((runs["net"] == net) & (runs["train_rows"] == size)
                                     & (runs["epochs"] == epochs) & (runs["seed"] == seed)).any():
                log(f"{net} net, {size} galaxies, {epochs} epochs, seed {seed}: already in "
                    f"{out / RUNS_FILE}")
                continue
            row, history = train_one(profile, net, size, epochs, seed)
            runs = pd.concat([runs, pd.DataFrame([row])], ignore_index=True)
            per_epoch = pd.concat([per_epoch, history], ignore_index=True)
            for frame, name in ((runs, RUNS_FILE), (per_epoch, EPOCHS_FILE)):
                atomic.write_text(out / name, frame.to_csv(index=False))
            log(f"{net} net, {size} galaxies, {epochs} epochs, seed {seed}: "
                f"{row['training_seconds']:.0f} s, "
                f"best val loss {row['best_val_loss']:.4f}")
    return runs


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs table as printed: size, time, validation loss, and per test set the ratios."""
    columns = KEY + ["parameters", "training_seconds", "best_val_loss"]
    columns += [c for c in runs.columns if " rmse/crb " in c or " bias/crb " in c or " norm rmse " in c]
    table = runs[columns].sort_values(["epochs", "seed", "net", "train_rows"]).set_index(KEY)
    table.columns = [c.replace(" rmse/crb ", " rmse ").replace(" bias/crb ", " bias ")
                     .replace(" norm rmse ", " nrms ") for c in table.columns]
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None,
                        help="smoke, quick or full [default: $GALAXIES_PROFILE, else quick]")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="training galaxies per run [default: 1/4, 1/2 and all of the split]")
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS),
                        help=f"network sizes [default: {' '.join(NETS)}]")
    parser.add_argument("--epochs", type=int, default=None, help="epochs [default: the profile's]")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the split, weights, noise and order [default: the configuration's]")
    parser.add_argument("--out", default=None, help="folder of the CSV files [default: results/<profile>]")
    args = parser.parse_args(argv)
    profile = profiles.get(args.profile)
    sizes = args.sizes or default_sizes(profile)
    print(f"profile {profile.name}: {profile.recommended}, nets {' '.join(args.nets)}, "
          f"training galaxies {' '.join(map(str, sizes))}, {args.epochs or profile.epochs} epochs "
          f"({os.cpu_count()} CPU cores)", flush=True)
    runs = measure(profile, args.nets, sizes, args.epochs, args.out, args.seed,
                   log=lambda m: print(m, flush=True))
    pd.set_option("display.width", 250)
    print("\nRMSE/CRB (rmse) and bias/CRB (bias) on the fixed sets, normalized RMS (nrms) on test")
    print(summary(runs).to_string(float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
