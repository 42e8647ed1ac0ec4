"""Every cheap estimator on the `cosmos` set, and the ring test's table of what it gets wrong.

`estimate` runs, on the rows of a `cosmos` file (`galaxies.simulation.cosmos`), the estimators that cost
little on a CPU: the JAX Levenberg–Marquardt fit (``lm-jax``), the two-step JAX refinement of
a network (``<network>+newton2-jax``), GalSim's HSM shear (``hsm-KSB``, ``hsm-REGAUSS``) and
the profile's trained networks. The remedies for a wrong model, each its own estimator: the
Sérsic fit in a wider box (`WIDE`: the bulge plus disc fit's radii, to 3", where the training
box stops at 0.6"), a
second model, the bulge plus disc fit (`BULGE_DISC`,
`galaxies.inference.differentiable.bulge_disc`: its total flux, composite half-light radius and
common shear; no index) from the wide fit, and the fit that chooses between those two per
galaxy (`CHOSEN`) by the Bayesian information criterion: the bulge plus disc where it lowers
the NLL by more than half the log of the pixel count (one parameter more). `report_table` turns their estimates into the ring-test table
(`galaxies.evaluation.ring_test.table`): flux and half-light-radius bias and scatter, shear m and c with
standard errors, per galaxy kind and inside / outside the training box, as a DataFrame.

`domain_flag` is the fit's own warning that its model is wrong: the reduced chi-square of the
fit's residuals against the image's noise (Poisson plus read noise at the fitted model), which
a single Sérsic leaves near 1 and a galaxy it cannot describe raises. `flag_performance` says
how many of an estimator's large errors it catches and how many good estimates it flags.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from galaxies.simulation import cosmos
from galaxies.runtime import profiles
from galaxies.runtime.errors import InputError
from galaxies.storage import files

from .ring_test import table

__all__ = ["FIT", "WIDE", "BULGE_DISC", "CHOSEN", "FITS", "HSM", "estimate", "choose_model",
           "chosen_shares",
           "report_table", "reduced_chi2", "domain_flag", "flag_tables", "large_errors",
           "flag_performance", "CHI2_SIGMAS", "sersic_bounds", "against_bounds"]

FIT = "lm-jax"
WIDE = "lm-jax-wide"
BULGE_DISC = "lm-jax-bulge+disc"
CHOSEN = "lm-jax-chosen"
#: estimators that are fits, not networks
FITS = (FIT, WIDE, BULGE_DISC, CHOSEN)
HSM = ("hsm-KSB", "hsm-REGAUSS")
#: the flag's threshold: chi-square per degree of freedom this many of its standard deviations
#: (sqrt(2 / dof)) above 1
CHI2_SIGMAS = 5.0
#: the JAX fit's batch (its Jacobians take about 0.7 MB an image)
BATCH = 200


def _batches(*arrays) -> list[tuple]:
    """The rows of ``arrays`` (of one length) in consecutive slices of `BATCH` rows."""
    return [tuple(a[i:i + BATCH] for a in arrays) for i in range(0, len(arrays[0]), BATCH)]


def _fit_batch(images, psf_fwhm, sigma, bulge_disc: bool) -> dict:
    """One batch's fits by name: the Sérsic fit (`FIT`) and, with ``bulge_disc``, the Sérsic
    fit in the wide box (`WIDE`), each a `FitResults`, and the bulge plus disc fit from the
    wide one (`BULGE_DISC`) as ``(params, nll, CPU seconds)``."""
    from galaxies.inference.differentiable import bulge_disc as model
    from galaxies.inference.differentiable.fit import BOX, fit
    out = {FIT: fit(images, psf_fwhm, sigma, box=BOX)}
    if bulge_disc:
        wide_box = BOX.copy()
        wide_box[2] = model.RADII
        out[WIDE] = fit(images, psf_fwhm, sigma, box=wide_box)
        clock = time.process_time()
        params, nll = model.fit_bulge_disc(images, psf_fwhm, sigma, out[WIDE].params)[:2]
        out[BULGE_DISC] = (params, nll, time.process_time() - clock)
    return out


def _fits(ds, bulge_disc: bool, jobs: int | None = None) -> list[dict]:
    """`_fit_batch` on every batch of `BATCH` rows of ``ds``, in order: in ``jobs`` worker
    processes (default one per core; a single batch runs here), each single-threaded: one
    process's XLA code leaves part of the cores idle, one worker per core does not."""
    from galaxies.runtime.parallel import process_pool, remote
    from galaxies.runtime.resources import resolve_jobs

    batches = _batches(ds.img, ds.psf_fwhm, ds.sigma)
    workers = resolve_jobs(jobs, len(batches))
    if workers == 1 and remote() is None:
        return [_fit_batch(*batch, bulge_disc) for batch in batches]
    with process_pool(workers) as pool:
        futures = [pool.submit(_fit_batch, *batch, bulge_disc) for batch in batches]
        return [future.result() for future in futures]


def _fit_info(parts: list) -> tuple[np.ndarray, dict]:
    """The estimates (N, 5) of one fit's `FitResults` over the batches ``parts``, and its
    ``std``, ``nll``, ``hit_box``, ``converged`` (N each) and CPU ``seconds`` (all rows)."""
    pred = np.concatenate([r.params for r in parts])
    info = {"std": np.concatenate([r.std for r in parts]),
            "nll": np.concatenate([r.nll for r in parts]),
            "hit_box": np.concatenate([r.hit_box for r in parts]),
            "converged": np.concatenate([r.converged for r in parts]),
            "seconds": sum(r.seconds for r in parts)}
    return pred, info


def _bulge_disc_estimates(parts: list) -> tuple[np.ndarray, np.ndarray, float]:
    """The bulge plus disc fit's label-shaped estimates (flux, NaN, composite half-light
    radius, g1, g2), its NLL per row and its CPU seconds (the half-light radii's included),
    from the batches ``parts``."""
    from galaxies.inference.differentiable import bulge_disc
    params, clock = np.concatenate([p[0] for p in parts]), time.process_time()
    pred = np.column_stack([params[:, 0], np.full(len(params), np.nan),
                            bulge_disc.half_light_radius(params), params[:, 4:6]])
    seconds = sum(p[2] for p in parts) + time.process_time() - clock
    return pred, np.concatenate([p[1] for p in parts]), seconds


def choose_model(sersic_nll, bulge_disc_nll, pixels: int) -> np.ndarray:
    """True where the bulge plus disc is the better model by the Bayesian information
    criterion: its NLL lower by more than ``ln(pixels) / 2`` (one parameter more than the
    Sérsic's five)."""
    return np.asarray(sersic_nll) - np.asarray(bulge_disc_nll) > 0.5 * np.log(pixels)


def chosen_shares(path, details: dict) -> dict:
    """The share of each galaxy kind's images (`galaxies.simulation.cosmos.KINDS`) on which
    `estimate` chose the bulge plus disc (``details["bulge+disc chosen"]``)."""
    kind, chosen = cosmos.load_extra(path)["kind"], details["bulge+disc chosen"]
    return {name: float(chosen[kind == k].mean()) for k, name in enumerate(cosmos.KINDS)}


def estimate(path, profile=None, networks=None, refine_from=None, fit=True, hsm=True,
             bulge_disc=True, jobs: int | None = None, log=print) -> tuple[dict, dict]:
    """``(estimates, details)``: name -> (N, 5) estimates of every row of the `cosmos` file
    ``path``, and name -> CPU seconds per image, plus ``"fit"``: the fit's ``std``, ``nll``,
    ``hit_box``, ``converged``. ``networks``: model names (``<estimator>_<trainset>``) of
    ``profile`` (default: the profile's recommended one); ``refine_from``: the networks to
    refine (default: the first network); ``bulge_disc`` (with ``fit``): the wide fit, the
    bulge plus disc fit and the chosen model too (``details["bulge+disc chosen"]``: where);
    the fits run in ``jobs`` worker processes (`_fits`)."""
    profile = profiles.get(profile)
    ds = files.load_dataset(path)
    cosmos.load_extra(path)  # a cosmos set, or a one-line error
    networks = [profile.recommended] if networks is None else list(networks)
    refine_from = networks[:1] if refine_from is None else list(refine_from)
    unknown = [r for r in refine_from if r not in networks]
    if unknown:
        raise InputError(f"refine_from {unknown} must be among the networks {networks}")
    estimates, details = {}, {"seconds": {}}
    if fit:
        batches = _fits(ds, bulge_disc, jobs)
        pred, info = _fit_info([b[FIT] for b in batches])
        estimates[FIT], details["fit"] = pred, info
        details["seconds"][FIT] = info["seconds"] / len(ds)
        log(f"{FIT}: {info['seconds'] / len(ds):.3f} s CPU per image")
        if bulge_disc:
            from galaxies.conventions import IMAGE_SIZE
            estimates[WIDE], wide = _fit_info([b[WIDE] for b in batches])
            details["seconds"][WIDE] = wide["seconds"] / len(ds)
            estimates[BULGE_DISC], nll, seconds = _bulge_disc_estimates(
                [b[BULGE_DISC] for b in batches])
            seconds /= len(ds)
            details["seconds"][BULGE_DISC] = seconds
            chosen = choose_model(wide["nll"], nll, IMAGE_SIZE * IMAGE_SIZE)
            estimates[CHOSEN] = np.where(chosen[:, None], estimates[BULGE_DISC], estimates[WIDE])
            details["seconds"][CHOSEN] = seconds + details["seconds"][WIDE]
            details["bulge+disc chosen"] = chosen
            log(f"{BULGE_DISC}: {seconds:.3f} s CPU per image; chosen on {chosen.mean():.0%}")
    from .estimators import HSM as HSMEstimator, Refined, load
    if hsm:
        for name in HSM:
            clock = time.process_time()
            estimates[name] = HSMEstimator(name.split("-", 1)[1]).predict(ds.img, ds.psf_fwhm,
                                                                          ds.sigma)[0]
            details["seconds"][name] = (time.process_time() - clock) / len(ds)
    for name in networks:
        estimator, trainset = name.rsplit("_", 1)
        directory = profile.model_dir(estimator, trainset)
        if not directory.is_dir():
            raise InputError(f"no model {name} in {profile.models_dir} (train the profile first)")
        network, clock = load(directory), time.process_time()
        estimates[name] = np.asarray(network.predict_dataset(ds)[0], float)
        details["seconds"][name] = (time.process_time() - clock) / len(ds)
        if name in refine_from:  # the network again, then two steps: as one estimator
            refined, clock = Refined(network, steps=2, renderer="jax"), time.process_time()
            key = f"{name}+newton2-jax"
            estimates[key] = np.concatenate([refined.predict(*batch)[0] for batch in
                                             _batches(ds.img, ds.psf_fwhm, ds.sigma)])
            details["seconds"][key] = (time.process_time() - clock) / len(ds)
    return estimates, details


def report_table(path, estimates: dict) -> "pd.DataFrame":
    """The ring-test table (`galaxies.evaluation.ring_test.table`) of ``estimates`` on the `cosmos` file
    ``path``: one row per estimator and group."""
    ds = files.load_dataset(path, fields=("label",))
    return table(estimates, ds.label, cosmos.load_extra(path))


def reduced_chi2(nll, pixels: int, parameters: int = 5) -> np.ndarray:
    """Chi-square per degree of freedom from the fit's ``nll`` (half the weighted residuals'
    sum of squares, `galaxies.inference.differentiable.fit.FitResults.nll`) over ``pixels`` pixels."""
    return 2.0 * np.asarray(nll, float) / (pixels - parameters)


def domain_flag(nll, pixels: int, sigmas: float = CHI2_SIGMAS) -> np.ndarray:
    """True where the fit's reduced chi-square is more than ``sigmas`` of its own standard
    deviation above 1: the image is not the fit's model (or its noise is not the one given)."""
    dof = pixels - 5
    return reduced_chi2(nll, pixels) > 1.0 + sigmas * np.sqrt(2.0 / dof)


def large_errors(pred, label, std, g_total, kind, percent: float | None = 10.0) -> np.ndarray:
    """The issue's large error: flux or half-light radius more than ``percent`` off (None: no
    such rule), or off by more than 3 times its bound (``std``, the fit's, at its estimate);
    for a single Sérsic also a shear more than 3 bounds from the galaxy's own (``g_total``)."""
    pred, label, std = (np.asarray(a, float) for a in (pred, label, std))
    big = np.zeros(len(pred), bool)
    for col in (0, 2):
        err = pred[:, col] - label[:, col]
        big |= np.abs(err) > 3 * std[:, col]
        if percent is not None:
            big |= np.abs(err) > percent / 100.0 * label[:, col]
    sersic = np.asarray(kind) == cosmos.SERSIC
    for i, col in enumerate((3, 4)):
        err = np.abs(pred[:, col] - np.asarray(g_total)[:, i])
        big |= sersic & (err > 3 * std[:, col])
    return big


def flag_performance(flag, big) -> dict:
    """The share of large errors ``big`` the ``flag`` catches, and of good rows it flags."""
    flag, big = np.asarray(flag, bool), np.asarray(big, bool)
    return {"large": int(big.sum()), "good": int((~big).sum()),
            "caught": float(flag[big].mean()) if big.any() else float("nan"),
            "false_flags": float(flag[~big].mean()) if (~big).any() else float("nan")}


def sersic_bounds(path) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the `cosmos` file ``path`` where a bound exists (single Sérsic inside the
    box) and their Cramér–Rao bounds (rows, 5) at the truth: the catalog's flux, index and
    radius, the galaxy's own shear (``g_total``), on the JAX model (`galaxies.inference.differentiable`)."""
    from galaxies.inference.differentiable.bound import cramer_rao_bounds
    ds = files.load_dataset(path, fields=("label", "psf_fwhm", "sigma"))
    extra = cosmos.load_extra(path)
    rows = np.flatnonzero((extra["kind"] == cosmos.SERSIC) & extra["in_box"])
    truth = np.column_stack([ds.label[rows, :3], extra["g_total"][rows]]).astype(float)
    crb = np.concatenate([cramer_rao_bounds(truth[i:i + BATCH], ds.psf_fwhm[rows][i:i + BATCH],
                                            ds.sigma[rows][i:i + BATCH])
                          for i in range(0, len(rows), BATCH)]) if len(rows) else np.zeros((0, 5))
    return rows, crb


def against_bounds(estimates: dict, path, rows, crb) -> "pd.DataFrame":
    """Each estimator's error on the bounded rows (`sersic_bounds`) over each galaxy's own
    bound: ``norm bias`` (mean of error / bound) and ``norm rmse`` (root mean square of it), per
    parameter; the shear's truth is the galaxy's own shear (not only the applied one)."""
    import pandas as pd
    ds = files.load_dataset(path, fields=("label",))
    extra = cosmos.load_extra(path)
    truth = np.column_stack([ds.label[rows, :3], extra["g_total"][rows]]).astype(float)
    records = []
    for name, pred in estimates.items():
        z = (np.asarray(pred, float)[rows] - truth) / crb
        with warnings.catch_warnings():  # a column an estimator does not measure: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            stats = (("norm bias", np.nanmean(z, axis=0)),
                     ("norm rmse", np.sqrt(np.nanmean(z**2, axis=0))))
        for stat, value in stats:
            records.append({"estimator": name, "statistic": stat,
                            **dict(zip(("flux", "sersic_n", "sersic_r", "g1", "g2"), value))})
    return pd.DataFrame.from_records(records)


def flag_tables(path, estimates: dict, details: dict) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """The fit's domain flag on the `cosmos` file ``path``: per galaxy kind and inside /
    outside the box, the median reduced chi-square, the share flagged and the share of fits
    that hit the box; and, for the fit and the first network, how many large errors (over 10%
    in flux or r or over 3 bounds; over 3 bounds only) the flag catches and how many good
    estimates it wrongly flags. Needs `estimate`'s ``details["fit"]``."""
    import pandas as pd
    from galaxies.conventions import IMAGE_SIZE
    ds = files.load_dataset(path, fields=("label",))
    extra, fit = cosmos.load_extra(path), details["fit"]
    chi2 = reduced_chi2(fit["nll"], IMAGE_SIZE * IMAGE_SIZE)
    flag = domain_flag(fit["nll"], IMAGE_SIZE * IMAGE_SIZE)
    groups = []
    for kind, name in enumerate(cosmos.KINDS):
        for box in (True, False):
            sel = (extra["kind"] == kind) & (extra["in_box"] == box)
            if sel.any():
                groups.append({"kind": name, "box": "inside" if box else "outside",
                               "median chi2/dof": float(np.median(chi2[sel])),
                               "flagged": float(flag[sel].mean()),
                               "fit hit the box": float(fit["hit_box"][sel].mean())})
    scores = []
    networks = [n for n in estimates if n not in (*FITS, *HSM) and "+" not in n][:1]
    for name in [n for n in (FIT, *networks) if n in estimates]:
        for percent, rule in ((10.0, "> 10% flux or r, or > 3 bounds"), (None, "> 3 bounds")):
            big = large_errors(estimates[name], ds.label, fit["std"], extra["g_total"],
                               extra["kind"], percent=percent)
            scores.append({"estimator": name, "large error": rule,
                           **flag_performance(flag, big)})
    return pd.DataFrame(groups), pd.DataFrame(scores)
