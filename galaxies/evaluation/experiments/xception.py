"""The Xception experiment (``models/xception.ipynb``): the variants, what each is trained on.

Each variant is a model directory ``models/<profile>/<estimator>_<trainset>/`` and, for every
test set, a predictions file ``results/<profile>/predictions/<estimator>_<trainset>__<testset>.h5``:

Every variant but one is trained on the fresh-noise stream (`galaxies.networks.training.noise`): new
noise on the training set's noiseless images at every showing, the read noise either the
set's own (v1: sigma 200) or drawn per image in [200, 400] and given to the network.
``xception_v3`` is the original study's way, fixed noisy images, kept as the named ablation of the
recommended ``xception-fresh_v3`` on the same set and budget.

=========================  =========  ==========================================================
name                       train set  what it is
=========================  =========  ==========================================================
``xception_v1``            v1         fixed PSF (0.5") and noise (sigma 200): the main estimator
``xception_v2``            v2         noise sigma drawn in [200, 400] per showing; sigma known
``xception_v3``            v3         PSF FWHM and sigma vary, both known; **fixed** noisy
                                      images (the original study's way): the ablation of
                                      ``xception-fresh_v3``
``xception-psfimg_v3``     v3         PSF image as a second image channel, sigma drawn and known
``xception-noiseless_v1``  v1         trained and evaluated on the noiseless images (the floor)
``xception-nll_v3``        v3         the recommended network below, its layers frozen, with a
                                      head that predicts a standard deviation per label
                                      (pred_std; `galaxies.networks.training.uncertainty_head`):
                                      the profiles' uncertainty network
                                      (`galaxies.runtime.profiles.Profile.uncertainty`)
``xception-fresh_v3``      v3         fresh noise on v3 (PSF FWHM in [0.5", 1"] and sigma drawn
                                      in [200, 400], both known): one network for every PSF
                                      and noise level of the recipes, the profiles'
                                      recommended estimator (`galaxies.runtime.profiles.Profile.recommended`);
                                      flux, n and r learned as their logarithms, the
                                      central 48 x 48 pixels read, the flux's squared
                                      error weighed four times the others'
=========================  =========  ==========================================================

Sigma and the PSF are known for real surveys (measured from the background and from stars), so
giving them to the network is fair; the noise level could also be read off the image's
background, the PSF hardly. Sizes, epochs and which variants run come from the profile
(``epochs``, ``batch_size``, ``patience``, ``xception_*``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from galaxies.runtime import profiles
from galaxies.runtime.errors import InputError
from galaxies.runtime.profiles import TESTSETS


@dataclass(frozen=True)
class Variant:
    """One trained estimator: its file names and its `galaxies.networks.training.TrainingConfig` options."""

    estimator: str
    trainset: str
    description: str
    options: dict = field(default_factory=dict)
    #: the variant whose frozen layers this one's standard-deviation head is trained on
    #: (None: a network of its own); it must be trained first, and its recipe is the head's
    #: (``options`` then only add to it)
    head_on: str | None = None

    @property
    def name(self) -> str:
        return f"{self.estimator}_{self.trainset}"


#: fresh noise with each row's own read noise, or with sigma drawn per image and known
_FRESH = {"noise": "fresh"}
_FRESH_SIGMA = {"noise": "fresh", "noise_sigma": (200.0, 400.0)}
#: the recommended recipe's levers (benchmarks/levers.py; docs/results.md): flux, n and r
#: learned as logarithms, and the central 48 x 48 pixels (as good, and cheaper); the fixed-noise
#: ablation ``xception_v3`` takes them too, so that the two differ in the noise (and epochs)
_LEVERS = {"log_labels": ("flux", "sersic_n", "sersic_r"), "crop": 48}
#: the flux's squared error weighed four times the others': with equal weights the flux, the
#: best-measured label (its bound a small part of its standardized range), holds a small share
#: of the loss and is hardly asked for more (benchmarks/levers.py, lever ``flux-x4``;
#: docs/results.md has the measured shares and gains)
_LABEL_WEIGHTS = {"label_weights": (4.0, 1.0, 1.0, 1.0, 1.0)}
#: the recommended recipe: fresh noise at a drawn sigma, the PSF FWHM and sigma known, the
#: levers, the flux weighed up
_RECOMMENDED = {"conditioning": ("psf_fwhm", "sigma"), **_FRESH_SIGMA, **_LEVERS, **_LABEL_WEIGHTS}

VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("xception", "v1", "fixed PSF and noise level; fresh noise", _FRESH),
    Variant("xception", "v2", "noise level drawn in [200, 400] and known; fresh noise",
            {"conditioning": ("sigma",), **_FRESH_SIGMA}),
    Variant("xception", "v3", "PSF and noise vary, PSF FWHM and sigma known; fixed noisy images "
            "(the original study's way, the ablation of xception-fresh_v3)",
            {"conditioning": ("psf_fwhm", "sigma"), **_LEVERS}),
    Variant("xception-psfimg", "v3", "PSF and noise vary; PSF image as a channel, sigma known; "
            "fresh noise", {"psf_channel": True, "conditioning": ("sigma",), **_FRESH_SIGMA}),
    Variant("xception-noiseless", "v1", "noiseless images", {"inputs": "noiseless"}),
    Variant("xception-nll", "v3", "the recommended network's frozen layers with a head that "
            "predicts a standard deviation per label", {"uncertainty": True, "label_weights": None},
            head_on="xception-fresh_v3"),
    Variant("xception-fresh", "v3", "fresh noise at every showing, PSF FWHM known, sigma drawn in "
            "[200, 400] and known; flux, n, r learned as logarithms; the central 48 x 48 pixels; "
            "the flux's squared error weighed four times",
            _RECOMMENDED),
]}


def variant(name: str) -> Variant:
    """The variant called ``name`` (e.g. ``"xception_v2"``)."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise InputError(f"unknown Xception variant {name!r}; choose from {', '.join(VARIANTS)}") from None


def config(name: str, profile=None, **overrides):
    """The `galaxies.networks.training.TrainingConfig` of a variant under a profile.

    The recommended variant takes the profile's ``recommended_epochs``, where set, and runs
    the whole cosine schedule (patience = epochs; the best epoch's weights
    are still the ones kept): mid-schedule, at a high learning rate, the validation loss rises
    and falls by the step's noise, and early stopping with the profile's patience halts a long
    schedule long before its learning rate has decayed (docs/results.md; benchmarks/levers.py,
    lever ``no-early-stop``)."""
    from galaxies.networks.training import TrainingConfig
    profile = profiles.get(profile)
    v = variant(name)
    recipe = v.options if v.head_on is None else {**variant(v.head_on).options, **v.options}
    epochs = profile.recommended_epochs
    budget = {"epochs": epochs, "patience": epochs} if name == profile.recommended and epochs else {}
    return TrainingConfig.from_profile(profile, **{"model": "xception", **recipe, **budget,
                                                   **overrides})


def model_dir(name: str, profile=None) -> Path:
    v = variant(name)
    return profiles.get(profile).model_dir(v.estimator, v.trainset)


def train(name: str, profile=None, verbose=2, **overrides):
    """Train a variant on its training set under ``profile`` and save it to `model_dir`; a
    variant with ``head_on`` trains its head on that variant's trained model. Keyword arguments
    replace `galaxies.networks.training.TrainingConfig` fields. Returns the
    `galaxies.networks.training.SavedModel`."""
    from galaxies.networks.training import fit
    profile = profiles.get(profile)
    v = variant(name)
    return fit(config(name, profile, **overrides), profile.dataset(v.trainset),
               model_dir(name, profile), estimator=v.estimator, verbose=verbose,
               base=head_base(name, profile))


def head_base(name: str, profile=None):
    """The trained model a head variant's head sits on (`Variant.head_on`, as trained under
    ``profile``), or None for a network of its own."""
    v = variant(name)
    return None if v.head_on is None else load(v.head_on, profile)


def predict(name: str, profile=None, testsets=TESTSETS) -> dict[str, Path]:
    """Write a trained variant's predictions on each test set; returns the files by test set.
    A noiseless variant reads the test sets' noiseless images."""
    from .. import testsets as testsets_module
    profile = profiles.get(profile)
    v = variant(name)
    return testsets_module.predict(model_dir(name, profile), profile, testsets=testsets,
                                   name=v.estimator, trainset=v.trainset)


def load(name: str, profile=None):
    """The trained variant as a `galaxies.networks.training.SavedModel`."""
    from galaxies.networks.training import SavedModel
    path = model_dir(name, profile)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: {name} is not trained under profile "
                                f"{profiles.get(profile).name} (run models/xception.ipynb)")
    return SavedModel.load(path)


def against_crb(names, profile=None, testsets=TESTSETS):
    """Bias, std, RMSE and their ratios to the CRB of each variant's predictions, indexed by
    (estimator, testset, parameter); variants without predictions are left out."""
    import pandas as pd

    from .. import testsets as testsets_module
    profile = profiles.get(profile)
    tables = {}
    for name in names:
        v = variant(name)
        try:
            tables[name] = testsets_module.against_crb(profile, v.estimator, v.trainset, testsets)
        except FileNotFoundError:
            continue
    if not tables:
        raise FileNotFoundError(f"no predictions of {', '.join(names)} under profile {profile.name}")
    return pd.concat(tables, names=["estimator"])
