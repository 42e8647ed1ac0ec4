"""Numbers behind the exploratory data analysis (``EDA/EDA.ipynb``) and the app's Bounds page.

* `dataset_summary`: one row per data set (size, PSF, noise, SNR, labels).
* `snr_grid` and `flux_window`: how the SNR depends on radius and Sérsic index at fixed flux,
  and so which fluxes the SNR cut [10, 100] keeps.
* `sersic_series`, `image_derivatives`, `sensitivity` and `derivative_correlation`: how much an
  image changes when one parameter moves, measured in units of the pixel noise, and how much
  of that change another parameter could mimic. Together they explain why the Sérsic index is
  the hardest parameter to measure.

Images are drawn with `galaxies.simulation.render.GalaxyRenderer` (no noise); noise enters through the
per-pixel variance ``sigma**2 + clean`` (read noise plus Poisson noise of the galaxy).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from galaxies.conventions import LABEL_COLUMNS, LABEL_WIDTHS, SNR_RANGE, snr

from .render import GalaxyRenderer, default_renderer

__all__ = ["dataset_summary", "snr_grid", "flux_window", "sersic_series", "image_derivatives",
           "sensitivity", "derivative_correlation"]

#: Finite-difference half steps of the labels (flux: relative).
_STEPS = {"flux": 1e-3, "sersic_n": 0.02, "sersic_r": 0.002, "g1": 0.002, "g2": 0.002}


def _span(values: np.ndarray) -> str:
    low, high = float(np.min(values)), float(np.max(values))
    return f"{low:.3g}" if np.isclose(low, high) else f"{low:.3g} – {high:.3g}"


def dataset_summary(datasets: Mapping[str, object]) -> pd.DataFrame:
    """One row per data set (name -> `galaxies.storage.files.Dataset`): size, kind, PSF FWHM and sigma
    (value or range), SNR percentiles, distinct Sérsic indices, and median flux and radius."""
    rows = {}
    for name, ds in datasets.items():
        snr_values = np.asarray(ds.snr, dtype=float)
        rows[name] = {
            "galaxies": len(ds),
            "kind": ds.recipe.get("kind", "?"),
            "psf_fwhm [arcsec]": _span(ds.psf_fwhm),
            "sigma [e-]": _span(ds.sigma),
            "SNR 5%": np.percentile(snr_values, 5),
            "SNR median": np.median(snr_values),
            "SNR 95%": np.percentile(snr_values, 95),
            "distinct n": len(np.unique(ds.label[:, 1])),
            "median flux [e-]": float(np.median(ds.label[:, 0])),
            "median r [arcsec]": float(np.median(ds.label[:, 2])),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "set"
    return table


def snr_grid(sersic_ns, radii, flux: float = 1e5, psf_fwhm: float = 0.5, sigma: float = 200.0,
             g1: float = 0.0, g2: float = 0.0,
             renderer: GalaxyRenderer | None = None) -> pd.DataFrame:
    """SNR of a galaxy of ``flux`` for each radius (rows, arcsec) and Sérsic index (columns).

    The SNR is proportional to ``flux / sigma`` exactly (the noiseless image scales with the
    flux), so this one grid gives the SNR at any flux and noise.
    """
    renderer = renderer or default_renderer()
    table = pd.DataFrame(index=pd.Index(np.asarray(radii, dtype=float), name="sersic_r"))
    for n in sersic_ns:
        table[float(n)] = [float(snr(renderer.draw(flux, n, r, g1, g2, psf_fwhm), sigma))
                           for r in table.index]
    table.columns.name = "sersic_n"
    table.attrs.update(flux=flux, sigma=sigma, psf_fwhm=psf_fwhm)
    return table


def flux_window(grid: pd.DataFrame, sigma: float | None = None) -> dict[str, pd.DataFrame]:
    """Fluxes at which the SNR of each grid cell equals the cut's ends (10 and 100), for noise
    ``sigma`` (default the grid's): ``{"low": ..., "high": ...}`` shaped like ``grid``. A
    galaxy is kept when its flux lies between the two."""
    sigma = grid.attrs["sigma"] if sigma is None else sigma
    per_unit = grid / grid.attrs["flux"] * grid.attrs["sigma"] / sigma  # SNR per photo-electron
    return {"low": SNR_RANGE.low / per_unit, "high": SNR_RANGE.high / per_unit}


def sersic_series(sersic_ns, flux: float = 1e5, sersic_r: float = 0.3, g1: float = 0.0,
                  g2: float = 0.0, psf_fwhm: float = 0.5,
                  renderer: GalaxyRenderer | None = None) -> np.ndarray:
    """Noiseless images (len(ns), 64, 64) of one galaxy drawn with each Sérsic index."""
    renderer = renderer or default_renderer()
    return np.stack([renderer.draw(flux, n, sersic_r, g1, g2, psf_fwhm) for n in sersic_ns])


def image_derivatives(labels, psf_fwhm: float = 0.5,
                      renderer: GalaxyRenderer | None = None) -> np.ndarray:
    """Derivatives of the noiseless image with respect to the five labels, (5, 64, 64), in
    photo-electrons per label unit, by central differences."""
    renderer = renderer or default_renderer()
    labels = np.asarray(labels, dtype=float)
    out = np.empty((len(LABEL_COLUMNS),) + renderer.draw(*labels, psf_fwhm).shape)
    for j, column in enumerate(LABEL_COLUMNS):
        h = _STEPS[column] * (labels[j] if column == "flux" else 1.0)
        up, down = labels.copy(), labels.copy()
        up[j] += h
        down[j] -= h
        out[j] = (renderer.draw(*up, psf_fwhm).astype(np.float64)
                  - renderer.draw(*down, psf_fwhm)) / (2 * h)
    return out


def _weighted(labels, psf_fwhm, sigma, renderer):
    renderer = renderer or default_renderer()
    clean = renderer.draw(*np.asarray(labels, dtype=float), psf_fwhm).astype(np.float64)
    weight = 1.0 / np.sqrt(sigma**2 + np.clip(clean, 0, None))
    derivatives = image_derivatives(labels, psf_fwhm, renderer)
    return (derivatives * weight).reshape(len(LABEL_COLUMNS), -1)


def sensitivity(labels, psf_fwhm: float = 0.5, sigma: float = 200.0, fraction: float = 0.1,
                renderer: GalaxyRenderer | None = None) -> pd.DataFrame:
    """How visible a change of each label is, against the noise.

    For each label, a step of ``fraction`` of its simulated range, and:

    * ``change / noise``: the size of the image change that step causes, in units of the
      pixel noise, ``sqrt(sum(dI**2 / var))`` with ``var = sigma**2 + clean``. Below about 1
      the change is lost in the noise of a single image.
    * ``unique share``: the part of that change no combination of the other four labels can
      mimic, ``sqrt(1 - R**2)`` of a noise-weighted regression of this label's image
      derivative on the others'. A share of 0.1 means a fit can trade this label against the
      others, so its uncertainty grows tenfold.
    * ``distinct change / noise``: their product, what is left to measure the label by.
    """
    labels = np.asarray(labels, dtype=float)
    d = _weighted(labels, psf_fwhm, sigma, renderer)
    fisher = d @ d.T
    covariance = np.linalg.inv(fisher)
    step = np.array([fraction * LABEL_WIDTHS[c] for c in LABEL_COLUMNS])
    change = step * np.sqrt(np.diag(fisher))
    unique = 1.0 / np.sqrt(np.diag(fisher) * np.diag(covariance))
    return pd.DataFrame({"value": labels, "step": step, "change / noise": change,
                         "unique share": unique, "distinct change / noise": change * unique},
                        index=pd.Index(LABEL_COLUMNS, name="parameter"))


def derivative_correlation(labels, psf_fwhm: float = 0.5, sigma: float = 200.0,
                           renderer: GalaxyRenderer | None = None) -> pd.DataFrame:
    """Noise-weighted correlation (cosine) between the image derivatives of the labels: near
    ±1, two labels change the image in nearly the same way and are hard to tell apart."""
    d = _weighted(labels, psf_fwhm, sigma, renderer)
    norm = np.linalg.norm(d, axis=1)
    return pd.DataFrame((d @ d.T) / np.outer(norm, norm), index=list(LABEL_COLUMNS),
                        columns=list(LABEL_COLUMNS))
