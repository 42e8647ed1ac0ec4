"""Measuring a person's own cutouts: background, noise, centre, the estimate and its domain.

For each stamp (`galaxies.cutouts.fits_files.Cutout`, counts of the file, any pixel scale and size):

1. **Background and noise** from a border annulus (`border_stats`: 3-sigma clipped median, and
   the clipped MAD standard deviation, `astropy.stats.sigma_clipped_stats`), unless an RMS map
   or ``sigma`` is given. The background is subtracted; on a small stamp the border holds
   the galaxy's wings too, so the fit and the refinement on the JAX model then fit a constant
   sky level with the galaxy (`galaxies.inference.differentiable.sky`, as GALFIT does), and
   their standard deviations are the bound with the sky a sixth parameter
   (``background_std`` its own); on GalSim's renders, the border of the residual
   (data - model) gives a correction instead, and the fit is repeated once from its estimate
   when the correction exceeds twice its standard error. A background given is taken as exact.
2. **Sources** (`galaxies.cutouts.segmentation.segment`): the image over its noise, smoothed by a Gaussian of ``SMOOTHING``
   pixels, thresholded at ``DETECT`` times the smoothed noise and labelled
   (`scipy.ndimage.label`). The galaxy is the source under the centre (else the brightest);
   other sources peaking above ``SECOND`` times the smoothed noise are masked (grown by
   ``GROW`` pixels, zero weight) and flagged ``second_source``; so is the side of the galaxy's
   segment nearer to a second peak rising ``PROMINENCE`` levels above the saddle between them.
3. **Centre** from adaptive moments (`galsim.hsm`) of the masked image; the model is drawn at
   that offset (no resampling of the data for the fit).
4. **Estimate.** ``fit`` (default): `galaxies.inference.galsim_fit.fit_image` on the cutout's own stamp
   (`galaxies.simulation.render.Stamp`: pixel scale, shape, PSF image or Moffat, offset), its box
   widened to sizes the stamp can hold; ``nn``: a network (`galaxies.evaluation.estimators`, given by the
   caller) on the stamp resampled to the simulation's 64 x 64 at 0.23"; ``refined``:
   `galaxies.inference.refine.refine_image` from the network's estimate, on the native stamp.
   Standard deviations: the inverse Fisher matrix at the estimate on the native stamp
   (`galaxies.inference.crb.cutout_bound`; the refinement's own for ``refined``). With ``renderer="jax"``
   (the default) the fit and the refinement run on the differentiable model instead
   (`galaxies.inference.differentiable.cutouts`), where it draws GalSim's image on the stamp.
5. **Resampling** to the simulation's stamp with GalSim (`galaxies.cutouts.resampling`); the noise of
   the result, correlated and of another level, by resampling pure-noise fields (Monte Carlo:
   ``pixel_sigma_stamp``). A network is told the white noise of the same information
   (``sigma_stamp``, `galaxies.cutouts.resampling.equivalent_sigma`) and the Moffat FWHM matching the
   resampled PSF (``psf_fwhm_stamp``, `galaxies.cutouts.resampling.stamp_fwhm`): the conventions of
   its training; the flags ``snr``, ``psf`` and ``noise`` use them too.
6. **Flags** (`FLAGS`): what lies outside the training domain or went wrong.

Fluxes are in the cutout's counts; radius in arcsec; ``gain`` (counts to photo-electrons)
adds the galaxy's Poisson variance ``mu / gain`` (None: the noise is the RMS alone).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import numpy as np

from galaxies.conventions import LABEL_COLUMNS, MOFFAT_BETA, RANGES, SNR_RANGE
from galaxies.runtime import parallel
from galaxies.runtime.console import show_progress
from galaxies.runtime.errors import InputError
from galaxies.simulation.render import Stamp

from .fits_files import Cutout, sky_shear
from .measure_inputs import check_psf_fwhm
from .resampling import equivalent_sigma, psf_profile, resample, resampled_sigma, stamp_fwhm
from .segmentation import GROW, border, border_stats, centre, segment

__all__ = ["FLAGS", "METHODS", "Measurement", "measure_cutout", "fit_box", "measure_files",
           "write_table"]

METHODS = ("fit", "nn", "refined")
#: what each flag means
FLAGS = {
    "snr": f"SNR on the simulation's stamp outside [{SNR_RANGE.low:g}, {SNR_RANGE.high:g}]",
    "flux": "flux outside the simulated range", "sersic_n": "index outside the simulated range",
    "sersic_r": "half-light radius outside the simulated range",
    "shear": "|g| outside the simulated range",
    "psf": "PSF FWHM outside the simulated range", "noise": "noise (on the simulation's stamp) "
    "outside the simulated range", "off_centre": "galaxy more than 10% of the stamp off its centre",
    "edge": "the galaxy's pixels touch the stamp's edge", "second_source": "another source in the "
    "stamp (masked)", "no_source": "no source detected", "not_converged": "the fit did not converge",
}


@dataclass
class Measurement:
    """The outcome for one cutout (see the module docstring); ``data`` is the cutout less its
    background, ``model`` the estimate's image on the same pixels, ``stamp`` the resampled
    64 x 64 image, ``mask`` the pixels given zero weight."""

    cutout: Cutout
    method: str
    params: np.ndarray
    std: np.ndarray
    snr: float
    snr_stamp: float
    sigma: float
    sigma_stamp: float
    sigma_source: str
    psf_fwhm: float
    psf_fwhm_stamp: float
    pixel_sigma_stamp: float
    background: float
    offset: tuple
    converged: bool
    flags: list = field(default_factory=list)
    data: np.ndarray | None = None
    model: np.ndarray | None = None
    mask: np.ndarray | None = None
    stamp: np.ndarray | None = None
    seconds: float = 0.0
    renderer: str = "galsim"  # what drew the model of the fit or the refinement
    renderer_note: str = ""  # why GalSim drew it when the JAX model was asked for
    background_std: float = math.nan  # the sky level's bound (0: given; NaN: not fitted)

    def row(self) -> dict:
        out = {"file": self.cutout.file, "hdu": self.cutout.hdu,
               "plane": -1 if self.cutout.plane is None else self.cutout.plane,
               "method": self.method, "shear_frame": "pixel" if self.cutout.frame is None else "sky"}
        out.update(zip(LABEL_COLUMNS, map(float, self.params)))
        out.update({f"{c}_std": float(s) for c, s in zip(LABEL_COLUMNS, self.std)})
        out.update(snr=self.snr, snr_stamp=self.snr_stamp, sigma=self.sigma,
                   sigma_stamp=self.sigma_stamp, pixel_sigma_stamp=self.pixel_sigma_stamp,
                   psf_fwhm=self.psf_fwhm, psf_fwhm_stamp=self.psf_fwhm_stamp,
                   pixel_scale=self.cutout.pixel_scale, background=self.background,
                   background_std=self.background_std,
                   offset_x=float(self.offset[0]), offset_y=float(self.offset[1]),
                   converged=bool(self.converged), in_domain=not self.flags,
                   flags=";".join(self.flags), seconds=self.seconds)
        return out


def fit_box(stamp: Stamp) -> np.ndarray:
    """The fit's box of (n, r, g1, g2) on a cutout: the simulated indices and shears, radii
    from half a pixel to half the stamp's short side, or less where the largest index's model
    would need an FFT over `galaxies.cutouts.measure_inputs.MAX_FFT` (the bound on memory)."""
    from galaxies.inference.likelihood import BOUNDS

    from .measure_inputs import radii
    box = BOUNDS.copy()
    box[1] = radii(stamp.psf, stamp.pixel_scale, stamp.shape)
    return box


def _jax_result(result, data, background, sky_std):
    """A one-cutout JAX fit's estimate, convergence and standard deviations, and the data,
    background and sky standard deviation after it: less its sky level where it fitted one
    (a sixth column)."""
    params, std = result.params[0], result.std[0]
    if len(params) == 6:
        data, background, sky_std = data - params[5], background + float(params[5]), float(std[5])
    return params[:5], bool(result.converged[0]), std[:5], data, background, sky_std


def _domain(params, snr_stamp, psf_fwhm, sigma_stamp) -> list[str]:
    flags = [name for name, value in zip(LABEL_COLUMNS[:3], params[:3])
             if not value in RANGES[name]]
    if math.hypot(params[3], params[4]) > RANGES["shear"].high:
        flags.append("shear")
    if not snr_stamp in SNR_RANGE:
        flags.append("snr")
    if not psf_fwhm in RANGES["psf_fwhm"]:
        flags.append("psf")
    if not sigma_stamp in RANGES["sigma"]:
        flags.append("noise")
    return flags


def measure_cutout(cutout: Cutout, method: str = "fit", psf_image=None, psf_scale=None,
                   psf_fwhm=None, rms=None, sigma=None, gain: float | None = None,
                   network=None, steps: int = 2, background: float | None = None,
                   renderer: str = "jax") -> Measurement:
    """Measure one cutout (see the module docstring).

    Parameters:
        psf_image, psf_scale:  a PSF image of unit sum (pixel response included) and its pixel
                   scale (None: the cutout's); or ``psf_fwhm``, a Moffat (beta 2) in arcsec.
        rms, sigma:  the noise, a map of the cutout's shape or a number (counts); neither: from
                   the border.
        gain:      counts to photo-electrons for the galaxy's Poisson variance (None: none).
        network:   for ``nn`` and ``refined``: an estimator (`galaxies.evaluation.estimators`).
        background:  the sky level to subtract (counts); None: from the border, corrected
                   after the fit.
        renderer:  the model of the fit and the refinement: ``"jax"`` (the differentiable
                   model, `galaxies.inference.differentiable.cutouts`; GalSim where it cannot stand in,
                   said in ``renderer_note``) or ``"galsim"``.
    """
    import galsim
    from scipy import ndimage

    if method is not None and method not in METHODS:
        raise InputError(f"method {method!r}: choose among {', '.join(METHODS)}")
    if method in ("nn", "refined") and network is None:
        raise InputError(f"method {method!r} needs a trained network: give --model DIR")
    t0 = time.process_time()
    image, scale = cutout.image, cutout.pixel_scale
    estimated, border_sigma = border_stats(image)
    from_border = background is None
    background = estimated if from_border else float(background)
    if rms is not None:
        noise, source = np.asarray(rms, np.float64), "RMS map"
    elif sigma is not None:
        noise, source = float(sigma), "given"
    else:
        noise, source = border_sigma, "border (3-sigma clipped MAD)"
    if not np.all(np.asarray(noise) > 0):
        raise InputError(f"{cutout.name}: the noise sigma is {np.min(noise):g}; it must be > 0 "
                         f"(a constant image? give --sigma or --rms)")
    data = image - background
    labels, main, others = segment(data, noise)
    mask = np.zeros(data.shape, dtype=bool)
    if others:
        mask = ndimage.binary_dilation(np.isin(labels, others), iterations=GROW)
    if psf_image is not None:
        psf = psf_profile(psf_image, psf_scale or scale)
        pixel_included = True
        fwhm = check_psf_fwhm(galsim.Image(psf_image, scale=psf_scale or scale).calculateFWHM(),
                              scale, data.shape, f"{cutout.name}: its PSF image")
    else:
        if psf_fwhm is None or not (math.isfinite(psf_fwhm) and psf_fwhm > 0):
            raise InputError(f"{cutout.name}: no PSF: give --psf PSF.fits, --psf-fwhm ARCSEC or "
                             f"--psf-fwhm-key KEY (got {psf_fwhm})")
        fwhm, pixel_included = check_psf_fwhm(psf_fwhm, scale, data.shape, cutout.name), False
        psf = galsim.Moffat(beta=MOFFAT_BETA, fwhm=fwhm)
    offset = centre(data, mask, scale, labels, main)
    stamp = Stamp(pixel_scale=scale, shape=data.shape, psf=psf, pixel_included=pixel_included,
                  offset=offset)
    noise_map = np.where(mask, np.inf, np.broadcast_to(noise, data.shape))
    weighted = np.where(mask, 0.0, data)
    box, flux_range = fit_box(stamp), (1e-9 * (abs(float(data.sum())) + 1e-30), np.inf)
    pad = float(np.median(noise))
    resampled = resample(data, scale, offset, pad)
    pixel_sigma = resampled_sigma(data.shape, scale, noise, offset)
    sigma_stamp = equivalent_sigma(noise, scale)
    psf_cutout = psf_image if psf_image is not None else psf.drawImage(
        nx=data.shape[1], ny=data.shape[0], scale=scale).array  # with the cutout's pixel
    psf_stamp = resample(psf_cutout, psf_scale or scale, (0.0, 0.0))
    psf_stamp = psf_stamp / psf_stamp.sum()
    fwhm_stamp = stamp_fwhm(psf_stamp)
    common = dict(stamp=stamp, gain=gain, bounds=box, flux_range=flux_range)
    std, jax_model, note = None, None, ""
    if renderer == "jax" and method in ("fit", "refined"):
        from galaxies.inference.differentiable.cutouts import (cutout_model, fit_cutout,
                                                               unrepresented)
        jax_model = cutout_model(stamp)
        note = unrepresented(jax_model, stamp, box)
        jax_model = None if note else jax_model
    if method is None:  # prepared only (the app's first look): no estimate
        nan = np.full(5, np.nan)
        return Measurement(cutout, "none", nan, nan, math.nan, math.nan, float(np.median(noise)),
                           sigma_stamp, source, fwhm, fwhm_stamp, pixel_sigma, background, offset,
                           False, [f for f in _domain(nan, math.nan, fwhm_stamp, sigma_stamp)
                                   if f in ("psf", "noise")] + ["second_source"] * bool(others)
                           + ["no_source"] * (not main), data, None, mask, resampled,
                           time.process_time() - t0)
    from galaxies.inference.likelihood import SersicModel
    image_of = ((lambda p: jax_model.images(np.asarray(p)[None])[0]) if jax_model is not None
                else (lambda p: p[0] * SersicModel(None, stamp=stamp).image(*p[1:])))
    sky_std = math.nan if from_border else 0.0
    if method == "fit" and jax_model is not None:  # the sky fitted with the galaxy if not given
        r = fit_cutout(jax_model, weighted, noise_map, box, flux_range, gain, sky=from_border)
        params, converged, std, data, background, sky_std = _jax_result(r, data, background,
                                                                        sky_std)
    elif method == "fit":  # GalSim: the border's sky corrected by the fit's residual there
        from galaxies.inference.galsim_fit import fit_image
        r = fit_image(weighted, None, noise_map, **common)
        params, converged = r.params, r.converged
        ring = border(data.shape) & ~mask
        correction = float(np.median((data - image_of(params))[ring]))
        error = 1.253 * float(np.median(noise)) / math.sqrt(ring.sum())  # of a median
        if from_border and abs(correction) > 2 * error:
            data, background = data - correction, background + correction
            r = fit_image(np.where(mask, 0.0, data), None, noise_map, start=params, **common)
            params, converged = r.params, r.converged
    else:
        pred, _ = network.predict(resampled[None].astype(np.float32),
                                  psf_fwhm=np.array([fwhm_stamp]), sigma=np.array([sigma_stamp]),
                                  psf_img=psf_stamp[None].astype(np.float32))
        params, converged = np.asarray(pred, np.float64)[0], True
        if method == "refined":
            from galaxies.inference.refine import refine_image
            start = np.clip(params, [-np.inf, *box[:, 0]], [np.inf, *box[:, 1]])
            if jax_model is not None:
                r = fit_cutout(jax_model, weighted, noise_map, box, flux_range, gain, start, steps,
                               sky=from_border)
                params, converged, std, data, background, sky_std = _jax_result(
                    r, data, background, sky_std)
            else:
                result = refine_image(weighted, None, noise_map, start, steps=steps, **common)
                params, converged, std = result.params, result.converged, result.std
    from galaxies.inference.crb import cutout_bound
    # a network's estimate may lie outside the box
    model = image_of(np.concatenate([params[:1], np.clip(params[1:], box[:, 0], box[:, 1])]))
    if std is None:  # with the sky a parameter unless it was given
        try:
            std = cutout_bound(params, stamp, noise_map, gain=gain, sky=from_border)
            std, sky_std = std[:5], float(std[5]) if from_border else sky_std
        except (np.linalg.LinAlgError, ValueError, RuntimeError):
            std = np.full(5, np.nan)
    snr = float(np.sqrt(np.sum(np.where(mask, 0.0, (model / np.broadcast_to(noise, data.shape))**2))))
    model_stamp = resample(model, scale, offset)
    snr_stamp = float(np.sqrt(np.sum(model_stamp**2)) / sigma_stamp)
    flags = _domain(params, snr_stamp, fwhm_stamp, sigma_stamp)
    if math.hypot(*offset) > 0.1 * min(data.shape):
        flags.append("off_centre")
    if main and (labels[[0, -1], :] == main).any() | (labels[:, [0, -1]] == main).any():
        flags.append("edge")
    flags += ["second_source"] * bool(others) + ["no_source"] * (not main)
    flags += ["not_converged"] * (not converged)
    params, std = sky_shear(params, std, cutout.frame)  # the pixel grid's g1, g2 on the sky
    return Measurement(cutout=cutout, method=method, params=params, std=std, snr=snr, snr_stamp=snr_stamp,
                       sigma=float(np.median(noise)), sigma_stamp=sigma_stamp,
                       sigma_source=source, psf_fwhm=fwhm, psf_fwhm_stamp=fwhm_stamp,
                       pixel_sigma_stamp=pixel_sigma, background=background,
                       background_std=sky_std, offset=offset, converged=bool(converged),
                       flags=flags, data=data, model=model, mask=mask,
                       stamp=resampled, seconds=time.process_time() - t0,
                       renderer="jax" if jax_model is not None else "galsim", renderer_note=note)


def write_table(rows: list[dict], out, force: bool = False):
    """Rows as a CSV table, or a FITS table when ``out`` ends in ``.fits`` (atomically; an
    existing file is replaced only with ``force``)."""
    from astropy.table import Table

    from galaxies.storage.atomic import atomic_path
    table = Table(rows=rows) if rows else Table()
    fmt = "fits" if str(out).lower().endswith((".fits", ".fits.gz")) else "ascii.csv"
    with atomic_path(out, force=force) as tmp:
        table.write(tmp, format=fmt)
    return table


def measure_files(paths, out, method: str = "fit", hdu=None, pixel_scale=None, psf=None,
                  psf_hdu=None, psf_fwhm=None, psf_fwhm_key=None, rms=None, sigma=None,
                  gain=None, network=None, force: bool = False, progress: bool = True,
                  steps: int = 2, background=None, log=print, load_network=None,
                  renderer: str = "jax") -> list[Measurement]:
    """Measure every stamp of FITS files ``paths`` and write one row each to table ``out``
    (see `measure_cutout` and `write_table`); ``psf`` and ``rms`` are FITS files (``rms`` one
    for all, or a list of one per path), the PSF is refused when larger than a cutout and an
    RMS map when not of its shape. Every input is
    read and checked before the first measurement, and before ``load_network()`` (a network's
    loader, called only then: TensorFlow takes seconds to import) when no ``network`` is given;
    ``log`` gets each noise estimate."""
    from tqdm.auto import tqdm

    from galaxies.runtime.resources import check_memory
    from galaxies.storage.atomic import check_destination

    from .fits_files import read_cutouts, read_map, read_psf
    from .measure_inputs import check_cutout

    if not paths:
        raise InputError("no FITS cutout given: name one or more files")
    rms = [] if rms is None else [rms] if isinstance(rms, (str, bytes)) or hasattr(rms, "__fspath__") \
        else list(rms)
    if len(rms) not in (0, 1, len(paths)):
        raise InputError(f"{len(rms)} RMS maps for {len(paths)} file(s): give one for all, or one "
                         f"per file in the same order")
    check_destination(out, *paths, *rms, *([psf] if psf else []), force=force)
    if method not in METHODS:
        raise InputError(f"--method {method!r}: choose among {', '.join(METHODS)}")
    if method != "fit" and network is None and load_network is None:
        raise InputError(f"--method {method} needs a trained network: give --model DIR")
    if sum(x is not None for x in (psf, psf_fwhm, psf_fwhm_key)) != 1:
        raise InputError("give exactly one of --psf PSF.fits, --psf-fwhm ARCSEC, --psf-fwhm-key KEY")
    if rms and sigma is not None:
        raise InputError("give --rms or --sigma, not both")
    psf_image, psf_scale = read_psf(psf, psf_hdu) if psf else (None, None)
    cutouts = [(c, rms[min(k, len(rms) - 1)] if rms else None) for k, path in enumerate(paths)
               for c in read_cutouts(path, hdu, pixel_scale)]
    jobs, work = [], 0
    for cutout, rms_path in cutouts:
        fwhm, needed = check_cutout(cutout, psf, psf_image, psf_scale, psf_fwhm, psf_fwhm_key)
        noise = read_map(rms_path, cutout.image.shape) if rms_path else None
        jobs.append((cutout, fwhm, noise))
        work = max(work, needed)
    check_memory(work, "measuring the largest cutout (its stamp's arrays and its model's FFT)",
                 "cut smaller stamps")
    if method != "fit" and network is None:
        network = load_network()
    results = []
    with contextlib.ExitStack() as stack:
        args = [(cutout, method, psf_image, psf_scale, fwhm, noise, sigma, gain, network, steps,
                 background, renderer) for cutout, fwhm, noise in jobs]
        if network is None and parallel.remote() is not None:  # fits go to the Dask cluster
            pool = stack.enter_context(parallel.process_pool(len(jobs)))
            measured = pool.map(measure_cutout, *zip(*args))
        else:  # a network predicts here, where it is loaded
            measured = (measure_cutout(*a) for a in args)
        for (cutout, _, _), result in tqdm(zip(jobs, measured), total=len(jobs), desc="measure",
                                           disable=not show_progress(progress) or len(jobs) < 2):
            if result.sigma_source.startswith("border"):
                log(f"{cutout.name}: noise sigma {result.sigma:.4g} estimated from the border "
                    f"(3-sigma clipped MAD); on the simulation's stamp, white noise of "
                    f"{result.sigma_stamp:.4g} carries the same information")
            if result.renderer_note:
                log(f"{cutout.name}: measured with GalSim's model: {result.renderer_note}")
            results.append(result)
    write_table([r.row() for r in results], out, force=force)
    return results
