"""Accuracy of the autoencoder and of the AutoKeras pick against the Cramér–Rao bound.

Reads the predictions the notebooks wrote (``results/<profile>/predictions/``) for the test
sets snr60, snr30 (one galaxy at SNR 60 and 30, many noise realizations) and test (random
galaxies), and prints for each estimator and test set the RMSE of each parameter divided by
the Cramér–Rao bound (1 is the best an unbiased estimator can do), then the models' sizes,
training times and prediction speeds.

    python benchmarks/autoencoder_autokeras.py --profile quick
"""
from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from galaxies.evaluation import testsets
from galaxies.runtime import profiles
from galaxies.storage import files

ESTIMATORS = ("autoencoder", "autokeras")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="smoke, quick or full [default: "
                        "$GALAXIES_PROFILE, else quick]")
    parser.add_argument("--column", default="rmse/crb",
                        help="column of the CRB table to print [default: rmse/crb]")
    args = parser.parse_args(argv)
    profile = profiles.get(args.profile)
    pd.set_option("display.width", 120)

    ratios, about = {}, []
    for estimator in ESTIMATORS:
        try:
            table = testsets.against_crb(profile, estimator)
        except FileNotFoundError as err:
            print(f"{estimator}: no predictions ({err}); run its notebook first", file=sys.stderr)
            continue
        ratios[estimator] = testsets.ratios(table, args.column)
        model_dir = profile.model_dir(estimator, "v1")
        info = json.loads((model_dir / "training.json").read_text()) if (model_dir / "training.json").is_file() else {}
        speed = {t: files.load_predictions(profile.predictions(estimator, "v1", t)).seconds_per_image
                 for t in testsets.TESTSETS if profile.predictions(estimator, "v1", t).is_file()}
        about.append({"estimator": estimator, "parameters": info.get("parameters"),
                      "train rows": info.get("train_rows"), "epochs": info.get("epochs_run"),
                      "training s": info.get("training_seconds"),
                      "ms / image": 1e3 * sum(speed.values()) / max(len(speed), 1)})
    if not ratios:
        print(f"no predictions of {', '.join(ESTIMATORS)} under profile {profile.name}", file=sys.stderr)
        return 1
    print(f"profile {profile.name}: {args.column} per parameter (the bound: 1)\n")
    print(pd.concat(ratios, names=["estimator", "testset"]).round(3).to_string())
    print()
    print(pd.DataFrame(about).set_index("estimator").to_string(float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
