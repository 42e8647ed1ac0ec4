"""What the bulge plus disc fit's one shear costs: noiseless COSMOS bulges plus discs.

The bulge plus disc model (`galaxies.inference.differentiable.bulge_disc`) shears both
components alike, where a real bulge is rounder than its disc. On noiseless images (weights of
a read noise ``--sigma``, so the fit's optimum is the model's best description, not a noise
draw) of the catalog's bulge-plus-disc galaxies inside the training box's radii, drawn by GalSim
through a Moffat of FWHM 0.5", this prints the flux and half-light-radius bias (mean and the
largest, percent) of the Sérsic fit (radii to 3") and of the bulge plus disc fit, twice: with
the catalog's own shapes, and with each bulge given its disc's shape (where the model is exact
and what remains is the fit's own convergence).

    python benchmarks/bulge_disc.py [--galaxies 24]

Figures are this run's.
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from galaxies.conventions import RANGES
from galaxies.inference.differentiable import bulge_disc
from galaxies.inference.differentiable.fit import BOX, fit
from galaxies.simulation import cosmos

FLUX, PSF_FWHM = 1.5e5, 0.5


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--galaxies", type=int, default=24)
    parser.add_argument("--sigma", type=float, default=20.0)
    args = parser.parse_args(argv)
    galaxies = [g for g in cosmos.catalog()
                if g.kind == cosmos.BULGE_DISC and g.r in RANGES["sersic_r"]][:args.galaxies]
    wide = BOX.copy()
    wide[2] = (0.02, 3.0)
    print(f"{len(galaxies)} bulge-plus-disc galaxies (radius in the training box), noiseless, "
          f"flux {FLUX:g}, PSF {PSF_FWHM}\", weights of sigma {args.sigma:g}; bias in percent "
          f"(mean, largest |.|)")
    for label, same_shape in (("the catalog's shapes", False), ("bulge given its disc's shape", True)):
        drawn = []
        for g in galaxies:
            bulge, disc = g.components
            if same_shape:
                bulge = (*bulge[:3], disc[3], disc[4])
            drawn.append(dataclasses.replace(g, components=(bulge, disc)))
        images = np.stack([cosmos.draw_row(g, FLUX, 0.0, 0.0, 0.0, PSF_FWHM)
                           for g in drawn]).astype(float)
        psf, sigma = np.full(len(drawn), PSF_FWHM), np.full(len(drawn), args.sigma)
        sersic = fit(images, psf, sigma, gain=None, box=wide)
        params = bulge_disc.fit_bulge_disc(images, psf, sigma, sersic.params, gain=None)[0]
        truth_r = np.array([g.r for g in drawn])
        for name, flux, r in (("Sérsic fit", sersic.params[:, 0], sersic.params[:, 2]),
                              ("bulge + disc fit", params[:, 0],
                               bulge_disc.half_light_radius(params))):
            df, dr = 100 * (flux / FLUX - 1), 100 * (r / truth_r - 1)
            print(f"  {label:<30} {name:<17} flux {df.mean():+6.2f} ({np.abs(df).max():5.2f})  "
                  f"r {dr.mean():+6.2f} ({np.abs(dr).max():5.2f})")


if __name__ == "__main__":
    main()
