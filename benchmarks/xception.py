"""Accuracy and speed of the Xception estimators, from the models and predictions they saved.

Prints, for the profile chosen:

1. accuracy: RMSE / CRB and bias / CRB of each parameter on snr60 and snr30 (one galaxy at
   SNR ~60 and ~30, many noise realizations), and the RMSE on the random test set, for every
   trained variant (`galaxies.experiments.xception.VARIANTS`);
2. the uncertainty model's calibration: the standard deviation of (pred - true) / pred_std
   (1 when calibrated) and the coverage of the +-1 pred_std interval (68.3% when calibrated);
3. training: rows, epochs, seconds and images per second of each variant (training.json);
4. inference speed on this machine: images per second of ``xception_v1`` at batch 256 through
   `SavedModel.predict` (the compiled predict function) and through a plain ``model.predict``
   (and the time of a call on 16 images, where ``model.predict``'s set-up dominates),
   and the speed-up over the L-BFGS-B baseline's seconds per image
   (``lbfgsb_fit__snr60.h5``, attribute ``seconds_per_image``);
5. with ``--architectures``: training and inference images per second of the seed's
   architecture (blocks on a 32 x 32 grid) and of the default one, on random inputs.

    python benchmarks/xception.py --profile quick [--architectures]

Speeds depend on the machine and on what else runs on it: the figures are this run's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from galaxies import evaluate, files, profiles  # noqa: E402
from galaxies.experiments import xception as estimators  # noqa: E402

BASELINE = ("lbfgsb", "fit", "snr60")  # estimator, "trained on", test set of the baseline


def accuracy(profile) -> None:
    names = [n for n in estimators.VARIANTS if estimators.model_dir(n, profile).is_dir()]
    try:
        table = estimators.against_crb(names, profile)
    except FileNotFoundError as err:
        print(f"no predictions: {err}; run models/xception.ipynb first")
        return
    for column in ("rmse/crb", "bias/crb"):
        wide = table[column].unstack("parameter")[list(files.Dataset.columns)]
        wide = wide[wide.index.get_level_values("testset") != "test"]
        print(f"{column} on the fixed-galaxy sets (1 = the Cramér–Rao bound)")
        print(wide.round(2).to_string(), "\n")
    rmse = table["rmse"].unstack("parameter")[list(files.Dataset.columns)]
    rmse = rmse[rmse.index.get_level_values("testset") == "test"].droplevel("testset")
    print("RMSE on the random test set (label units)")
    print(rmse.to_string(float_format=lambda v: f"{v:.4g}"), "\n")


def calibration(profile) -> None:
    rows = {}
    for testset in profiles.TESTSETS:
        path = profile.predictions("xception-nll", "v1", testset)
        if path.is_file():
            rows[testset] = evaluate.calibration(path, profile.dataset(testset))
    if rows:
        print("uncertainty calibration of xception-nll_v1 (z = (pred - true) / pred_std)")
        print(pd.concat(rows, names=["testset"]).round(3).to_string(), "\n")
    else:
        print("xception-nll_v1: no predictions\n")


def training(profile) -> None:
    rows = []
    for name in estimators.VARIANTS:
        path = estimators.model_dir(name, profile) / "training.json"
        if path.is_file():
            info = json.loads(path.read_text())
            rows.append({"model": name, "parameters": info["parameters"],
                         "train rows": info["train_rows"], "epochs": info["epochs_run"],
                         "training s": info["training_seconds"],
                         "train images/s": info["train_images_per_second"],
                         "best val loss": info["best_val_loss"], "backend": info.get("backend")})
    if rows:
        frame = pd.DataFrame(rows).set_index("model")
        print("training")
        print(frame.to_string(float_format=lambda v: f"{v:.4g}"))
        print(f"total training time: {frame['training s'].sum():.0f} s\n")


def _time(function, n_images: int, repeats: int = 3) -> tuple[float, float]:
    """Best images per second of ``function()`` over a few repeats (after one warm-up), in
    wall time and per CPU-second of this process (less sensitive to other processes)."""
    function()
    best, best_cpu = np.inf, np.inf
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        function()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return n_images / best, n_images / best_cpu


def inference(profile, n_images: int = 2048, batch_size: int = 256) -> None:
    path = estimators.model_dir("xception_v1", profile)
    if not path.is_dir():
        print(f"{path}: not trained; no inference timing\n")
        return
    model = estimators.load("xception_v1", profile)
    ds = files.load_dataset(profile.dataset("test"), fields=("img",))
    images = np.resize(ds.img, (n_images, 64, 64))
    fast = _time(lambda: model.predict(images, batch_size=batch_size), n_images)
    x = model.inputs(images)
    plain = _time(lambda: model.model.predict(x[0], batch_size=batch_size, verbose=0), n_images)
    print(f"inference, xception_v1, batch {batch_size}, {n_images} images, "
          f"{os.cpu_count()} CPU cores:")
    print(f"  SavedModel.predict (compiled function): {fast[0]:8.0f} images/s "
          f"({fast[1]:.0f} per CPU-second)")
    print(f"  keras Model.predict:                    {plain[0]:8.0f} images/s "
          f"({plain[1]:.0f} per CPU-second)")
    few = images[:16]
    small = _time(lambda: model.predict(few), len(few), repeats=10)
    small_plain = _time(lambda: model.model.predict(model.inputs(few)[0], verbose=0), len(few), repeats=10)
    print(f"  16 images a call: SavedModel.predict {1e3 * len(few) / small[0]:.1f} ms, "
          f"keras Model.predict {1e3 * len(few) / small_plain[0]:.1f} ms a call")
    baseline = profile.predictions(*BASELINE)
    if baseline.is_file():
        seconds = files.load_predictions(baseline).seconds_per_image
        print(f"  L-BFGS-B baseline: {seconds:.3f} s per image -> speed-up {seconds * fast[0]:,.0f} x")
    else:
        print(f"  L-BFGS-B baseline: {baseline} does not exist yet (run Project/baseline.ipynb); "
              "no speed-up")
    print()


def architectures(batch_size: int = 128, steps: int = 4) -> None:
    """Training and inference speed of the seed's and the default architecture."""
    import keras

    from galaxies.models import xception
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch_size * steps, 64, 64, 1)).astype(np.float32)
    y = rng.normal(size=(batch_size * steps, 5)).astype(np.float32)
    print(f"architectures on random inputs ({keras.backend.backend()} backend, batch {batch_size} "
          "for training, 256 for inference):")
    for label, kwargs in (("seed (conv stem, 32 x 32 grid)", xception.SEED), ("default", {})):
        model = xception.build((64, 64, 1), **kwargs)
        model.compile(optimizer="adam", loss="mse")
        model.fit(x[:batch_size], y[:batch_size], batch_size=batch_size, epochs=1, verbose=0)
        start, cpu = time.perf_counter(), time.process_time()
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
        train_speed = len(x) / (time.perf_counter() - start)
        train_cpu = len(x) / (time.process_time() - cpu)

        def forward():
            for k in range(0, len(x), 256):
                model.predict_on_batch(x[k:k + 256])
        speed, per_cpu = _time(forward, len(x))
        print(f"  {label:32s} {model.count_params():7d} parameters  training {train_speed:6.0f} "
              f"images/s ({train_cpu:.0f} per CPU-s)  inference {speed:6.0f} images/s "
              f"({per_cpu:.0f} per CPU-s)")
    print()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None,
                        help="smoke, quick or full [default: $GALAXIES_PROFILE, else quick]")
    parser.add_argument("--architectures", action="store_true",
                        help="also time the seed's and the default architecture on random inputs")
    args = parser.parse_args(argv)
    profile = profiles.get(args.profile)
    pd.set_option("display.width", 140)
    print(f"profile {profile.name}\n")
    accuracy(profile)
    calibration(profile)
    training(profile)
    inference(profile)
    if args.architectures:
        architectures()
    return 0


if __name__ == "__main__":
    sys.exit(main())
