"""GalSim's own shear estimators, the conventional peer of every shear estimate here.

`galsim.hsm.EstimateShear` measures a galaxy's PSF-corrected shape from adaptive moments of the
image and of the PSF image, the standard of weak-lensing pipelines:

* ``KSB`` (Kaiser, Squires & Broadhurst 1995) returns a shear estimate ``g`` directly;
* ``REGAUSS`` (Hirata & Seljak 2003) returns the distortion ``e = (a^2 - b^2) / (a^2 + b^2)`` of
  the PSF-corrected galaxy, turned here into the shear of the same ellipse,
  ``g = e / (1 + sqrt(1 - |e|^2))``: our galaxies are round before the shear, so that is the
  shear itself when the method is exact.

They measure the shear only: flux, n and r are NaN in their predictions files, so every table
shows them for g1 and g2 alone. Neither is calibrated (no multiplicative correction ``m`` is
applied): their bias on a Sérsic galaxy convolved with a Moffat PSF is part of what they are.
A galaxy on which HSM fails (too faint, moments that do not converge) gets a NaN row,
``converged`` False and its message, counted in the file's ``failed`` attribute, never a
silent zero.

The PSF image is the data set's Moffat (beta = 2) of the row's FWHM drawn on the same 64 x 64,
0.23" grid; ``sky_var`` is the read-noise variance. Time is CPU seconds per image on one core.
"""
from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from galaxies.conventions import PIXEL_SCALE
from galaxies.runtime.errors import InputError
from galaxies.simulation.render import default_renderer

__all__ = ["METHODS", "measure_shear", "measure_rows", "hsm_dataset"]

#: The methods offered, as `galsim.hsm.EstimateShear` names them.
METHODS = ("KSB", "REGAUSS")


def distortion_to_shear(e1: float, e2: float) -> tuple[float, float]:
    """The shear ``(g1, g2)`` of the ellipse of distortion ``(e1, e2)`` (|e| < 1)."""
    e = np.hypot(e1, e2)
    factor = 1.0 / (1.0 + np.sqrt(max(1.0 - e * e, 0.0)))
    return float(e1 * factor), float(e2 * factor)


@lru_cache(maxsize=16)
def _psf_image(psf_fwhm: float):
    """The PSF image of a FWHM, drawn once per process."""
    import galsim
    return galsim.Image(default_renderer().draw_psf(psf_fwhm), scale=PIXEL_SCALE)


def measure_shear(image, psf_fwhm: float, sigma: float, method: str = "KSB") -> tuple[float, float]:
    """``(g1, g2)`` of one image by `galsim.hsm.EstimateShear` with ``method`` (`METHODS`).

    Raises `galsim.errors.GalSimHSMError` when HSM fails on the image, `InputError` for an
    unknown method.
    """
    import galsim

    if method not in METHODS:
        raise InputError(f"method = {method!r}; choose from {', '.join(METHODS)}")
    gal = galsim.Image(np.asarray(image, dtype=np.float64), scale=PIXEL_SCALE)
    shape = galsim.hsm.EstimateShear(gal, _psf_image(float(psf_fwhm)), sky_var=float(sigma) ** 2,
                                     shear_est=method)
    if shape.meas_type == "g":
        return float(shape.corrected_g1), float(shape.corrected_g2)
    return distortion_to_shear(shape.corrected_e1, shape.corrected_e2)


def measure_rows(images, psf_fwhm, sigma, method: str) -> list[tuple]:
    """(g1, g2, seconds, message) per image; a failure is a NaN row with its message."""
    import galsim

    out = []
    for image, psf, noise in zip(images, psf_fwhm, sigma):
        t0 = time.process_time()
        try:
            g1, g2 = measure_shear(image, psf, noise, method)
            message = ""
        except (galsim.GalSimError, RuntimeError, ValueError) as err:
            g1 = g2 = np.nan
            message = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
        out.append((g1, g2, time.process_time() - t0, message))
    return out


def hsm_dataset(data_path, out_path, method: str = "KSB", limit: int | None = None,
                jobs: int | None = 1, progress: bool = True, force: bool = False) -> Path:
    """Measure the shear of every image of a data set (or the first ``limit``) with HSM and
    write a predictions file (estimator ``hsm-<method>``; flux, n and r NaN; per row
    ``converged`` (HSM succeeded), ``seconds`` and ``message``).

    ``jobs`` defaults to 1: HSM is cheap next to starting a worker process, so workers pay
    only for sets of tens of thousands of images (None: all cores)."""
    from galaxies.runtime.parallel import map_rows
    from galaxies.runtime.resources import resolve_jobs
    from galaxies.storage import files
    from galaxies.storage.atomic import check_destination
    from galaxies.storage.chunked import DatasetReader, RowSource

    if method not in METHODS:
        raise InputError(f"method = {method!r}; choose from {', '.join(METHODS)}")
    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 1):
        raise InputError(f"limit = {limit} must be a positive integer")
    check_destination(out_path, data_path, force=force)
    # the images are read block by block as the measurements go (the contract checks their shape)
    ds = DatasetReader(data_path, fields=("img",), rows=None if limit is None else int(limit))
    wall = time.perf_counter()
    results, jobs = map_rows(measure_rows, RowSource(ds, "img", ds.table.psf_fwhm, ds.table.sigma),
                             resolve_jobs(jobs), method, desc=f"hsm {method} {ds.name}",
                             progress=progress)
    wall = time.perf_counter() - wall
    pred = np.full((len(results), 5), np.nan)
    pred[:, 3] = [r[0] for r in results]
    pred[:, 4] = [r[1] for r in results]
    seconds = np.array([r[2] for r in results])
    messages = [r[3] for r in results]
    ok = np.array([not m for m in messages])
    attrs = {"method": f"galsim.hsm.EstimateShear(shear_est={method!r}), uncalibrated; "
                       "shear only (flux, sersic_n, sersic_r are NaN)",
             "jobs": jobs, "wall_seconds": wall, "failed": int((~ok).sum()),
             "converged_fraction": float(ok.mean()),
             "limit": -1 if limit is None else int(limit)}
    extra = {"converged": ok, "seconds": seconds,
             "message": np.array([m.encode("ascii", "replace") for m in messages])}
    return files.write_predictions(out_path, pred, ds.rows, estimator=f"hsm-{method.lower()}",
                                   dataset=ds.name, seconds_per_image=float(seconds.mean()),
                                   extra=extra, attrs=attrs, force=force)
