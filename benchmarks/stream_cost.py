"""What the fresh-noise stream costs the denoisers and the autoencoder, against fixed images.

For the first ``--rows`` rows of a data set (both noisy and noiseless images) and a profile's
sizes, trains EDSR, RDN and the autoencoder once with ``noise="fixed"`` (the set's noisy images)
and once with ``noise="fresh"`` (a new noisy draw at every showing), ``--epochs`` epochs each,
and prints per configuration:

* ``setup_s``: building the stream (scalers, the validation draw; with fresh noise one noisy
  draw of the whole training split);
* ``stream_s_per_epoch``: one epoch of batches drawn alone, without a network (the data's
  own cost: orientations, and with fresh noise the Poisson and Gaussian draws);
* ``fit_s_per_epoch``: the whole training's seconds over its epochs (the first epoch's
  tracing included, alike for both); with ``--repeats``, the fastest of that many trainings,
  the two noises in alternating order.

    python benchmarks/stream_cost.py --profile smoke --data data/smoke/v1a.h5 --rows 128
    python benchmarks/stream_cost.py --profile quick --data data/quick/v1a.h5 --rows 512

Times depend on the machine and on what else runs on it: the figures are this run's.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def stream_seconds(make_stream) -> tuple[float, float]:
    """``(setup seconds, seconds for one epoch of batches)`` of a stream factory."""
    start = time.perf_counter()
    batches = make_stream()[0]
    setup = time.perf_counter() - start
    start = time.perf_counter()
    for k in range(len(batches)):
        batches[k]
    return setup, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, help="smoke, quick or full [default: quick]")
    parser.add_argument("--data", required=True, help="a data set with img and img_nonoise")
    parser.add_argument("--rows", type=int, default=256, help="leading rows used [default: 256]")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per training [default: 3]")
    parser.add_argument("--repeats", type=int, default=1, help="trainings per configuration, "
                        "the fastest kept [default: 1]")
    args = parser.parse_args()

    import pandas as pd

    from galaxies.evaluation.experiments import autoencoder
    from galaxies.networks.training import autoencoder as autoencoder_training, denoiser, split_rows
    from galaxies.runtime import profiles
    from galaxies.storage import files

    profile = profiles.get(args.profile)
    ds = files.load_dataset(args.data, fields=("img", "img_nonoise"), rows=args.rows)
    budget = dict(epochs=args.epochs, patience=args.epochs)
    rows = {}
    for repeat in range(args.repeats):
        for network in ("edsr", "rdn", "autoencoder"):
            for noise in ("fixed", "fresh")[::1 if repeat % 2 == 0 else -1]:
                if network == "autoencoder":
                    config = autoencoder.config_from_profile(profile, noise=noise, limit=None,
                                                             **budget)
                    module = autoencoder_training
                else:
                    config = denoiser.DenoiserConfig.from_profile(profile, network, noise=noise,
                                                                   limit=None, **budget)
                    module = denoiser
                train, val = split_rows(len(ds), config.validation_fraction, config.seed)
                setup, epoch = stream_seconds(lambda: module.stream(config, ds, train, val))
                info = module.fit(config, ds, verbose=0).info
                row = {"batch_size": config.batch_size, "train_rows": info["train_rows"],
                       "epochs": info["epochs_run"], "setup_s": setup, "stream_s_per_epoch": epoch,
                       "fit_s_per_epoch": info["training_seconds"] / info["epochs_run"]}
                print(network, noise, row, flush=True)
                best = rows.get((network, noise))
                if best is not None:
                    row = {k: min(v, best[k]) for k, v in row.items()}
                rows[(network, noise)] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.names = ["network", "noise"]
    fit = table["fit_s_per_epoch"].unstack("noise")
    table["fit_fresh_over_fixed"] = (fit["fresh"] / fit["fixed"]).reindex(
        table.index, level="network")
    print(f"\nprofile {profile.name}, {args.rows} rows of {args.data}, {args.epochs} epochs, "
          f"fastest of {args.repeats}, {os.cpu_count()} CPU cores visible")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
