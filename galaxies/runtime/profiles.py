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

from .errors import InputError

ROOT = Path(os.environ.get("GALAXIES_ROOT", Path(__file__).resolve().parents[2]))
DEFAULT_PROFILE = "quick"


#: the test sets every estimator is evaluated on (fixed galaxies first, then the random set):
#: the original study's galaxy at two noise levels, a compact and an extended galaxy under other PSFs and
#: noise levels (`galaxies.simulation.recipes.RECIPES` says why each), and random galaxies like v1
TESTSETS = ("snr60", "snr30", "compact", "extended", "test")
#: the random-parameter test set, and the fixed-galaxy ones (many noise realizations of one galaxy)
RANDOM_TESTSET = "test"
FIXED_TESTSETS = tuple(t for t in TESTSETS if t != RANDOM_TESTSET)

#: The original study's denoisers: EDSR 16 blocks x 256 filters (19.5 M parameters), RDN 20 blocks of
#: 6 layers, growth 32 (5.5 M), both at full resolution.

SEED_DENOISERS = {
    "edsr": dict(blocks=16, filters=256, res_scale=0.1, downscale=1),
    "rdn": dict(blocks=20, layers_per_block=6, growth=32, features=64, downscale=1),
}


@dataclass(frozen=True)
class Profile:
    """Sizes and paths of one profile. Paths are absolute, under the repository root."""

    name: str
    #: rows per data set, by recipe name (see `galaxies.simulation.recipes.RECIPES`)
    sizes: dict[str, int]
    #: Sérsic indices of the training sets: this many equally spaced values in [0.5, 6]
    sersics: int
    #: Xception estimator training
    epochs: int
    batch_size: int = 128
    patience: int = 5
    #: maximum-likelihood fits per fixed-galaxy test set (`FIXED_TESTSETS`, ~0.2-0.5 s an
    #: image); the refinements run on the same rows
    fit_limit: int = 200
    #: maximum-likelihood fits of the random `test` set (its large galaxies cost about twice)
    fit_limit_random: int = 100
    #: Cramér–Rao bounds computed per galaxy of a random-parameter set
    crb_limit: int = 500
    #: galaxies whose posterior under a training prior is computed (`galaxies.inference.posterior_sets`,
    #: about a second each): the first of each fixed-galaxy set, and of the random one
    posterior_limit: int = 200
    posterior_limit_random: int = 500
    #: denoisers (`galaxies.evaluation.experiments.denoise`), trained on v1a: network sizes by name (the builders'
    #: keyword arguments, `galaxies.networks.models.denoisers`), epochs, batch size, rows of v1a
    denoiser_sizes: dict = field(default_factory=lambda: dict(SEED_DENOISERS))
    denoiser_epochs: int = 20
    denoiser_batch_size: int = 32
    denoiser_patience: int = 5
    denoiser_limit: int | None = None
    #: the Xception trained on denoised v1 images: rows and epochs (None: as the plain one)
    denoised_limit: int | None = None
    denoised_epochs: int | None = None
    #: autoencoder (`galaxies.networks.models.autoencoder`), trained on v1: rows (None: all), epochs,
    #: batch size, weight of the image term of the loss, encoder sizes (Xception builder
    #: keywords) and decoder width
    autoencoder_limit: int | None = None
    autoencoder_epochs: int = 50
    autoencoder_batch_size: int = 128
    autoencoder_image_weight: float = 1.0
    autoencoder_encoder: dict = field(default_factory=lambda: dict(
        entry_filters=16, block_filters=64, blocks=8, exit_filters=128))
    autoencoder_decoder_filters: int = 32
    #: AutoKeras search (`galaxies.evaluation.experiments.autokeras`): rows of v1 searched on, trials and
    #: epochs per trial for each image variant, block types searched and the ConvBlock's
    #: choices (keyword -> list of choices, or one fixed value; the others keep AutoKeras's
    #: defaults); then the best is retrained on v1 (rows: None for all) for these epochs
    autokeras_rows: int = 2000
    autokeras_trials: int = 20
    autokeras_epochs: int = 10
    autokeras_variants: tuple = ("noisy", "noiseless")
    autokeras_blocks: tuple = ("vanilla", "resnet", "xception")
    autokeras_conv: dict = field(default_factory=lambda: dict(filters=[16, 32, 64, 128, 256, 512]))
    autokeras_retrain_limit: int | None = None
    autokeras_retrain_epochs: int = 50
    #: batch size of the search's trials (None: ``batch_size``); small subsets need small
    #: batches to take enough steps
    autokeras_batch_size: int | None = None
    #: Xception hyper-parameter grid search (`galaxies.evaluation.experiments.gridsearch`): rows of v1, epochs per
    #: trial, and the grid (builder keyword -> values; unlisted keywords keep their defaults)
    gridsearch_rows: int = 2000
    gridsearch_epochs: int = 10
    gridsearch_batch_size: int | None = None  # None: ``batch_size``
    gridsearch_grid: dict = field(default_factory=lambda: dict(
        entry_filters=[16], block_filters=[16, 32, 64], blocks=[2, 4, 8], exit_filters=[64, 128]))
    #: Xception estimators (`galaxies.evaluation.experiments.xception`, models/xception.ipynb): the variants the
    #: notebook trains, builder keywords for all of them (empty: the builder's defaults), the
    #: peak learning rate and the rows of each training set (None: all); epochs, batch size
    #: and patience are ``epochs``, ``batch_size`` and ``patience`` above
    xception_variants: tuple = ("xception_v1", "xception_v2", "xception_v3",
                                "xception-noiseless_v1", "xception-fresh_v3", "xception-nll_v3")
    xception_model: dict = field(default_factory=dict)
    xception_learning_rate: float = 3e-3
    xception_limit: int | None = None
    #: the project's recommended estimator, ``<estimator>_<trainset>``: one network for every
    #: PSF and noise level of the training recipes (fresh noise on v3); the README, the app's
    #: pages and ``galaxies predict`` without a model use it. It must be one of the variants.
    recommended: str = "xception-fresh_v3"
    #: the uncertainty network, ``<estimator>_<trainset>``: the recommended network with a
    #: head that predicts a standard deviation per label (``pred_std``), trained on its frozen
    #: layers after it (`galaxies.evaluation.experiments.xception`). It must be one of the
    #: variants.
    uncertainty: str = "xception-nll_v3"
    #: epochs of the recommended network (None: ``epochs``): where its learning curve still
    #: falls at ``epochs``, the budget's minutes are moved to it (docs/results.md). Given, it
    #: runs the whole cosine schedule: early stopping only keeps the best epoch's weights
    #: (`galaxies.evaluation.experiments.xception.config`)
    recommended_epochs: int | None = None
    #: the network the refinement starts from (`galaxies.inference.refine`, Project/refinement.ipynb),
    #: as ``<estimator>_<trainset>``, and the numbers of Gauss-Newton steps run from it
    refine_start: str = "xception_v1"
    refine_steps: tuple = (1, 2)
    #: rows per test set of the network-started L-BFGS-B fit (None: the fit's); it reaches the
    #: fit's accuracy at the fit's cost, so a few rows show it
    refine_fit_limit: int | None = None

    def fit_rows(self, testset: str) -> int:
        """Rows of ``testset`` the maximum-likelihood fit and the refinements cover: the first
        ``fit_limit`` of a fixed-galaxy set, ``fit_limit_random`` of the random one."""
        if testset not in TESTSETS:
            raise InputError(f"unknown test set {testset!r}; choose from {', '.join(TESTSETS)}")
        return self.fit_limit_random if testset == RANDOM_TESTSET else self.fit_limit

    def posterior_rows(self, testset: str) -> int:
        """Rows of ``testset`` whose posterior is the networks' reference
        (`galaxies.inference.posterior_sets`): the first ``posterior_limit`` of a fixed-galaxy set,
        ``posterior_limit_random`` of the random one."""
        if testset not in TESTSETS:
            raise InputError(f"unknown test set {testset!r}; choose from {', '.join(TESTSETS)}")
        return self.posterior_limit_random if testset == RANDOM_TESTSET else self.posterior_limit

    @property
    def recommended_dir(self) -> Path:
        """The recommended estimator's model directory."""
        estimator, trainset = self.recommended.rsplit("_", 1)
        return self.model_dir(estimator, trainset)

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
        sizes=dict(v1=256, v2=256, v3=256, v1a=128, test=128, snr60=64, snr30=64,
                   compact=64, extended=64),
        sersics=16, epochs=1, batch_size=64, patience=1, fit_limit=4,
        fit_limit_random=4, crb_limit=8, posterior_limit=4, posterior_limit_random=8,
        denoiser_sizes={"edsr": dict(blocks=2, filters=8, downscale=2),
                        "rdn": dict(blocks=2, layers_per_block=2, growth=8, features=8, downscale=2)},
        denoiser_epochs=1, denoiser_batch_size=32, denoiser_patience=1,
        autoencoder_epochs=1, autoencoder_batch_size=64, autoencoder_decoder_filters=4,
        autoencoder_encoder=dict(entry_filters=4, block_filters=8, blocks=1, exit_filters=8),
        autokeras_rows=128, autokeras_trials=1, autokeras_epochs=1, autokeras_blocks=("vanilla",),
        autokeras_conv=dict(filters=[8, 16], kernel_size=[3, 5], max_pooling=True),
        autokeras_retrain_epochs=1, autokeras_batch_size=32,
        gridsearch_rows=128, gridsearch_epochs=1, gridsearch_batch_size=32,
        gridsearch_grid=dict(entry_filters=[4], block_filters=[4, 8], blocks=[1], exit_filters=[8]),
        xception_variants=("xception_v1", "xception_v2", "xception_v3", "xception-psfimg_v3",
                           "xception-noiseless_v1", "xception-fresh_v3", "xception-nll_v3"),
    ),
    "quick": Profile(
        name="quick",
        # 120 fits (and refinements) on each of the four fixed sets: 480, against 400 when two
        # sets had 200; the new galaxies fit faster than snr60's (0.31-0.48 s against 0.73 s an
        # image on one shared core)
        # v3 holds 16,000 galaxies: the recommended network learns more from new galaxies than
        # from new noise on the same ones (50 epochs on 16,000 against 100 on 8,000, the same
        # cost; benchmarks/levers.py, docs/results.md)
        sizes=dict(v1=8000, v2=2000, v3=16000, v1a=2000, test=2000, snr60=1000, snr30=1000,
                   compact=1000, extended=1000),
        sersics=200, epochs=12, batch_size=128, patience=4, fit_limit=120,
        fit_limit_random=100, crb_limit=300, refine_fit_limit=30,
        # the fixed sets' posteriors on 48 realizations each (60 before 2026-12-06), for the
        # 40-minute budget (docs/running.md)
        posterior_limit=48, posterior_limit_random=120,
        denoiser_sizes={"edsr": dict(blocks=4, filters=32, res_scale=0.1, downscale=2),
                        "rdn": dict(blocks=3, layers_per_block=3, growth=16, features=24, downscale=2)},
        denoiser_epochs=2, denoiser_batch_size=32, denoiser_patience=2, denoiser_limit=1800,
        denoised_limit=1800, denoised_epochs=3,
        autoencoder_limit=2700, autoencoder_epochs=4, autoencoder_batch_size=64,
        autoencoder_decoder_filters=8,
        autoencoder_encoder=dict(entry_filters=8, block_filters=32, blocks=4, exit_filters=64),
        autokeras_rows=600, autokeras_trials=2, autokeras_epochs=3, autokeras_blocks=("vanilla",),
        autokeras_conv=dict(filters=[16, 32], kernel_size=[3, 5], max_pooling=True),
        autokeras_retrain_limit=4000, autokeras_retrain_epochs=3, autokeras_batch_size=32,
        gridsearch_rows=2000, gridsearch_epochs=3, gridsearch_batch_size=32,
        gridsearch_grid=dict(entry_filters=[16], block_filters=[16, 32], blocks=[2, 4],
                             exit_filters=[64]),
        # for the 40-minute budget, v2's network (the recommended v3 network serves every noise
        # level), the noiseless floor and (since 2026-12-06) the fixed-noise ablation
        # xception_v3 are left to the smoke and full profiles (docs/results.md keeps the
        # ablation's quick figures); v2 and v1a are smaller (v2 only feeds the EDA, v1a the
        # denoisers' 1,800 rows)
        xception_variants=("xception_v1", "xception-fresh_v3", "xception-nll_v3"),
        # the recommended network's validation loss still falls at 12 epochs and 24 cut its
        # normalized flux error on test by a quarter (benchmarks/learning_curves.py,
        # docs/benchmarks.md): the minutes come from the denoisers (3 -> 2 epochs), the
        # autoencoder (8 -> 6 -> 4), the grid search (8 -> 5 -> 3), the search's trials
        # (3 -> 2) and the denoised images' network (4 -> 3 epochs); read at 48 x 48, 36 epochs cost
        # what 24 did at 64 x 64 and help again, and run to the schedule's end again; with the
        # uncertainty network a head on it (no second long network), 50 epochs on twice the
        # galaxies; 80 bring it closer to the posterior mean on every fixed set, in three seeds
        # (benchmarks/levers.py, docs/benchmarks.md), for 4 of the 40 minutes
        recommended_epochs=80,
    ),
    "full": Profile(
        name="full",
        sizes=dict(v1=200_000, v2=200_000, v3=200_000, v1a=200_000, test=10_000,
                   snr60=10_000, snr30=10_000, compact=10_000, extended=10_000),
        sersics=1000, epochs=100, batch_size=256, patience=10, fit_limit=1000,
        fit_limit_random=1000, crb_limit=2000, posterior_limit=1000,
        posterior_limit_random=2000,
        denoiser_sizes=SEED_DENOISERS, denoiser_epochs=20, denoiser_batch_size=32,
        denoiser_patience=5,
        autoencoder_epochs=100, autoencoder_batch_size=256,
        autokeras_rows=10_000, autokeras_trials=30, autokeras_epochs=20,
        autokeras_retrain_epochs=100, gridsearch_rows=20_000, gridsearch_epochs=30,
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
            raise InputError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}")
        profile = PROFILES[name]
    return replace(profile, **overrides) if overrides else profile
