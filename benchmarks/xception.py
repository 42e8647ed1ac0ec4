"""Accuracy and speed of the Xception estimators, from the models and predictions they saved.

Prints, for the profile chosen:

0. the issue's targets, each line with the figure, the target and MET or MISSED (`TARGETS`):
   the recommended network's RMSE / CRB (its bias / CRB next to it) on every fixed-galaxy set
   (`galaxies.runtime.profiles.FIXED_TESTSETS`) and its per-galaxy normalized RMS on the random set;
   every other network's flux RMSE / CRB at SNR 30; the uncertainty network's z-score std and
   68% coverage on every test set; the recommended network's shear m and c (g1, g2, SNR above
   20, with standard errors); its speed-up over the L-BFGS-B fit per image on each test set;
1. accuracy: RMSE / CRB and bias / CRB of each parameter on snr60 and snr30 (one galaxy at
   SNR ~60 and ~30, many noise realizations), and the RMSE on the random test set, for every
   trained variant (`galaxies.evaluation.experiments.xception.VARIANTS`);
2. the uncertainty model's calibration: the standard deviation of (pred - true) / pred_std
   (1 when calibrated) and the coverage of the +-1 pred_std interval (68.3% when calibrated);
3. training: rows, epochs, seconds and images per second of each variant (training.json);
4. inference speed on this machine: images per second of ``xception_v1`` at batch 256 through
   `SavedModel.predict` (the compiled predict function) and through a plain ``model.predict``
   (and the time of a call on 16 images, where ``model.predict``'s set-up dominates),
   and the speed-up over the L-BFGS-B baseline's seconds per image
   (``lbfgsb_fit__snr60.h5``, attribute ``seconds_per_image``);
5. with ``--architectures``: training and inference images per second of the seed's
   architecture (blocks on a 32 x 32 grid) and of the default one, on random inputs;
6. with ``--reference``: every network against the Bayes reference, each galaxy's posterior
   under its training prior (benchmarks/xception_reference.py: targets, tables, and with
   ``--seeds K`` the recommended network retrained over K seeds).

    python benchmarks/xception.py --profile quick [--architectures] [--targets-only]
        [--reference [--compute-posteriors] [--seeds 3] [--test-rows 300]]

Speeds depend on the machine and on what else runs on it: the figures are this run's.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from galaxies.evaluation import evaluate
from galaxies.evaluation.experiments import xception as estimators  # noqa: E402
from galaxies.runtime import profiles  # noqa: E402
from galaxies.storage import files

BASELINE = ("lbfgsb", "fit", "snr60")  # estimator, "trained on", test set of the baseline

#: the issue's targets: the recommended network's RMSE / CRB on every fixed-galaxy set and its
#: per-galaxy normalized RMS on the random set (at most), every other network's flux RMSE / CRB
#: at SNR 30 (at most), the uncertainty network's (`Profile.uncertainty`) z-score std and 68%
#: coverage in percent (within),
#: the shear's |m| and |c| above an SNR (at most), the speed-up over the fit (at least)
TARGETS = {
    "fixed rmse/crb": {"flux": 1.20, "sersic_n": 1.25, "sersic_r": 1.20, "g1": 1.05, "g2": 1.05},
    "random norm rmse": {"flux": 1.10, "sersic_r": 1.10, "g1": 1.10, "g2": 1.10},
    "others flux rmse/crb": ("snr30", 1.5),
    "z std": (0.9, 1.1), "coverage 68%": (63.0, 73.0),
    "shear min snr": 20, "shear m": 0.01, "shear c": 0.001,
    "speed-up": 1000.0,
}


class Verdicts:
    """The targets' lines: the figure, the target and MET or MISSED, and their count."""

    def __init__(self):
        self.met, self.missed = 0, 0

    def line(self, what: str, figure: str, target: str, met: bool | None) -> None:
        verdict = "no figure" if met is None else "MET" if met else "MISSED"
        if met is not None:
            self.met, self.missed = self.met + met, self.missed + (not met)
        print(f"  {what:40s} {figure:42s} target {target:14s} {verdict}")


def _recommended_table(profile, testsets):
    estimator, trainset = profile.recommended.rsplit("_", 1)
    from galaxies.evaluation import testsets as testsets_module
    try:
        return testsets_module.against_crb(profile, estimator, trainset, testsets)
    except FileNotFoundError:
        return None


def targets(profile) -> None:
    """Each of the issue's targets as one line: the figure, the target, MET or MISSED."""
    verdicts = Verdicts()
    name = profile.recommended
    estimator, trainset = name.rsplit("_", 1)
    print(f"targets (recommended network {name})")
    table = _recommended_table(profile, profiles.TESTSETS)
    checks = [(testset, "fixed rmse/crb", "rmse/crb", "bias/crb", "RMSE/CRB")
              for testset in profiles.FIXED_TESTSETS]
    checks.append((profiles.RANDOM_TESTSET, "random norm rmse", "norm rmse", "norm bias", "norm RMS"))
    for testset, targets_of, column, bias, label in checks:
        for parameter, limit in TARGETS[targets_of].items():
            what = f"{name} {testset} {parameter}"
            if table is None or testset not in table.index.get_level_values("testset"):
                verdicts.line(what, "no predictions", f"<= {limit:.2f}", None)
                continue
            row = table.loc[(testset, parameter)]
            verdicts.line(what, f"{label} {row[column]:.2f} (bias {row[bias]:+.2f})",
                          f"<= {limit:.2f}", row[column] <= limit)
    _other_networks(profile, verdicts)
    _uncertainty(profile, verdicts)
    _shear(profile, verdicts, estimator, trainset)
    _speed(profile, verdicts, estimator, trainset)
    print(f"  {verdicts.met} met, {verdicts.missed} missed\n")


def networks(profile) -> list[str]:
    """The networks compared (``<estimator>_<trainset>``): the report's estimators that have a
    model of their own, the Xception variants and any other trained model directory of the
    profile (e.g. a same-budget control), the noiseless-image references left out."""
    from galaxies.evaluation import report
    entries = [e for e in report.estimators(profile) if e.model is None]
    noiseless = {e.name for e in entries if e.noiseless}
    noiseless |= {n for n, v in estimators.VARIANTS.items() if v.options.get("inputs") == "noiseless"}
    names = [e.name for e in entries] + list(estimators.VARIANTS)
    if profile.models_dir.is_dir():
        names += sorted(d.name for d in profile.models_dir.iterdir()
                        if d.is_dir() and not d.name.startswith(".") and "_" in d.name)
    return [n for n in dict.fromkeys(names) if n not in noiseless]


def _other_networks(profile, verdicts) -> None:
    from galaxies.evaluation import testsets as testsets_module
    testset, limit = TARGETS["others flux rmse/crb"]
    if not profile.dataset(testset).is_file():
        verdicts.line(f"other networks, {testset} flux", f"no data set {testset}", f"<= {limit:.2f}", None)
        return
    crb = testsets_module.crb(profile, testset)
    ds = files.load_dataset(profile.dataset(testset), fields=())
    for name in networks(profile):
        if name == profile.recommended:
            continue
        path = profile.predictions(*name.rsplit("_", 1), testset)
        if path.is_file():
            ratio = evaluate.against_crb(path, ds, crb).loc["flux", "rmse/crb"]
            verdicts.line(f"{name} {testset} flux", f"RMSE/CRB {ratio:.2f}", f"<= {limit:.2f}",
                          ratio <= limit)


def _uncertainty(profile, verdicts) -> None:
    name = profile.uncertainty
    (low, high), (cov_low, cov_high) = TARGETS["z std"], TARGETS["coverage 68%"]
    for testset in profiles.TESTSETS:
        path = profile.predictions(*name.rsplit("_", 1), testset)
        if not path.is_file():
            verdicts.line(f"{name} {testset}", "no predictions", f"{low:g}..{high:g}", None)
            continue
        table = evaluate.calibration(path, profile.dataset(testset))
        for column, (a, b), unit in (("z std", (low, high), ""), ("coverage 68%", (cov_low, cov_high), "%")):
            values = table[column]
            figure = " ".join(f"{v:.3f}" if not unit else f"{v:.1f}" for v in values)
            verdicts.line(f"{name} {testset} {column}", f"{figure}{unit}", f"{a:g}..{b:g}{unit}",
                          bool(((values >= a) & (values <= b)).all()))
    print(f"  ({name}: the five figures are {', '.join(files.Dataset.columns)})")


def _shear(profile, verdicts, estimator, trainset) -> None:
    random, min_snr = profiles.RANDOM_TESTSET, TARGETS["shear min snr"]
    path = profile.predictions(estimator, trainset, random)
    if not path.is_file():
        verdicts.line(f"{estimator}_{trainset} shear", "no predictions", "", None)
        return
    table = evaluate.shear_calibration(path, files.load_dataset(profile.dataset(random), fields=()),
                                       min_snr=min_snr)
    for parameter in ("g1", "g2"):
        row = table.loc[(parameter, f"> {min_snr:g}")]
        for key, limit in (("m", TARGETS["shear m"]), ("c", TARGETS["shear c"])):
            verdicts.line(f"{estimator}_{trainset} {random} {parameter} {key} (SNR > {min_snr:g})",
                          f"{row[key]:+.4f} +- {row[key + ' err']:.4f} ({row['n']:.0f} galaxies)",
                          f"|{key}| <= {limit:g}", abs(row[key]) <= limit)


def _speed(profile, verdicts, estimator, trainset) -> None:
    limit = TARGETS["speed-up"]
    for testset in profiles.TESTSETS:
        fit, net = (profile.predictions(*BASELINE[:2], testset),
                    profile.predictions(estimator, trainset, testset))
        if not (fit.is_file() and net.is_file()):
            verdicts.line(f"speed-up over the fit, {testset}", "no predictions", f">= {limit:g} x", None)
            continue
        fit_s, net_s = (files.load_predictions(p).seconds_per_image for p in (fit, net))
        verdicts.line(f"speed-up over the fit, {testset}",
                      f"{fit_s / net_s:,.0f} x ({fit_s:.3g} s / {net_s:.2g} s)", f">= {limit:g} x",
                      fit_s / net_s >= limit)


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
        path = profile.predictions(*profile.uncertainty.rsplit("_", 1), testset)
        if path.is_file():
            rows[testset] = evaluate.calibration(path, profile.dataset(testset))
    if rows:
        print(f"uncertainty calibration of {profile.uncertainty} (z = (pred - true) / pred_std)")
        print(pd.concat(rows, names=["testset"]).round(3).to_string(), "\n")
    else:
        print(f"{profile.uncertainty}: no predictions\n")


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

    from galaxies.networks.models import xception
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch_size * steps, 64, 64, 1)).astype(np.float32)
    y = rng.normal(size=(batch_size * steps, 5)).astype(np.float32)
    print(f"architectures on random inputs ({keras.backend.backend()} backend, batch {batch_size} "
          "for training, 256 for inference):")
    for label, kwargs in (("seed (conv stem, 32 x 32 grid)", xception.ORIGINAL_STUDY), ("default", {})):
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


def reference_module():
    """benchmarks/xception_reference.py, loaded by its path (the benchmarks are no package)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "xception_reference.py")
    spec = importlib.util.spec_from_file_location("xception_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None,
                        help="smoke, quick or full [default: $GALAXIES_PROFILE, else quick]")
    parser.add_argument("--architectures", action="store_true",
                        help="also time the seed's and the default architecture on random inputs")
    parser.add_argument("--targets-only", action="store_true", help="print only the targets")
    parser.add_argument("--reference", action="store_true",
                        help="also judge the networks against each galaxy's posterior")
    parser.add_argument("--compute-posteriors", action="store_true",
                        help="compute the posteriors the cache lacks (about 1 s a galaxy)")
    parser.add_argument("--seeds", type=int, default=0,
                        help="retrain the recommended network over this many seeds and judge "
                             "each against the posterior (with --reference)")
    parser.add_argument("--test-rows", type=int, default=None,
                        help="compute the recommended network's reference for this many rows of "
                             "test first (with --reference) [default: the profile's]")
    args = parser.parse_args(argv)
    profile = profiles.get(args.profile)
    if args.test_rows is not None and not 0 < args.test_rows <= profile.crb_limit:
        parser.error(f"--test-rows {args.test_rows}: must be in 1..{profile.crb_limit} (the rows "
                     f"of test with a bound under profile {profile.name})")
    pd.set_option("display.width", 140)
    print(f"profile {profile.name}\n")
    targets(profile)
    if args.reference:
        verdicts = Verdicts()
        reference_module().main(profile, verdicts, args.compute_posteriors, args.seeds,
                                 args.test_rows)
        print(f"  against the reference: {verdicts.met} met, {verdicts.missed} missed\n")
    if args.targets_only:
        return 0
    accuracy(profile)
    calibration(profile)
    training(profile)
    inference(profile)
    if args.architectures:
        architectures()
    return 0


if __name__ == "__main__":
    sys.exit(main())
