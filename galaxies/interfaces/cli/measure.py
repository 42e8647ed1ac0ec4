"""``galaxies measure``: the command over `galaxies.cutouts.measure` (registered by `galaxies.interfaces.cli`).

Bad input (no pixel scale, a PSF larger than a cutout or off its centre, an RMS map of another
shape, NaN pixels, an empty HDU, a number that is not finite, a PSF FWHM or pixel scale out of
range, a header value that is not a number, an existing output without --force) ends with one
line and status 2, as every user error of the command line does (`galaxies.cutouts.measure_inputs`).
"""
from __future__ import annotations

import click

from .options import COUNT, PROFILE_OPTION, RENDERER, SCHEDULER, Command


@click.command("measure", cls=Command, renamed={"--out": "the last argument, OUTPUT"})
@click.argument("files", nargs=-1, metavar="FILES...", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--method", type=click.Choice(["fit", "nn", "refined"]), default="fit",
              show_default=True, help="Maximum-likelihood fit, a network, or the network refined.")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="The network's model directory (for nn and refined) [default: the "
                   "--profile's recommended network].")
@PROFILE_OPTION
@click.option("--hdu", default=None, help="HDU of the images (number or EXTNAME) [default: "
              "the first holding an image].")
@click.option("--pixel-scale", type=float, default=None, help="Arcsec per pixel [default: the WCS].")
@click.option("--psf", type=click.Path(dir_okay=False), default=None,
              help="PSF image (FITS, at the cutouts' pixel scale); normalized to unit sum.")
@click.option("--psf-fwhm", type=float, default=None, help="Or: a Moffat (beta 2) PSF, FWHM in arcsec.")
@click.option("--psf-fwhm-key", default=None, help="Or: the header keyword holding the FWHM (arcsec).")
@click.option("--rms", type=click.Path(dir_okay=False), multiple=True,
              help="RMS map (FITS, the cutouts' shape): one for all FILEs, or one per FILE in "
              "order (repeat) [default: estimated from the border].")
@click.option("--sigma", type=float, default=None, help="Or: one noise sigma, in the cutout's counts.")
@click.option("--gain", type=float, default=None,
              help="Counts to photo-electrons: adds the galaxy's Poisson variance [default: none].")
@click.option("--background", type=float, default=None,
              help="Sky level to subtract, counts, taken as exact [default: the border's, then a "
              "constant sky fitted with the galaxy].")
@click.option("--steps", type=COUNT, default=2, show_default=True, help="Refinement steps.")
@SCHEDULER
@RENDERER
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def measure_command(files, output, method, model_dir, profile, hdu, pixel_scale, psf, psf_fwhm,
            psf_fwhm_key, rms, sigma, gain, background, steps, scheduler, renderer, force):
    """Measure flux, Sérsic n, r, g1 and g2 of the galaxy in each FITS cutout FILE (one image
    or a cube of stamps a file); one row per stamp, with flags for what lies outside the
    training domain, written to the table OUTPUT (CSV, or a FITS table when it ends in .fits).
    With --scheduler, the fits (--method fit) run on the Dask cluster."""
    from galaxies.cutouts import measure
    from galaxies.cutouts.measure_inputs import finite_option
    from galaxies.runtime.errors import InputError
    from galaxies.runtime.parallel import engine
    if not files:
        raise InputError(f"one path given ({output}): name the cutouts FILES... and then the "
                         f"table to write, OUTPUT")
    sigma, gain, psf_fwhm = (finite_option(name, value) for name, value in (
        ("--sigma", sigma), ("--gain", gain), ("--psf-fwhm", psf_fwhm)))
    background = finite_option("--background", background, positive=False)
    load_network = None
    if method != "fit":
        from pathlib import Path
        if model_dir is None:
            from .networks import recommended_model
            model_dir = recommended_model(profile, instead=f"give --method {method} a trained "
                                                           f"network with --model DIR")
        elif not Path(model_dir).is_dir():
            raise InputError(f"--model {model_dir}: no such directory")

        def load_network():  # after every input is checked: TensorFlow takes seconds to import
            from galaxies.evaluation import estimators
            return estimators.load(model_dir)
    with engine(scheduler):
        results = measure.measure_files(
            list(files), output, method=method, hdu=hdu, pixel_scale=pixel_scale, psf=psf,
            psf_fwhm=psf_fwhm, psf_fwhm_key=psf_fwhm_key, rms=list(rms) or None, sigma=sigma,
            gain=gain, load_network=load_network, force=force, steps=steps,
            background=background, log=click.echo, renderer=renderer)
    flagged = sum(bool(r.flags) for r in results)
    click.echo(f"wrote {output}: {len(results)} cutout(s), {flagged} flagged outside the training "
               f"domain or not converged")
