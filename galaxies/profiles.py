"""Run profiles: every data size, epoch count and output path in one place.

* ``smoke``: tests and CI. Tiny sets and one epoch; the whole notebook chain runs in minutes.
* ``quick``: the default of ``make run``: a CPU laptop end to end in well under an hour.
* ``full``:  the paper's scale (200,000 images a training set), for a GPU machine.

Choose one with ``GALAXIES_PROFILE`` or pass its name (notebooks get it from papermill).
Nothing else in the project hard-codes a size.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(os.environ.get("GALAXIES_ROOT", Path(__file__).resolve().parents[1]))
DEFAULT_PROFILE = "quick"


@dataclass(frozen=True)
class Profile:
    """Sizes and paths of one profile. Paths are absolute, under the repository root."""

    name: str
    #: rows per data set, by recipe name (see `galaxies.generate.RECIPES`)
    sizes: dict[str, int]
    #: Sérsic indices of the training sets: this many equally spaced values in [0.5, 6]
    sersics: int
    #: Xception estimator training
    epochs: int
    batch_size: int = 128
    patience: int = 5
    #: maximum-likelihood fits per test set (the fit costs ~0.1-0.5 s an image)
    fit_limit: int = 200
    #: Cramér–Rao bounds computed per galaxy of a random-parameter set
    crb_limit: int = 500
    #: per-estimator settings that later parts of the project read, by estimator name
    extra: dict = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return ROOT / "data" / self.name

    @property
    def models_dir(self) -> Path:
        return ROOT / "models" / self.name

    @property
    def results_dir(self) -> Path:
        return ROOT / "results" / self.name

    @property
    def predictions_dir(self) -> Path:
        return self.results_dir / "predictions"

    def dataset(self, recipe: str) -> Path:
        """Path of the data set built from ``recipe`` under this profile."""
        return self.data_dir / f"{recipe}.h5"

    def model_dir(self, estimator: str, dataset: str) -> Path:
        return self.models_dir / f"{estimator}_{dataset}"

    def predictions(self, estimator: str, dataset: str, testset: str) -> Path:
        return self.predictions_dir / f"{estimator}_{dataset}__{testset}.h5"


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        sizes=dict(v1=256, v2=256, v3=256, v1a=128, test=128, snr60=64, snr30=64),
        sersics=16, epochs=1, batch_size=64, patience=1, fit_limit=4, crb_limit=8,
    ),
    "quick": Profile(
        name="quick",
        sizes=dict(v1=8000, v2=8000, v3=8000, v1a=4000, test=2000, snr60=1000, snr30=1000),
        sersics=200, epochs=12, batch_size=128, patience=4, fit_limit=200, crb_limit=300,
    ),
    "full": Profile(
        name="full",
        sizes=dict(v1=200_000, v2=200_000, v3=200_000, v1a=200_000, test=10_000,
                   snr60=10_000, snr30=10_000),
        sersics=1000, epochs=100, batch_size=256, patience=10, fit_limit=1000, crb_limit=2000,
    ),
}


def get(name: str | Profile | None = None, **overrides) -> Profile:
    """The profile called ``name`` (default: ``$GALAXIES_PROFILE``, else ``quick``).

    Keyword arguments replace fields, e.g. ``get("smoke", epochs=3)``.
    """
    if isinstance(name, Profile):
        profile = name
    else:
        name = name or os.environ.get("GALAXIES_PROFILE") or DEFAULT_PROFILE
        if name not in PROFILES:
            raise ValueError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}")
        profile = PROFILES[name]
    return replace(profile, **overrides) if overrides else profile
