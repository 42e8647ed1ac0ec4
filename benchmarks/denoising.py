"""Denoisers and the denoise-then-estimate pipeline, measured from saved models and predictions.

For each trained denoiser of the profile (``models/<profile>/{edsr,rdn}_v1a``):

* PSNR [dB] and SSIM of the noisy images and of the denoised images against the noiseless
  ones, on each test set (snr60, snr30, test), and the gain;
* throughput: images denoised per second on this machine (after a warm-up batch).

Then, from the predictions files, the RMSE and RMSE / CRB of the plain Xception, of its
same-budget control (when the profile needed one) and of each two-stage estimator
(``edsr-xception``, ``rdn-xception``), and the change of the RMSE in percent.

    python benchmarks/denoising.py                    # the quick profile
    python benchmarks/denoising.py --profile smoke --batch-size 128

Run the notebooks of experiments/denoising first (``galaxies run --only denoising``).
Speeds depend on the machine and on its load: run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, help="smoke, quick or full [default: quick]")
    parser.add_argument("--batch-size", type=int, default=64, help="denoising batch size")
    parser.add_argument("--no-crb", action="store_true", help="skip the Cramér-Rao bounds")
    args = parser.parse_args()

    import pandas as pd

    from galaxies.evaluation.experiments import denoise
    from galaxies.runtime import profiles

    pd.set_option("display.width", 160)
    profile = profiles.get(args.profile)
    print(f"profile {profile.name}; denoising batch size {args.batch_size}; "
          f"{os.cpu_count()} CPU cores visible")
    qualities = {}
    for name in denoise.DENOISERS:
        try:
            den = denoise.load_denoiser(name, profile)
        except FileNotFoundError as err:
            print(f"\n{name}: {err}")
            continue
        import keras
        info = den.info
        print(f"\n== {name}: {info['parameters']:,} parameters, "
              f"{info['config']['model_kwargs']}, backend {keras.backend.backend()}")
        print(f"trained on {info['trainset']} ({info['train_rows']} rows, "
              f"{info['epochs_run']} epochs, {info['training_seconds']:.0f} s, "
              f"{info['train_images_per_second']} images/s)")
        table = denoise.quality_table(den, profile, batch_size=args.batch_size, progress=False)
        qualities[name] = table
        print(table.round({"psnr": 2, "psnr_median": 2, "ssim": 4, "rmse": 1,
                           "images_per_second": 0}).to_string())

    if qualities:
        print("\n== PSNR [dB] and SSIM: noisy -> denoised, per test set")
        rows = {}
        for name, table in qualities.items():
            for testset in profiles.TESTSETS:
                noisy, clean = table.loc[(testset, "noisy")], table.loc[(testset, "denoised")]
                rows[(name, testset)] = {
                    "psnr noisy": noisy["psnr"], "psnr denoised": clean["psnr"],
                    "psnr gain": clean["psnr"] - noisy["psnr"],
                    "ssim noisy": noisy["ssim"], "ssim denoised": clean["ssim"],
                    "images/s": clean["images_per_second"]}
        summary = pd.DataFrame.from_dict(rows, orient="index")
        summary.index.names = ["denoiser", "testset"]
        print(summary.round({"psnr noisy": 2, "psnr denoised": 2, "psnr gain": 2,
                             "ssim noisy": 4, "ssim denoised": 4, "images/s": 0}).to_string())

    print("\n== RMSE against the Cramér-Rao bound, from the predictions files")
    table = denoise.compare(profile, with_crb=not args.no_crb)
    if table.empty:
        print("no predictions yet")
        return
    columns = [c for c in ("rmse", "crb", "rmse/crb", "train_rows", "epochs_run") if c in table]
    print(table[columns].to_string(float_format=lambda v: f"{v:.4g}"))
    change = denoise.rmse_change(table)
    if len(change):
        print("\n== change of the RMSE against the same-budget control (or the plain Xception), %")
        print(change.round(1).to_string())


if __name__ == "__main__":
    main()
