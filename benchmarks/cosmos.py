"""What each estimator does on galaxies that are not its model: the `cosmos` ring test.

Builds the profile's `cosmos` set (`galaxies.simulation.cosmos`, GalSim's example COSMOS catalog) under
``data/<profile>/cosmos.h5`` if it is missing (`galaxies.simulation.cosmos.build_for_profile`), runs the cheap estimators on it
(`galaxies.evaluation.cosmos_report.estimate`: the JAX fit, HSM KSB and REGAUSS, the networks named and the
two-step JAX refinement of the first, and the remedies: the Sérsic fit in a wider box, the bulge
plus disc fit and the model the information criterion chooses), and prints, per estimator and group (single Sérsic /
bulge plus disc, inside / outside the training box): flux and half-light-radius bias and
scatter in percent, shear m and c with jackknife standard errors, and the CPU seconds per image;
on the single Sérsic galaxies inside the box, each estimator's error over the bound.
Then the fit's domain flag (reduced chi-square against the image noise): the share of the fit's
and of the first network's large errors it catches and of their good estimates it flags.

    python benchmarks/cosmos.py --profile quick --networks xception-fresh_v3 xception_v1
    python benchmarks/cosmos.py --profile full --networks --no-remedies   # the fit alone, 8,000 images

Reads the profile's trained models; writes only the `cosmos` set. Figures are this run's.
"""
from __future__ import annotations

import argparse

import pandas as pd

from galaxies.evaluation import cosmos_report
from galaxies.simulation import cosmos
from galaxies.runtime import profiles


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--networks", nargs="*", default=None,
                        help="models <estimator>_<trainset> (default: the recommended one)")
    parser.add_argument("--no-fit", action="store_true")
    parser.add_argument("--no-remedies", action="store_true",
                        help="skip the wide, bulge plus disc and chosen fits (the slow part)")
    args = parser.parse_args(argv)
    profile = profiles.get(args.profile)
    path = cosmos.build_for_profile(profile, progress=False)
    spec = cosmos.spec_for(profile)
    print(f"cosmos ({profile.name}): {spec.size} images, {spec.galaxies} galaxies x "
          f"{spec.angles} angles x {spec.realizations} realizations x +-g, |g| {spec.shear}, "
          f"PSF {spec.psf_fwhm}\", sigma {spec.sigma}")
    estimates, details = cosmos_report.estimate(path, profile, networks=args.networks,
                                                fit=not args.no_fit,
                                                bulge_disc=not args.no_remedies)
    table = cosmos_report.report_table(path, estimates)
    if "bulge+disc chosen" in details:
        shares = cosmos_report.chosen_shares(path, details)
        print(f"the information criterion chose the bulge plus disc on "
              f"{shares['bulge+disc']:.0%} of the bulge-plus-disc images and "
              f"{shares['sersic']:.0%} of the single Sérsic ones")
    table["s/img"] = table["estimator"].map(details["seconds"])
    show = table[["estimator", "group", "rows", "failed", "galaxies", "flux_bias_pct",
                  "flux_scatter_pct", "r_bias_pct", "r_scatter_pct", "m", "m_se", "c1", "c1_se",
                  "c2", "c2_se", "s/img"]]
    with pd.option_context("display.width", 250, "display.max_columns", 30,
                           "display.max_rows", 200, "display.float_format", "{:.4g}".format):
        print(show.to_string(index=False))
    rows, crb = cosmos_report.sersic_bounds(path)
    bounds = cosmos_report.against_bounds(
        {k: v for k, v in estimates.items() if k not in cosmos_report.HSM}, path, rows, crb)
    print(f"\nsingle Sérsic inside the box ({len(rows)} rows): error / each galaxy's bound "
          "(the shear's truth: the galaxy's own shear)")
    with pd.option_context("display.width", 250, "display.float_format", "{:.3f}".format):
        print(bounds.to_string(index=False))
    if "fit" not in details:
        return
    groups, scores = cosmos_report.flag_tables(path, estimates, details)
    print(f"\nthe fit's domain flag (chi2/dof > 1 + {cosmos_report.CHI2_SIGMAS:g} sqrt(2/dof))")
    with pd.option_context("display.width", 250, "display.float_format", "{:.3f}".format):
        print(groups.to_string(index=False))
        print(scores.to_string(index=False))


if __name__ == "__main__":
    main()
