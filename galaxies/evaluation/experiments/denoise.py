"""The denoising experiments (``experiments/denoising/``): EDSR and RDN, then the CNN.

Following Madireddy et al. (2019), a denoising network first maps a noisy image to an estimate
of the noiseless one, and the Xception estimator is then trained and evaluated on denoised
images. This module

* trains a denoiser on the separate set ``v1a`` (noisy -> noiseless; never on a set the
  estimators are evaluated on) with the profile's sizes (`train_denoiser`, `load_denoiser`;
  the denoiser itself is `galaxies.networks.training.denoiser`), on the fresh-noise stream: a new
  noisy draw of each noiseless v1a image at every showing, the noiseless image the target;
* measures it: PSNR and SSIM of noisy and of denoised images against the noiseless ones
  (`quality_table`, from `galaxies.evaluation.image_quality`) and its throughput;
* runs the two-stage estimator: the Xception trained on the denoised v1 set
  (``models/<profile>/<denoiser>-xception_v1/``, `train_two_stage`, whose directory refers to
  its denoiser), its predictions on the test sets (`predict_two_stage`, through
  `galaxies.evaluation.estimators`), a control trained like it (`train_control`) and the comparison with the
  plain Xception against the Cramér–Rao bound (`compare`, `rmse_change`).

The two-stage Xception and its control train on **fixed** images (the denoised, respectively
the noisy, v1 images), not on the fresh-noise stream: fixed images are denoised once, fresh
ones would need a denoiser pass over every batch at every step. The plain Xception trains on
the stream, so the control (`needs_control`) is what the two-stage estimators are compared with.

One notebook per experiment, parameterized by ``denoiser``: ``denoiser.ipynb`` (train and
measure one denoiser) and ``two_stage.ipynb`` (the denoiser, then the CNN).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from galaxies.conventions import LABEL_COLUMNS
from galaxies.networks import training
from galaxies.networks.models.denoisers import BUILDERS
from galaxies.networks.training import SavedModel, TrainingConfig, read_info
from galaxies.networks.training.denoiser import Denoiser, DenoiserConfig
from galaxies.runtime import profiles
from galaxies.runtime.profiles import TESTSETS
from galaxies.storage import files

from .. import evaluate, image_quality, testsets as testsets_module
from ..estimators import denoiser_reference

__all__ = ["DENOISERS", "TRAINED_ON", "Denoiser", "DenoiserConfig", "train_denoiser",
           "load_denoiser", "quality_table", "two_stage_name", "estimator_config", "CONTROL",
           "needs_control", "train_control", "train_two_stage", "predict_two_stage", "compare",
           "rmse_change", "results_path"]

#: the denoisers of the experiment (names of `galaxies.networks.models.denoisers.BUILDERS`)
DENOISERS = tuple(BUILDERS)
TRAINED_ON = "v1a"  # the denoisers' own training set


def train_denoiser(name: str, profile=None, verbose="auto", **overrides) -> Denoiser:
    """Train denoiser ``name`` (``edsr`` or ``rdn``) on the profile's v1a set with the
    profile's sizes, on the fresh-noise stream (``noise="fixed"``: the set's noisy images),
    and save it to ``models/<profile>/<name>_v1a``."""
    profile = profiles.get(profile)
    config = DenoiserConfig.from_profile(profile, name, **overrides)
    from galaxies.networks.training.denoiser import fit
    return fit(config, profile.dataset(TRAINED_ON), profile.model_dir(name, TRAINED_ON),
               verbose=verbose)


def load_denoiser(name: str, profile=None) -> Denoiser:
    """The trained denoiser ``name`` of a profile (``models/<profile>/<name>_v1a``)."""
    profile = profiles.get(profile)
    path = profile.model_dir(name, TRAINED_ON)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: denoiser {name!r} not trained under profile "
                                f"{profile.name} (run experiments/denoising/denoiser.ipynb with denoiser={name!r})")
    return Denoiser.load(path)


def quality_table(denoiser: Denoiser, profile=None, testsets=TESTSETS, batch_size: int = 64,
                  progress: bool = True) -> "pd.DataFrame":
    """`quality` of a denoiser on each test set of a profile, with its throughput.

    Rows: (test set, ``noisy`` | ``denoised``); columns ``psnr``, ``psnr_median`` [dB], ``ssim``,
    ``rmse`` [e-], ``n`` (images) and, on the denoised rows, ``images_per_second`` (the
    denoising of the set, timed after a warm-up batch, on this machine).
    """
    import pandas as pd

    profile = profiles.get(profile)
    tables = {}
    for testset in testsets:
        ds = files.load_dataset(profile.dataset(testset), fields=("img", "img_nonoise"))
        denoiser.denoise(ds.img[:batch_size], batch_size=batch_size, progress=False)  # warm-up
        start = time.perf_counter()
        denoised = denoiser.denoise(ds.img, batch_size=batch_size, progress=progress)
        speed = len(ds) / (time.perf_counter() - start)
        table = image_quality.quality(ds.img, denoised, ds.img_nonoise)
        table["n"] = len(ds)
        table["images_per_second"] = [np.nan, speed]
        tables[testset] = table
    return pd.concat(tables, names=["testset"])


# -------------------------------------------------------------------- two-stage pipeline

def two_stage_name(denoiser: str) -> str:
    """Estimator name of the two-stage pipeline, e.g. ``edsr-xception``."""
    return f"{denoiser}-xception"


def estimator_config(profile=None, **overrides):
    """The Xception `TrainingConfig` for denoised images: the profile's Xception settings with
    ``denoised_limit`` rows and ``denoised_epochs`` epochs when the profile sets them, on fixed
    images (the module's docstring says why)."""
    profile = profiles.get(profile)
    base = {"model": "xception", "noise": "fixed"}
    if profile.denoised_limit is not None:
        base["limit"] = profile.denoised_limit
    if profile.denoised_epochs is not None:
        base["epochs"] = profile.denoised_epochs
    return TrainingConfig.from_profile(profile, **{**base, **overrides})


CONTROL = "xception-control"


def needs_control(profile=None) -> bool:
    """Whether the profile trains the two-stage estimator otherwise than the plain Xception
    (``xception_v1``): on another budget (rows, epochs) or another noise (the plain one on the
    fresh-noise stream, the two-stage one on fixed images), so that a control trained like the
    two-stage estimator is needed for a fair comparison."""
    from .xception import config as xception_config
    profile = profiles.get(profile)
    return (profile.denoised_limit is not None or profile.denoised_epochs is not None
            or xception_config("xception_v1", profile).noise != estimator_config(profile).noise)


def train_control(profile=None, verbose="auto", force: bool = False,
                  when_needed: bool = True) -> SavedModel | None:
    """The plain Xception trained exactly like the two-stage estimators (same rows, epochs,
    seed, split and augmentation, fixed images) but on the noisy images, with its predictions
    on the test sets: estimator ``xception-control``. Its difference from a two-stage
    estimator is the denoiser's doing alone.

    An existing control is reused when its configuration and training-set recipe match and
    its predictions exist (both pipeline notebooks call this; the first one trains it).
    With ``when_needed`` (the default) nothing is trained, and None returned, when the profile
    trains the two-stage estimator like the plain Xception (`needs_control`).
    """
    profile = profiles.get(profile)
    if when_needed and not needs_control(profile):
        return None
    config = estimator_config(profile)
    path = profile.model_dir(CONTROL, "v1")
    outputs = [profile.predictions(CONTROL, "v1", t) for t in TESTSETS]
    info = read_info(path)
    wanted = json.loads(json.dumps(asdict(config), default=str))
    if (not force and info.get("config") == wanted and all(p.is_file() for p in outputs)
            and info.get("recipe") == files.dataset_info(profile.dataset("v1"))["recipe"]):
        return SavedModel.load(path)
    ds = files.load_dataset(profile.dataset("v1"), fields=("img",), rows=config.limit)
    model = training.fit(config, ds, path, estimator=CONTROL, verbose=verbose)
    testsets_module.predict(model, profile)
    return model


def train_two_stage(denoiser: str, profile=None, verbose="auto", progress: bool = True,
                    **overrides) -> SavedModel:
    """Denoise the v1 training set with the trained ``denoiser`` and train the Xception
    estimator on the result; saved to ``models/<profile>/<denoiser>-xception_v1``."""
    profile = profiles.get(profile)
    den = load_denoiser(denoiser, profile)
    config = estimator_config(profile, **overrides)
    ds = files.load_dataset(profile.dataset("v1"), fields=("img",), rows=config.limit)
    denoised = den.denoise(ds.img, progress=progress)
    name = two_stage_name(denoiser)
    path = profile.model_dir(name, "v1")
    model = training.fit(config, ds, images=denoised, name=path.name, estimator=name,
                         verbose=verbose)
    model.info["denoiser"] = denoiser_reference(path, den.path)  # loading follows it
    model.save(path)
    return model


def predict_two_stage(denoiser: str, profile=None, testsets=TESTSETS) -> dict[str, Path]:
    """Predictions of the two-stage estimator on each test set (`galaxies.evaluation.estimators.TwoStage`:
    the model directory brings its denoiser), written to
    ``profile.predictions("<denoiser>-xception", "v1", testset)``. ``seconds_per_image`` is the
    whole pipeline's time, denoising included."""
    profile = profiles.get(profile)
    model_dir = profile.model_dir(two_stage_name(denoiser), "v1")
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: the {two_stage_name(denoiser)} estimator is not "
                                f"trained under profile {profile.name}")
    return testsets_module.predict(model_dir, profile, testsets=testsets)


def compare(profile=None, denoisers=DENOISERS, testsets=TESTSETS, baseline: str = "xception",
            with_crb: bool = True) -> "pd.DataFrame":
    """RMSE (and RMSE / CRB) of the plain Xception, of its same-budget control (when trained,
    see `train_control`) and of each two-stage estimator on each test set, from their saved
    predictions.

    Rows: (test set, estimator, parameter), columns those of `galaxies.evaluation.evaluate.against_crb`
    (or `summary` when ``with_crb`` is false) plus ``train_rows`` and ``epochs_run`` of the
    estimator (from its ``training.json``), so unequal training budgets are visible.
    Estimators without predictions are left out.
    """
    import pandas as pd

    profile = profiles.get(profile)
    estimators = [baseline, CONTROL] + [two_stage_name(d) for d in denoisers]
    tables = {}
    for testset in testsets:
        data_path = profile.dataset(testset)
        bounds = None
        for estimator in estimators:
            path = profile.predictions(estimator, "v1", testset)
            if not path.is_file():
                continue
            ds = files.load_dataset(data_path, fields=())
            if with_crb and bounds is None:
                bounds = testsets_module.crb(profile, testset)
            table = (evaluate.against_crb(path, ds, bounds) if bounds is not None
                     else evaluate.summary(path, ds))
            info = read_info(profile.model_dir(estimator, "v1"))
            table["train_rows"] = info.get("train_rows", np.nan)
            table["epochs_run"] = info.get("epochs_run", np.nan)
            tables[(testset, estimator)] = table
    if not tables:
        return pd.DataFrame()
    return pd.concat(tables, names=["testset", "estimator"])


def rmse_change(table, baseline: str | None = None) -> "pd.DataFrame":
    """Relative change of the RMSE of each estimator against ``baseline`` in a `compare` table,
    in percent (negative: lower RMSE than the baseline). The default baseline is the
    same-budget control when the table has it, else the plain Xception. Rows: (test set,
    estimator), columns: the parameters."""
    import pandas as pd

    order = list(dict.fromkeys(table.index.droplevel("parameter")))  # keep the table's order
    rmse = table["rmse"].unstack("parameter").reindex(index=order, columns=list(LABEL_COLUMNS))
    if baseline is None:
        present = set(rmse.index.get_level_values("estimator"))
        baseline = CONTROL if CONTROL in present else "xception"
    out = {}
    for (testset, estimator), row in rmse.iterrows():
        if estimator != baseline and (testset, baseline) in rmse.index:
            out[(testset, estimator)] = 100.0 * (row / rmse.loc[(testset, baseline)] - 1.0)
    frame = pd.DataFrame.from_dict(out, orient="index")
    if len(frame):
        frame.index = pd.MultiIndex.from_tuples(frame.index, names=["testset", "estimator"])
    return frame


def results_path(profile, filename: str) -> Path:
    """``results/<profile>/denoising/<filename>`` (the folder is created)."""
    folder = profiles.get(profile).results_dir / "denoising"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / filename
