"""What the final report compares: every estimator against the CRB and the L-BFGS-B fit.

The report reads only files the pipeline wrote (predictions, model directories, data sets), so
it can be rebuilt at any time and lists as *missing* whatever has not been trained yet.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from galaxies.conventions import LABEL_COLUMNS
from galaxies.networks.training.saved import read_info
from galaxies.runtime import profiles
from galaxies.runtime.errors import InputError
from galaxies.runtime.profiles import FIXED_TESTSETS, TESTSETS
from galaxies.simulation import recipes
from galaxies.storage import atomic, files

from . import evaluate, testsets


@dataclass(frozen=True)
class Entry:
    """One estimator of the comparison, as named in its files."""

    key: str  # the estimator part of model and predictions names
    trainset: str  # the training set ("fit" for the maximum-likelihood baseline)
    label: str  # how the report names it
    noiseless: bool = False  # evaluated on noiseless images: a reference, not a competitor
    model: str | None = None  # the trained model it uses (default: its name; "-": none)

    @property
    def name(self) -> str:
        return f"{self.key}_{self.trainset}"

    @property
    def model_name(self) -> str:
        return self.model or self.name


ESTIMATORS: tuple[Entry, ...] = (
    Entry("xception", "v1", "Xception (v1)"),
    Entry("xception", "v2", "Xception (v2: varying noise)"),
    Entry("xception", "v3", "Xception (v3: varying PSF), fixed noise"),
    Entry("xception-nll", "v3", "Xception + uncertainty (v3): the recommended network with a std head"),
    Entry("xception-fresh", "v3", "Xception, fresh noise (v3): recommended"),
    Entry("autoencoder", "v1", "Autoencoder (v1)"),
    Entry("autokeras", "v1", "AutoKeras best (v1)"),
    Entry("edsr-xception", "v1", "EDSR + Xception (v1)"),
    Entry("rdn-xception", "v1", "RDN + Xception (v1)"),
    Entry("lbfgsb", "fit", "L-BFGS-B fit", model="-"),
    Entry("lm-jax", "fit", "Levenberg–Marquardt fit (JAX model)", model="-"),
    Entry("hsm-ksb", "galsim", "GalSim HSM KSB (shear only)", model="-"),
    Entry("hsm-regauss", "galsim", "GalSim HSM REGAUSS (shear only)", model="-"),
    Entry("xception-noiseless", "v1", "Xception on noiseless images", noiseless=True),
)
#: The two maximum-likelihood fits: on GalSim's renders (`galaxies.inference.galsim_fit`, the
#: reference the tables divide by) and on the differentiable JAX model.
GALSIM_FIT, JAX_FIT = "lbfgsb_fit", "lm-jax_fit"
#: The mark of an estimator on a test set whose PSF or noise its training set never had, and
#: the footnote that explains it (`in_domain`).
OUT_OF_DOMAIN = "†"
OUT_OF_DOMAIN_NOTE = (f"{OUT_OF_DOMAIN} outside its training set's PSF / noise (a two-stage or "
                      "refined estimator: its network's); shown, but an extrapolation")


def estimators(profile=None) -> tuple[Entry, ...]:
    """`ESTIMATORS` and the two-stage estimators of the profile's recommended network
    (``profile.refine_start``): refined by K steps (``refine_steps``), and the fit started
    from it (`Project/refinement.ipynb`), placed after the L-BFGS-B fit; the same refinements
    on the JAX model after the JAX fit."""
    from galaxies.inference.differentiable.datasets import refined_name

    profile = profiles.get(profile)
    key, trainset = profile.refine_start.rsplit("_", 1)
    start = next((e.label for e in ESTIMATORS if e.name == profile.refine_start), profile.refine_start)

    def refined(k: int, name: str, model: str) -> Entry:
        return Entry(name, trainset, f"{start} + {k} Gauss-Newton step{'s' * (k > 1)}{model}",
                     model=profile.refine_start)

    staged = [refined(k, f"{key}+newton{k}", "") for k in profile.refine_steps]
    staged.append(Entry(f"{key}+lbfgsb", trainset, f"L-BFGS-B from {start}", model=profile.refine_start))
    staged_jax = [refined(k, refined_name(key, k), " (JAX model)") for k in profile.refine_steps]
    names = [e.name for e in ESTIMATORS]
    at, at_jax = names.index(GALSIM_FIT) + 1, names.index(JAX_FIT) + 1
    return (ESTIMATORS[:at] + tuple(staged) + ESTIMATORS[at:at_jax] + tuple(staged_jax)
            + ESTIMATORS[at_jax:])


def by_name(name: str, profile=None) -> Entry:
    choices = estimators(profile)
    for estimator in choices:
        if estimator.name == name:
            return estimator
    raise InputError(f"unknown estimator {name!r}; choose from {[e.name for e in choices]}")


def in_domain(entry: Entry, testset: str) -> bool:
    """Whether ``entry``'s training set covers ``testset``'s PSF FWHM and noise sigma
    (`galaxies.simulation.recipes.covers`). The fit and HSM, trained on nothing, are never outside."""
    return not recipes.extrapolates(entry.trainset, testset)


def _shown(profile, testset: str):
    """A function that writes an estimator's label as `marked` would on ``testset``."""
    entries = {e.label: e for e in estimators(profile)}
    return lambda label: (f"{label} {OUT_OF_DOMAIN}" if label in entries
                          and not in_domain(entries[label], testset) else label)


def marked(table: pd.DataFrame, profile=None, testset: str | None = None) -> pd.DataFrame:
    """``table`` (indexed by estimator label, alone or with other levels) with `OUT_OF_DOMAIN`
    after the label of each estimator outside its training domain on the test set: ``testset``,
    or the table's own ``testset`` level."""
    if table.empty:
        return table
    index = table.index
    sets = index.get_level_values("testset") if "testset" in index.names else [testset] * len(index)
    shown = {t: _shown(profile, t) for t in set(sets)}
    labels = [shown[t](label) for label, t in zip(index.get_level_values("estimator"), sets)]
    table = table.copy()
    if isinstance(index, pd.MultiIndex):
        levels = index.to_frame(index=False).assign(estimator=labels)
        table.index = pd.MultiIndex.from_frame(levels)
    else:
        table.index = pd.Index(labels, name="estimator")
    return table


def note(table: pd.DataFrame) -> str:
    """`OUT_OF_DOMAIN_NOTE` when a label of ``table`` (a `marked` one) carries the mark."""
    if table.empty:
        return ""
    shown = table.index.get_level_values("estimator")
    return OUT_OF_DOMAIN_NOTE if any(label.endswith(OUT_OF_DOMAIN) for label in shown) else ""


def availability(profile) -> pd.DataFrame:
    """For each estimator: whether its model and its predictions on each test set exist."""
    profile = profiles.get(profile)
    rows = []
    for est in estimators(profile):
        row = {"estimator": est.label, "name": est.name,
               "model": "-" if est.model_name == "-" else (
                   "yes" if (profile.models_dir / est.model_name).is_dir() else "missing")}
        for testset in TESTSETS:
            row[testset] = "yes" if profile.predictions(est.key, est.trainset, testset).is_file() else "missing"
        rows.append(row)
    return pd.DataFrame(rows).set_index("estimator")


def _predictions(profile, testset: str, chosen=None, include_noiseless: bool = False):
    """``(estimator, predictions)`` for each estimator (``chosen``, default `estimators`) with
    a predictions file on ``testset`` (the noiseless-image reference left out unless asked for)."""
    for est in chosen or estimators(profile):
        path = profile.predictions(est.key, est.trainset, testset)
        if path.is_file() and (include_noiseless or not est.noiseless):
            yield est, files.load_predictions(path)


def comparison(profile, testset: str, chosen=None, include_noiseless: bool = False) -> pd.DataFrame:
    """Bias, std, RMSE and their ratios to the CRB for every estimator (``chosen``: `Entry`
    list, default `estimators`) with predictions on ``testset``; rows indexed by (estimator,
    parameter)."""
    profile = profiles.get(profile)
    ds = files.load_dataset(profile.dataset(testset), fields=())
    bound = testsets.crb(profile, testset)
    tables = {est.label: evaluate.against_crb(pred, ds, bound)
              for est, pred in _predictions(profile, testset, chosen, include_noiseless)}
    if not tables:
        return pd.DataFrame()
    return pd.concat(tables, names=["estimator", "parameter"])


def ratio_table(table: pd.DataFrame, column: str = "rmse/crb") -> pd.DataFrame:
    """One column of `comparison` as estimators x parameters."""
    if table.empty:
        return table
    return table[column].unstack("parameter")[list(LABEL_COLUMNS)]


def _training_seconds(profile, info: dict) -> float:
    """Training time of a saved model, plus its denoiser's for a two-stage estimator (the
    denoiser is looked up by name under this profile's models, so results copied between
    machines still add up); NaN when the denoiser's record is missing."""
    seconds = float(info.get("training_seconds", np.nan))
    if info.get("denoiser"):
        upstream = read_info(profile.models_dir / Path(info["denoiser"]).name)
        seconds += float(upstream.get("training_seconds", np.nan))
    return seconds


def timing(profile) -> pd.DataFrame:
    """Training time and seconds per image of each estimator, and the speed-up over L-BFGS-B."""
    profile = profiles.get(profile)
    rows = []
    for est in estimators(profile):
        pred_path = profile.predictions(est.key, est.trainset, "snr60")
        spi = files.load_predictions(pred_path).seconds_per_image if pred_path.is_file() else np.nan
        info = read_info(profile.models_dir / est.model_name) if est.model_name != "-" else {}
        train_s = _training_seconds(profile, info) if info else np.nan
        rows.append({"estimator": est.label, "training [s]": train_s, "seconds per image": spi})
    table = pd.DataFrame(rows).set_index("estimator")
    baseline = table.loc[by_name(GALSIM_FIT).label, "seconds per image"]
    table["speed-up over L-BFGS-B"] = baseline / table["seconds per image"]
    return table


def run_info(profile) -> dict:
    """Where and when the results were made: profile, data sizes, machine, date."""
    profile = profiles.get(profile)
    sizes = {}
    for name in profile.sizes:
        path = profile.dataset(name)
        sizes[name] = files.dataset_info(path)["size"] if path.is_file() else "missing"
    state = {}
    state_file = profile.results_dir / "pipeline-state.json"
    if state_file.is_file():
        state = json.loads(state_file.read_text())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else np.nan
    finished = [v.get("finished") for v in state.values() if v.get("finished")]
    return {
        "profile": profile.name,
        "data sizes": sizes,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {memory:.0f} GiB RAM, "
                   f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "keras backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "report date": time.strftime("%Y-%m-%d %H:%M"),
        "pipeline steps finished": f"{min(finished)} .. {max(finished)}" if finished else "n/a",
    }


def save_tables(profile, folder: Path | None = None, tables: dict | None = None) -> dict[str, Path]:
    """Write the comparison tables (``tables``: `comparison` by test set, computed when not
    given), each row with ``in training domain`` (`in_domain`), and the timing table as CSV
    under ``results/<profile>/``; return their paths."""
    profile = profiles.get(profile)
    folder = Path(folder or profile.results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    entries = {e.label: e for e in estimators(profile)}
    written = {}
    for testset in TESTSETS:
        table = tables[testset] if tables and testset in tables else comparison(profile, testset)
        if not table.empty:
            written[testset] = folder / f"comparison_{testset}.csv"
            atomic.write_text(written[testset], table.assign(**{"in training domain": [
                label not in entries or in_domain(entries[label], testset)
                for label in table.index.get_level_values("estimator")]}).to_csv())
    written["timing"] = folder / "timing.csv"
    atomic.write_text(written["timing"], timing(profile).to_csv())
    return written


def test_predictions(profile, testset: str = "test", include_noiseless: bool = False) -> dict:
    """``{label: (truth, pred)}`` on a random test set, for true-vs-predicted plots."""
    profile = profiles.get(profile)
    ds = files.load_dataset(profile.dataset(testset), fields=())
    out = {}
    for est, predictions in _predictions(profile, testset, include_noiseless=include_noiseless):
        pred, truth, _ = evaluate.aligned(predictions, ds)
        if np.isnan(pred).all(axis=0).any():  # a shear-only estimator: no panel for it
            continue
        out[est.label] = (truth, pred)
    return out


def error_vs_snr(profile, testset: str = "test", bins=evaluate.SNR_BINS) -> pd.DataFrame:
    """RMSE per parameter in SNR bins for every estimator on a random test set; rows indexed by
    (estimator, SNR bin)."""
    profile = profiles.get(profile)
    ds = files.load_dataset(profile.dataset(testset), fields=())
    tables = {est.label: evaluate.by_snr(pred, ds, bins) for est, pred in _predictions(profile, testset)}
    return pd.concat(tables, names=["estimator", "snr"]) if tables else pd.DataFrame()


def _mean_ratio(table: pd.DataFrame, label: str, parameters=LABEL_COLUMNS) -> float:
    return float(table.loc[label, "rmse/crb"].reindex(list(parameters)).mean())


def conclusions(profile, tables: dict | None = None) -> list[str]:
    """Statements that follow from this run's numbers (each computed, none hard-coded);
    ``tables``: `comparison` by test set when already computed."""
    profile = profiles.get(profile)
    lines = []
    missing = availability(profile)
    absent = [label for label, row in missing.iterrows() if row["snr60"] == "missing"]
    if absent:
        lines.append(f"Not trained in this run (no predictions on snr60): {', '.join(absent)}.")
    for testset in FIXED_TESTSETS:
        table = tables[testset] if tables and testset in tables else comparison(profile, testset)
        if table.empty:
            continue
        shown = _shown(profile, testset)
        ratios = ratio_table(table)
        best = ratios.idxmin()
        parts = [f"{p}: {shown(best[p])} ({ratios.loc[best[p], p]:.2f})" for p in LABEL_COLUMNS]
        lines.append(f"On {testset}, the lowest RMSE/CRB per parameter: " + "; ".join(parts) + ".")
        near = [shown(label) for label in ratios.index
                if (ratios.loc[label, ["flux", "sersic_r", "g1", "g2"]] <= 1.1).all()]
        lines.append(f"On {testset}, estimators within 1.1 x CRB for flux, r, g1 and g2: "
                     f"{', '.join(near) if near else 'none'}.")
        base = by_name(GALSIM_FIT).label
        plain = by_name("xception_v1").label
        if base in ratios.index and plain in ratios.index:
            lines.append(
                f"On {testset}, the mean RMSE/CRB over the five parameters is "
                f"{_mean_ratio(table, plain):.2f} for {shown(plain)} and "
                f"{_mean_ratio(table, base):.2f} for the {base}.")
        for other in ("edsr-xception_v1", "rdn-xception_v1", "autoencoder_v1"):
            label = by_name(other).label
            if label in ratios.index and plain in ratios.index:
                change = _mean_ratio(table, label) / _mean_ratio(table, plain) - 1
                lines.append(f"On {testset}, {shown(label)} has a mean RMSE/CRB {abs(change):.0%} "
                             f"{'lower' if change < 0 else 'higher'} than {shown(plain)}.")
    lines += _refinement_conclusions(profile, tables)
    if any(OUT_OF_DOMAIN in line for line in lines):
        lines.append(OUT_OF_DOMAIN_NOTE + ".")
    times = timing(profile)
    plain = by_name("xception_v1").label
    speedup = times.loc[plain, "speed-up over L-BFGS-B"]
    if np.isfinite(speedup):
        lines.append(f"{plain} predicts in {times.loc[plain, 'seconds per image'] * 1e3:.2f} ms per image, "
                     f"{speedup:,.0f} x faster than the L-BFGS-B fit "
                     f"({times.loc[by_name(GALSIM_FIT).label, 'seconds per image']:.2f} s per image).")
    nll = profile.predictions(*profile.uncertainty.rsplit("_", 1), "test")
    if nll.is_file():
        ds = files.load_dataset(profile.dataset("test"), fields=())
        cal = evaluate.calibration(files.load_predictions(nll), ds)
        lines.append("Uncertainty of the Xception + uncertainty model on test: z-score std "
                     + ", ".join(f"{p} {cal.loc[p, 'z std']:.2f}" for p in LABEL_COLUMNS)
                     + "; 68% coverage " + ", ".join(f"{p} {cal.loc[p, 'coverage 68%']:.0f}%"
                                                   for p in LABEL_COLUMNS) + ".")
    return lines


def _refinement_conclusions(profile, tables: dict | None) -> list[str]:
    """How far each refinement of the recommended network is from the fit (on the same
    galaxies: both cover the fit's rows), and at what share of its time."""
    lines = []
    base = by_name(GALSIM_FIT, profile)
    staged = [e for e in estimators(profile) if e.model == profile.refine_start]
    for testset in TESTSETS:
        table = tables[testset] if tables and testset in tables else comparison(profile, testset)
        if table.empty or base.label not in table.index.get_level_values("estimator"):
            continue
        fit = table.loc[base.label]
        fit_seconds = files.load_predictions(
            profile.predictions(base.key, base.trainset, testset)).seconds_per_image
        for entry in staged:
            if entry.label not in table.index.get_level_values("estimator"):
                continue
            own = table.loc[entry.label]
            rmse = (own["norm rmse"] - fit["norm rmse"]).abs().max()
            bias = (own["norm bias"].abs() - fit["norm bias"].abs()).abs().max()
            seconds = files.load_predictions(
                profile.predictions(entry.key, entry.trainset, testset)).seconds_per_image
            lines.append(f"On {testset}, {_shown(profile, testset)(entry.label)} is within {rmse:.3f} of the fit's RMSE / CRB "
                         f"and {bias:.3f} of its |bias| / CRB on every parameter, at "
                         f"{seconds:.3f} s per image ({fit_seconds / seconds:.1f} x faster than the fit).")
    return lines


def shear_calibration(profile, testset: str = "test", min_snr: float = 20.0) -> pd.DataFrame:
    """m and c (with standard errors) of g1 and g2 for every estimator with predictions on the
    random ``testset``: over all galaxies, above ``min_snr`` and per SNR bin
    (`galaxies.evaluation.evaluate.shear_calibration`); rows indexed by (estimator, parameter, SNR bin)."""
    profile = profiles.get(profile)
    ds = files.load_dataset(profile.dataset(testset), fields=())
    tables = {est.label: evaluate.shear_calibration(pred, ds, min_snr=min_snr)
              for est, pred in _predictions(profile, testset)}
    return pd.concat(tables, names=["estimator"]) if tables else pd.DataFrame()


def uncertainty(profile) -> pd.DataFrame:
    """z-score std and 68% coverage of every estimator that gives ``pred_std``, on every test
    set; rows indexed by (estimator, test set), columns (quantity, parameter)."""
    profile = profiles.get(profile)
    tables = {}
    for testset in TESTSETS:
        ds = files.load_dataset(profile.dataset(testset), fields=())
        for est, pred in _predictions(profile, testset):
            if pred.pred_std is not None:
                cal = evaluate.calibration(pred, ds)[["z std", "coverage 68%"]]
                tables[(est.label, testset)] = cal.T.stack()
    if not tables:
        return pd.DataFrame()
    table = pd.DataFrame(tables).T
    table.index.names = ["estimator", "testset"]
    return table
