"""benchmarks/levers.py: the orientation average (``--orientations``) of a network's estimates
and the mean of several seeds' networks (``--ensemble``)."""

import dataclasses
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from galaxies.networks.training import TrainingConfig
from galaxies.networks.training.stream import dihedral

from test_benchmarks import load_benchmark


class LopsidedNetwork:
    """Estimates from the image's moments (equivariant) plus pixels off the centre (not):
    flux the sum and a corner pixel, g1 and g2 the second moments and two other pixels."""

    trainset = "v3"
    config = TrainingConfig()

    def predict(self, images, psf_fwhm=None, sigma=None, psf_img=None):
        n = images.shape[-1]
        y, x = np.mgrid[:n, :n] - (n - 1) / 2
        total = images.sum(axis=(1, 2))
        qxx, qyy, qxy = ((images * w).sum(axis=(1, 2)) / total for w in (x * x, y * y, x * y))
        pred = np.stack([total + 3 * images[:, 0, 0], images[:, 1, 2], images[:, 3, 5],
                         qxx - qyy + images[:, 2, 7], 2 * qxy + 5 * images[:, 6, 1]], axis=1)
        return pred, np.abs(pred)


@pytest.fixture(scope="module")
def levers():
    return load_benchmark("levers")


def _dataset(images):
    return SimpleNamespace(img=images, psf_fwhm=np.full(len(images), 0.6),
                           sigma=np.full(len(images), 300.0))


def test_the_orientation_average_is_equivariant(levers):
    """The average of a network that is not equivariant is: turning the image turns its
    estimates (the shear's signs), and leaves flux, n and r."""
    rng = np.random.default_rng(1)
    images = rng.uniform(0.5, 2.0, size=(6, 8, 8))
    network = LopsidedNetwork()
    average = levers.OrientationAverage(network)
    base, base_std = average.predict_dataset(_dataset(images))
    for element in range(1, 8):
        turned, expected = dihedral(images, base, element)
        pred, std = average.predict_dataset(_dataset(turned))
        np.testing.assert_allclose(pred, expected, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(std, base_std, rtol=1e-10)
        # the network itself is not: the test would pass for any average if it were
        assert not np.allclose(network.predict(turned)[0], dihedral(images, network.predict(images)[0],
                                                                    element)[1])


def test_an_equivariant_network_is_its_own_average(levers):
    """On images symmetric under every orientation, the average's flux, n and r are the
    network's, and its shear is zero (what the network reads off the centre cancels)."""
    rng = np.random.default_rng(2)
    quarter = rng.uniform(0.5, 2.0, size=(3, 4, 4))
    quarter = (quarter + np.swapaxes(quarter, 1, 2)) / 2
    half = np.concatenate([quarter, quarter[:, :, ::-1]], axis=2)
    images = np.concatenate([half, half[:, ::-1]], axis=1)
    pred, _ = levers.OrientationAverage(LopsidedNetwork()).predict_dataset(_dataset(images))
    own, _ = LopsidedNetwork().predict(images)
    np.testing.assert_allclose(pred[:, :3], own[:, :3], rtol=1e-10)
    np.testing.assert_allclose(pred[:, 3:], 0.0, atol=1e-10)
    assert np.all(np.abs(own[:, 3:]) > 0.1)


class ShiftedNetwork:
    """A network whose every estimate is the image's sum plus its own offset, and whose
    ``pred_std`` is its offset's size: an ensemble's mean has the mean offset."""

    trainset = "v3"

    def __init__(self, offset, std=True):
        self.offset, self.std = offset, std

    def predict_dataset(self, ds):
        pred = ds.img.sum(axis=(1, 2))[:, None] + np.full((1, 5), self.offset)
        return pred, np.full_like(pred, abs(self.offset)) if self.std else None


def test_an_ensemble_is_the_mean_of_its_networks(levers):
    images = np.random.default_rng(3).uniform(0.0, 1.0, size=(4, 6, 6))
    ensemble = levers.Ensemble([ShiftedNetwork(o) for o in (-1.0, 0.5, 3.5)])
    pred, std = ensemble.predict_dataset(_dataset(images))
    np.testing.assert_allclose(pred, np.repeat(images.sum(axis=(1, 2))[:, None] + 1.0, 5, axis=1))
    np.testing.assert_allclose(std, 5.0 / 3)
    assert ensemble.trainset == "v3"
    _, none = levers.Ensemble([ShiftedNetwork(1.0), ShiftedNetwork(2.0, std=False)]).predict_dataset(
        _dataset(images))
    assert none is None


def test_an_ensemble_of_one_seed_is_refused(levers, capsys):
    with pytest.raises(SystemExit):
        levers.main(["--levers", "plain", "--seeds", "0", "0", "--ensemble", "--judge-only"])
    assert "--ensemble averages over seeds" in capsys.readouterr().err


def test_the_distance_by_bound_finds_a_floor_of_precision(levers):
    """An estimate 2% off in every galaxy is 2% off in every group of relative bound, and that
    is more bounds where the bound is tighter; the groups are ordered tightest first."""
    reference = np.tile([1e5, 2.0, 0.3, 0.1, -0.1], (40, 1))
    relative = np.r_[np.full(20, 0.05), np.full(20, 0.01)]
    bound = reference * relative[:, None]
    pred = reference * np.where(np.arange(40) % 2, 1.02, 0.98)[:, None]
    table = levers.distance_by_bound(pred, reference, bound, bins=2)
    assert set(table) == {"flux", "sersic_n", "sersic_r"}
    for (tight, rel_tight, bounds_tight), (loose, rel_loose, bounds_loose) in table.values():
        np.testing.assert_allclose([tight, loose], [0.01, 0.05])
        np.testing.assert_allclose([rel_tight, rel_loose], 0.02)
        np.testing.assert_allclose([bounds_tight, bounds_loose], [2.0, 0.4])


def test_a_levers_sizes_are_laid_over_the_profiles_architecture(levers, monkeypatch, tmp_path):
    """A lever that changes the builder's sizes keeps the profile's other sizes (a profile with
    a larger network trains the lever on that network, not on the builder's defaults)."""
    from galaxies.runtime import profiles

    seen = {}

    def train_variant(profile, variant, options, path):
        seen.update(options)
        return path

    monkeypatch.setitem(sys.modules, "loss_weighting",
                        SimpleNamespace(train_variant=train_variant))
    profile = dataclasses.replace(profiles.get("smoke"), xception_model={"blocks": 3, "block_filters": 32})
    levers.train(profile, "xception-fresh_v3", "linear-16", 0, tmp_path)
    assert seen["model_kwargs"] == {"blocks": 3, "block_filters": 32, "linear_features": 16}
    assert levers.LEVERS["linear-16"]["model_kwargs"] == {"linear_features": 16}  # left as it was


def test_offset_and_scatter_split_a_systematic_error_from_noise(levers):
    """Estimates 3% off each galaxy's truth (a sign per galaxy) plus noise of 1.5 bounds: the
    offset is 3% in every group and the scatter 1.5 bounds, whatever the bound."""
    rng = np.random.default_rng(0)
    n, r = 400, 400
    truth = np.column_stack([rng.uniform(1e4, 1e5, n), rng.uniform(0.5, 6, n), rng.uniform(0.1, 0.6, n),
                             np.zeros(n), np.zeros(n)])
    bound = truth * rng.uniform(0.02, 0.2, (n, 1))
    sign = rng.choice([-1.0, 1.0], n)[:, None]
    preds = truth * (1 + 0.03 * sign) + 1.5 * bound * rng.standard_normal((r, n, 5))
    cells = levers.offset_and_scatter(preds, truth, bound)
    for name in ("flux", "sersic_n", "sersic_r"):
        medians = [c[0] for c in cells[name]]
        assert medians == sorted(medians)  # tightest first
        for median, relative_offset, offset_in_bounds, scatter in cells[name]:
            assert abs(relative_offset - 0.03) < 0.004  # the noise's share of the mean: 1.5 b / 20
            assert abs(scatter - 1.5) < 0.05
            assert offset_in_bounds > 0.03 / (2 * median)  # the same offset is more bounds where tight


def test_every_lever_makes_a_valid_recipe(levers):
    """Each lever laid over the recommended recipe is a configuration `fit` accepts (the
    weightings by the bound, for one, drop the recipe's constant label weights)."""
    from galaxies.evaluation.experiments import xception
    from galaxies.runtime import profiles

    profile = profiles.get("quick")
    for name, options in levers.LEVERS.items():
        config = xception.config(profile.recommended, profile, **options)
        for field, value in options.items():
            if field != "model_kwargs":
                assert getattr(config, field) == value, (name, field)
