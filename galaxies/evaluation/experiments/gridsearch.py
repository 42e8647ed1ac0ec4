"""Grid search over the Xception estimator's sizes, recorded as JSON and shown in HiPlot.

Each grid point (keywords of `galaxies.networks.models.xception.build`: ``entry_filters``,
``block_filters``, ``blocks``, ``exit_filters``) is trained with `galaxies.networks.training.fit` on the
first ``profile.gridsearch_rows`` rows of v1 for ``profile.gridsearch_epochs`` epochs, on the
fresh-noise stream (`galaxies.networks.training.noise`: a new noisy draw of each noiseless image at every
showing, the validation rows one fixed draw; ``noise="fixed"``: the set's noisy images), and
recorded as one JSON file under ``results/<profile>/gridsearch/``: its sizes, its score
(``val_loss``: the validation MSE of the standardized labels, lower is better; the same split
and scaling for every trial), its parameter count and its training time. A trial whose record
exists with the same settings (and the same training and builder code) is not run again, so
an interrupted search resumes.

`hiplot_experiment` turns the records into a HiPlot parallel-coordinates view; `save_html`
writes it as a standalone page. `best_per_parameter` answers the question of the search: the
smallest model whose score is within a tolerance of the best one.

The AutoKeras pick (`galaxies.evaluation.experiments.autokeras`) can be trained with the very same protocol
(`run_architecture`), so its score and size sit on the same axes as the grid's.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

from galaxies.networks.models import BUILDERS
from galaxies.runtime import profiles
from galaxies.runtime.console import show_progress
from galaxies.runtime.errors import InputError
from galaxies.storage import atomic

#: the standalone HiPlot page, under ``results/<profile>/`` (not ``gridsearch.html``: the
#: pipeline writes the executed notebook's HTML there)
HTML_FILE = "gridsearch_hiplot.html"
#: columns of a record shown first in tables and HiPlot
COLUMNS = ("trial", "model", "entry_filters", "block_filters", "blocks", "exit_filters",
           "parameters", "val_loss", "training_seconds", "epochs_run")


def expand_grid(grid: dict) -> list[dict]:
    """Every combination of a grid ``{keyword: [values]}``, in the order of the keywords and
    values given (``{"blocks": [2, 4], "exit_filters": [64]}`` gives two points)."""
    if not grid:
        raise InputError("the grid is empty; give {keyword: [values, ...]}")
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__") or not list(values):
            raise InputError(f"grid[{key!r}] = {values!r} must be a non-empty list of values")
    keys = list(grid)
    return [dict(zip(keys, combination)) for combination in itertools.product(*(list(grid[k]) for k in keys))]


#: short names of the builder keywords in trial names
ABBREVIATIONS = {"entry_filters": "e", "block_filters": "f", "blocks": "b", "exit_filters": "x"}


def trial_name(params: dict) -> str:
    """A short, file-safe name for a grid point: ``e16-f32-b4-x64`` for entry filters 16,
    block filters 32, 4 blocks and exit filters 64 (other keywords spelled out)."""
    return "-".join(f"{ABBREVIATIONS.get(key, key)}{value}" for key, value in params.items())


def folder(profile=None) -> Path:
    """Where the trial records of a profile go: ``results/<profile>/gridsearch``."""
    return profiles.get(profile).results_dir / "gridsearch"


def _settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _code_version(model: str) -> str:
    """Digest of the code a trial runs (the training package and the model's builder, with
    everything they import): a record made by other code is stale and the trial runs again."""
    from galaxies.networks.models import get_builder
    from galaxies.runtime.code_dependencies import digest, package_dependencies

    module = get_builder(model).__module__ if model in BUILDERS else "galaxies.networks.models"
    return digest(package_dependencies([f"import galaxies.networks.training.loop\nimport {module}"]))[:16]


def run_trial(model: str, model_kwargs: dict, data, rows: int | None, epochs: int,
              batch_size: int, patience: int, out: Path, name: str, seed: int = 0,
              extra: dict | None = None, force: bool = False, verbose=0,
              noise: str = "fresh") -> dict:
    """Train one configuration with `galaxies.networks.training.fit` (``noise``: ``"fresh"``, the
    fresh-noise stream, or ``"fixed"``, the set's noisy images) and write its record to
    ``out`` (JSON); returns the record. An existing record with the same settings is returned
    as is unless ``force``. The trained model itself is not kept."""
    from galaxies.networks.training import TrainingConfig, fit

    settings = {"model": model, "model_kwargs": model_kwargs, "data": str(data), "rows": rows,
                "epochs": epochs, "batch_size": batch_size, "patience": patience, "seed": seed,
                "noise": noise, "code": _code_version(model)}
    key = _settings_key(settings)
    out = Path(out)
    if out.is_file() and not force:
        record = json.loads(out.read_text())
        if record.get("settings_key") == key:
            return record
    config = TrainingConfig(model=model, inputs="noisy", noise=noise, epochs=epochs,
                            batch_size=batch_size, patience=patience, seed=seed, limit=rows,
                            model_kwargs=model_kwargs)
    saved = fit(config, data, name=name, estimator=model, verbose=verbose)  # kept in memory
    info = saved.info
    record = {"trial": name, "model": model,
              **{k: v for k, v in model_kwargs.items() if isinstance(v, (int, float, str))},
              "parameters": info["parameters"], "val_loss": info["best_val_loss"],
              "training_seconds": info["training_seconds"], "epochs_run": info["epochs_run"],
              "train_rows": info["train_rows"], "validation_rows": info["validation_rows"],
              "train_images_per_second": info["train_images_per_second"], "noise": noise,
              **(extra or {}), "settings_key": key, "settings": _readable(settings)}
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out, record)
    return record


def _readable(settings: dict) -> dict:
    """Settings to store: a long value (an architecture) is replaced by its hash."""
    kwargs = {k: v if isinstance(v, (int, float, str, bool, type(None)))
              else f"sha256:{_settings_key(v)}" for k, v in settings["model_kwargs"].items()}
    return {**settings, "model_kwargs": kwargs}


def run(profile=None, grid: dict | None = None, force: bool = False, progress: bool = True,
        verbose=0, noise: str = "fresh") -> "list[dict]":
    """Train every point of the grid (default ``profile.gridsearch_grid``) on the first
    ``profile.gridsearch_rows`` rows of v1 with ``noise`` (`run_trial`); returns the records."""
    from tqdm.auto import tqdm

    profile = profiles.get(profile)
    points = expand_grid(grid or profile.gridsearch_grid)
    out = folder(profile)
    records = []
    for params in tqdm(points, desc="grid search", unit="trial", disable=not show_progress(progress)):
        name = trial_name(params)
        records.append(run_trial(
            "xception", params, profile.dataset("v1"), profile.gridsearch_rows,
            profile.gridsearch_epochs, profile.gridsearch_batch_size or profile.batch_size,
            profile.patience, out / f"{name}.json", name, force=force, verbose=verbose,
            noise=noise))
    return records


def run_architecture(profile, architecture: dict, name: str = "autokeras_pick",
                     extra: dict | None = None, force: bool = False, verbose=0,
                     noise: str = "fresh") -> dict:
    """Train a plain-Keras architecture (e.g. the AutoKeras pick, from
    `galaxies.evaluation.experiments.autokeras.load_best`) with the grid's protocol (its noise included)
    and record it as a trial."""
    profile = profiles.get(profile)
    return run_trial("autokeras", {"architecture": architecture}, profile.dataset("v1"),
                     profile.gridsearch_rows, profile.gridsearch_epochs,
                     profile.gridsearch_batch_size or profile.batch_size, profile.patience,
                     folder(profile) / f"{name}.json", name, extra=extra,
                     force=force, verbose=verbose, noise=noise)


def load_records(path) -> "list[dict]":
    """The trial records in a folder (``*.json``), or in one JSON file holding a list."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise FileNotFoundError(f"no trial records (*.json) in {path}: run the grid search first")
        return [json.loads(f.read_text()) for f in files]
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the grid search first")
    value = json.loads(path.read_text())
    return value if isinstance(value, list) else [value]


def table(records) -> "pd.DataFrame":
    """Records as a DataFrame, best score first, columns of `COLUMNS` first."""
    import pandas as pd

    frame = pd.DataFrame([{k: v for k, v in r.items() if k not in ("settings", "settings_key")}
                          for r in records])
    first = [c for c in COLUMNS if c in frame]
    frame = frame[first + [c for c in frame if c not in first]]
    for column in ABBREVIATIONS:  # sizes stay integers where a trial (AutoKeras) has none
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    return frame.sort_values("val_loss").reset_index(drop=True)


def hiplot_experiment(records, columns=None):
    """A HiPlot parallel-coordinates experiment of the trial records (one line per trial)."""
    import hiplot as hip

    records = list(records)
    if not records:
        raise InputError("no trial records to show")
    keep = [c for c in (columns or COLUMNS) if any(c in r for r in records)]
    experiment = hip.Experiment.from_iterable([{c: r.get(c) for c in keep} for r in records])
    experiment.display_data(hip.Displays.PARALLEL_PLOT).update(
        {"order": [c for c in keep if c not in ("trial", "model")] + ["trial"]})
    experiment.display_data(hip.Displays.TABLE).update({"order_by": [["val_loss", "asc"]]})
    experiment.colorby = "val_loss"
    if "parameters" in experiment.parameters_definition:
        experiment.parameters_definition["parameters"].type = hip.ValueType.NUMERIC_LOG
    return experiment


def save_html(experiment, path) -> Path:
    """Write a HiPlot experiment as a standalone HTML page (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path, force=True) as tmp:
        experiment.to_html(str(tmp))
    return path


def pareto_front(records) -> "pd.DataFrame":
    """Trials no other trial beats on both size and score (fewer parameters and a lower
    ``val_loss``), smallest first."""
    frame = table(records).sort_values(["parameters", "val_loss"]).reset_index(drop=True)
    best_so_far, keep = float("inf"), []
    for k, row in frame.iterrows():
        if row["val_loss"] < best_so_far:
            keep.append(k)
            best_so_far = row["val_loss"]
    return frame.loc[keep].reset_index(drop=True)


def best_per_parameter(records, tolerance: float = 0.05, model: str | None = "xception"):
    """The configuration with the best accuracy per parameter: the smallest trial (of
    ``model``, or of any model when None) whose ``val_loss`` is at most ``(1 + tolerance)``
    times the best such trial's; a pandas Series."""
    if not 0 <= tolerance < 10:
        raise InputError(f"tolerance = {tolerance} must be in [0, 10)")
    frame = table(records)
    if model is not None:
        frame = frame[frame["model"] == model]
        if frame.empty:
            raise InputError(f"no trials of model {model!r} among the records")
    limit = frame["val_loss"].min() * (1 + tolerance)
    within = frame[frame["val_loss"] <= limit]
    return within.sort_values(["parameters", "val_loss"]).iloc[0]


def comparison(records, tolerance: float = 0.05, reference: str = "autokeras_pick"):
    """The grid's pick (`best_per_parameter`), the grid's most accurate trial and the trial
    named ``reference`` (the AutoKeras pick) side by side: parameters, validation score and
    training time, and each one's size and score relative to the reference."""
    import pandas as pd

    frame = table(records)
    rows = {"grid: best accuracy per parameter": best_per_parameter(records, tolerance),
            "grid: best score": frame[frame["model"] == "xception"].iloc[0]}
    if reference in set(frame["trial"]):
        rows["AutoKeras pick"] = frame[frame["trial"] == reference].iloc[0]
    out = pd.DataFrame(rows).T[["trial", "parameters", "val_loss", "training_seconds"]]
    out = out.astype({"parameters": int, "val_loss": float, "training_seconds": float})
    if "AutoKeras pick" in out.index:
        ref = out.loc["AutoKeras pick"]
        out["parameters / AutoKeras"] = out["parameters"] / ref["parameters"]
        out["val_loss / AutoKeras"] = out["val_loss"] / ref["val_loss"]
    return out
