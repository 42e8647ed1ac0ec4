"""`galaxies measure` on simulated FITS cutouts of other pixel scales and stamp sizes.

For each configuration (pixel scale, stamp side) a Sérsic galaxy (flux 1e5, n 2, r 0.35",
g (0.12, -0.08)) is drawn through a Moffat (beta 2, FWHM 0.7") by GalSim, Gaussian noise is
added (``--realizations`` seeds; sigma set so the SNR is ``--snr``), each image is written as a
FITS file with a WCS and measured by `galaxies.cutouts.measure.measure_files`'s path (FITS read, border
background, centre, fit on the cutout's own stamp) with the PSF given as an image (the stamp's
size, unit sum) and the noise as ``--sigma``. Printed per configuration and parameter: the RMSE
over the realizations, the Cramér–Rao bound of that cutout (`galaxies.inference.crb.cutout_bound`: its
pixel scale, stamp, the true Moffat PSF, the noise; background and centre known), their ratio,
bias / CRB, and the target RMSE <= 1.15 CRB for flux, r, g1 and g2. The background is given
(0, the simulations have none) unless ``--border-background``: then measure's default, the
border's estimate subtracted and a constant sky fitted with the galaxy, and the bound is the
one with the sky a sixth parameter (``cutout_bound(..., sky=True)``), the known-sky bound
printed beside it. At 0.1"/px a stamp of 41 pixels (4.1") cuts the Moffat's (beta 2) wings,
and a PSF image of the stamp's size misses ~7% of its light: the flux is biased low there.

With ``--model DIR`` (a trained network of the quick profile), the network's RMSE on the same
cutouts resampled to the 64 x 64 stamp at 0.23" is set against its RMSE on native stamps of the
same galaxy (`galaxies.simulation.render.simulate`, sigma giving the same SNR there); target: within
1.3 x. The network is told the noise and PSF in its training's terms (`galaxies.cutouts.resampling`:
`equivalent_sigma`, `stamp_fwhm`); the values are printed. Without a model that part is skipped with a printed reason.

    python benchmarks/measure.py --realizations 200
    python benchmarks/measure.py --realizations 40 --configs 0.1:41 0.3:75

CPU times depend on the machine and on what else runs on it: the figures are this run's.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import galsim
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from galaxies import conventions
from galaxies.cutouts import measure
from galaxies.cutouts.fits_files import read_cutouts
from galaxies.inference import crb
from galaxies.simulation import render

TRUTH = np.array([1e5, 2.0, 0.35, 0.12, -0.08])
FWHM = 0.7
COLUMNS = ("flux", "sersic_n", "sersic_r", "g1", "g2")
TARGET = {"flux": 1.15, "sersic_r": 1.15, "g1": 1.15, "g2": 1.15}
#: the sky level given to measure (the simulations have none); None: estimated from the border
BACKGROUND = [0.0]


def clean_image(scale: float, size: int) -> np.ndarray:
    galaxy = galsim.Sersic(TRUTH[1], half_light_radius=TRUTH[2], flux=TRUTH[0]).shear(
        g1=TRUTH[3], g2=TRUTH[4])
    return galsim.Convolve(galaxy, galsim.Moffat(beta=2.0, fwhm=FWHM)).drawImage(
        nx=size, ny=size, scale=scale).array.astype(np.float64)


def write_fits(path: Path, image: np.ndarray, scale: float) -> Path:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-scale / 3600, scale / 3600]
    wcs.wcs.crval = [3.59, -30.4]
    wcs.wcs.crpix = [(image.shape[1] + 1) / 2, (image.shape[0] + 1) / 2]
    fits.PrimaryHDU(image.astype(np.float32), wcs.to_header()).writeto(path, overwrite=True)
    return path


def run_config(scale: float, size: int, snr: float, realizations: int, work: Path, network=None,
               fit: bool = True):
    clean = clean_image(scale, size)
    sigma = float(np.sqrt(np.sum(clean**2)) / snr)
    psf = galsim.Moffat(beta=2.0, fwhm=FWHM)
    psf_image = psf.drawImage(nx=size, ny=size, scale=scale).array
    psf_image = psf_image / psf_image.sum()
    stamp = render.Stamp(scale, (size, size), psf)
    known_sky = crb.cutout_bound(TRUTH, stamp, sigma, gain=None)
    sky_unknown = BACKGROUND[0] is None
    bound = crb.cutout_bound(TRUTH, stamp, sigma, gain=None, sky=True)[:5] if sky_unknown \
        else known_sky
    estimates, nn, converged, seconds = [], [], 0, []
    for seed in range(1, realizations + 1):
        noisy = clean + np.random.default_rng(seed).normal(0.0, sigma, clean.shape)
        (cutout,) = read_cutouts(write_fits(work / f"cutout_{scale}_{size}.fits", noisy, scale))
        if fit:
            t0 = time.process_time()
            m = measure.measure_cutout(cutout, "fit", psf_image=psf_image, sigma=sigma,
                                       background=BACKGROUND[0])
            seconds.append(time.process_time() - t0)
            estimates.append(m.params)
            converged += m.converged
        if network is not None:
            told = measure.measure_cutout(cutout, "nn", psf_image=psf_image, sigma=sigma,
                                          network=network, background=BACKGROUND[0])
            nn.append(told.params)
    ok = True
    if not fit:
        print(f"\n{scale}\"/px, {size} x {size} px, sigma {sigma:.4g}, SNR {snr:g}: {realizations} "
              f"realizations, the network only")
        return network_part(np.array(nn), snr, network, realizations, told)
    estimates = np.array(estimates)
    rmse = np.sqrt(np.mean((estimates - TRUTH) ** 2, axis=0))
    bias = estimates.mean(axis=0) - TRUTH
    print(f"\n{scale}\"/px, {size} x {size} px, sigma {sigma:.4g}, SNR {snr:g}: {realizations} "
          f"realizations, {converged} converged, {np.median(seconds):.2f} s CPU per cutout "
          f"(median)")
    if sky_unknown:
        print("  CRB: the bound with the sky a sixth parameter; in brackets the bound with the sky "
              "known and RMSE over it")
    print(f"  {'parameter':<9} {'RMSE':>10} {'CRB':>10} {'RMSE/CRB':>9} {'bias/CRB':>9}  target")
    for k, name in enumerate(COLUMNS):
        ratio = rmse[k] / bound[k]
        target = TARGET.get(name)
        verdict = "" if target is None else (f"<= {target}: " + ("met" if ratio <= target else "MISSED"))
        ok &= target is None or ratio <= target
        print(f"  {name:<9} {rmse[k]:>10.4g} {bound[k]:>10.4g} {ratio:>9.3f} "
              f"{bias[k] / bound[k]:>9.3f}  {verdict}"
              + (f"   ({known_sky[k]:.4g}: {rmse[k] / known_sky[k]:.3f})" if sky_unknown else ""))
    if network is not None:
        ok &= network_part(np.array(nn), snr, network, realizations, told)
    return ok


def network_part(nn: np.ndarray, snr: float, network, realizations: int, told) -> bool:
    """The network on the resampled cutouts against the network on native stamps."""
    print(f"  network given sigma {told.sigma_stamp:.4g} (white noise of the cutout's "
          f"information; the resampled pixels' own: {told.pixel_sigma_stamp:.4g}) and PSF "
          f"FWHM {told.psf_fwhm_stamp:.4f}\" (the Moffat matching the resampled PSF; true {FWHM})")
    renderer = render.GalaxyRenderer()
    clean = renderer.draw(*TRUTH, FWHM)
    sigma = float(np.sqrt(np.sum(clean.astype(np.float64) ** 2)) / snr)
    images = np.stack([render.add_noise(clean, sigma, seed) for seed in range(1, realizations + 1)])
    psf_img = np.broadcast_to(renderer.draw_psf(FWHM), images.shape)
    native, _ = network.predict(images, np.full(len(images), FWHM), np.full(len(images), sigma), psf_img)
    ok = True
    for k, name in enumerate(COLUMNS):
        a = np.sqrt(np.mean((nn[:, k] - TRUTH[k]) ** 2))
        b = np.sqrt(np.mean((np.asarray(native)[:, k] - TRUTH[k]) ** 2))
        ok &= a <= 1.3 * b
        print(f"  network {name:<9} RMSE resampled {a:.4g}, native {b:.4g}, ratio {a / b:.3f} "
              f"(target <= 1.3)")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--realizations", type=int, default=200)
    parser.add_argument("--snr", type=float, default=50.0)
    parser.add_argument("--configs", nargs="+", default=["0.1:101", "0.1:151", "0.3:41", "0.3:75"],
                        help="SCALE:SIZE pairs (arcsec per pixel : pixels a side)")
    parser.add_argument("--model", default=None, help="a trained network's directory")
    parser.add_argument("--network-only", action="store_true",
                        help="with --model: skip the fit (the network part alone, faster)")
    parser.add_argument("--border-background", action="store_true",
                        help="measure's default: the border's background, a sky fitted with "
                        "the galaxy (default here: the background given, 0)")
    args = parser.parse_args(argv)
    BACKGROUND[0] = None if args.border_background else 0.0
    print(f"background: {'the border, then a sky fitted' if args.border_background else 'given (0)'}; "
          f"noise: given; PSF: an image of the stamp's size; Gaussian noise only (no gain)")
    network = None
    if args.model is None:
        print("network part skipped: no --model DIR given (no trained quick model here)")
    else:
        from galaxies.evaluation import estimators
        network = estimators.load(args.model)
    ok = True
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        for config in args.configs:
            scale, size = config.split(":")
            ok &= run_config(float(scale), int(size), args.snr, args.realizations, Path(work),
                             network, fit=not (args.network_only and network is not None))
    print(f"\n{'all targets met' if ok else 'some targets MISSED'} "
          f"({time.perf_counter() - wall:.0f} s wall)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
