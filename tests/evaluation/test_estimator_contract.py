"""Every estimator of the project honours one contract, through `galaxies.evaluation.estimators`
(in the manner of scikit-learn's shared estimator checks): a network, a two-stage pipeline, the
two fits, the started fit, the two refinements and HSM.

The contract: ``predict(images, psf_fwhm, sigma)`` gives ``(N, 5)`` labels in their units and a
standard deviation of the same shape or None; ``predict_file`` writes a predictions file under
its own name, for the rows asked for, with the same numbers ``predict`` gives; an existing
output is kept unless ``force``; the named ones load by their name.
"""
import numpy as np
import pytest

from galaxies.conventions import LABEL_COLUMNS
from galaxies.evaluation import estimators
from galaxies.storage import files

ROWS = 2


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """A tiny saved network (zero weights: it predicts the label means)."""
    keras = pytest.importorskip("keras")
    from galaxies.networks import training as train
    model = keras.Sequential([keras.Input((64, 64, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(5, kernel_initializer="zeros")])
    saved = train.SavedModel(
        model, {"image": train.Standardizer([0.0], [100.0]),
                "label": train.Standardizer([1.1e5, 2.8, 0.32, -0.05, 0.12], [1.0] * 5)},
        {"config": {"epochs": 1}, "name": "tiny_v1"})
    path = tmp_path_factory.mktemp("models") / "tiny_v1"
    saved.save(path)
    return estimators.load(path)


class IdentityDenoiser:
    """A stand-in denoiser (the interface `TwoStage` needs: ``denoise`` and ``path``)."""

    path = "identity"

    def denoise(self, images, batch_size=None, progress=False):
        return np.asarray(images, np.float32)


def build(kind, network):
    return {
        "network": lambda: network,
        "two-stage": lambda: estimators.TwoStage(IdentityDenoiser(), network),
        "fit (GalSim)": lambda: estimators.load(estimators.FIT, jobs=1),
        "fit (JAX)": lambda: estimators.load(estimators.JAX_FIT),
        "started fit": lambda: estimators.Fit("galsim", start=network, jobs=1),
        "refinement (JAX)": lambda: estimators.Refined(network, steps=2, renderer="jax"),
        "refinement (GalSim)": lambda: estimators.Refined(network, steps=1, renderer="galsim",
                                                          jobs=1),
        "HSM KSB": lambda: estimators.load("hsm-ksb"),
        "HSM REGAUSS": lambda: estimators.load("hsm-regauss"),
    }[kind]()


KINDS = ["network", "two-stage", "fit (GalSim)", "fit (JAX)", "started fit", "refinement (JAX)",
         "refinement (GalSim)", "HSM KSB", "HSM REGAUSS"]
SHEAR_ONLY = {"HSM KSB", "HSM REGAUSS"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_estimator_honours_the_contract(kind, network, small_sets, tmp_path):
    estimator = build(kind, network)
    data = small_sets["fixed"]
    ds = files.load_dataset(data, fields=("img",)).subset(slice(0, ROWS))

    pred, std = estimator.predict(ds.img, ds.psf_fwhm, ds.sigma)
    assert pred.shape == (ROWS, len(LABEL_COLUMNS)) and pred.dtype.kind == "f"
    assert std is None or std.shape == pred.shape
    known = slice(3, 5) if kind in SHEAR_ONLY else slice(0, 5)
    assert np.isfinite(pred[:, known]).all()
    if kind in SHEAR_ONLY:
        assert np.isnan(pred[:, :3]).all()  # it measures shear only, and says so
    else:  # the fixed galaxy (flux 1e5, n 3, r 0.3) within reach of every estimator here
        assert np.all((pred[:, 0] > 3e4) & (pred[:, 0] < 4e5) & (pred[:, 2] > 0.1) & (pred[:, 2] < 0.6))

    out = tmp_path / "predictions.h5"
    written = files.load_predictions(estimator.predict_file(data, out, limit=ROWS))
    assert written.estimator == estimator.name
    assert written.dataset == "snr60"
    assert written.index.tolist() == list(range(ROWS))
    np.testing.assert_allclose(written.pred[:, known], pred[:, known], rtol=2e-3,
                               atol=1e-6, err_msg=kind)
    assert written.seconds_per_image > 0
    with pytest.raises((FileExistsError, estimators.InputError)):
        estimator.predict_file(data, out, limit=ROWS)  # kept without force
    estimator.predict_file(data, out, limit=ROWS, force=True)


def test_the_named_estimators_load_by_name_and_others_are_refused():
    assert {estimators.load(name).name for name in estimators.NAMED} == set(estimators.NAMED)
    with pytest.raises(estimators.InputError, match="choose from galsim, jax"):
        estimators.Fit("pixels")
    with pytest.raises(estimators.InputError, match="choose from ksb, regauss"):
        estimators.HSM("moments")
