"""Shared fixtures: everything runs under the smoke profile, on small sets in temporary folders."""
import os

os.environ.setdefault("GALAXIES_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from galaxies.simulation.generate import FixedSpec, RandomSpec, generate  # noqa: E402


@pytest.fixture(scope="session")
def small_sets(tmp_path_factory):
    """A tiny random set (like v1, 40 galaxies, 4 Sérsic indices) and a fixed test set."""
    folder = tmp_path_factory.mktemp("sets")
    random_set = generate(folder / "v1.h5", RandomSpec(sersics=4, psf_fwhm=0.5, sigma=200.0),
                          size=40, seed=11, jobs=1, progress=False, name="v1")
    fixed_set = generate(folder / "snr60.h5", FixedSpec(1e5, 3.0, 0.3, -0.069, 0.15, 0.5, 200.0),
                         size=16, seed=12, progress=False, name="snr60")
    return {"random": random_set, "fixed": fixed_set}


@pytest.fixture
def faint_read_noise():
    """``faint_read_noise(ds)``: a loaded set whose read noise is 5 e- (sigma^2 = 25), so that
    in fresh noise drawn on it the Poisson part dominates wherever a galaxy is."""
    import dataclasses

    import numpy as np
    return lambda ds: dataclasses.replace(ds, sigma=np.full(len(ds), 5.0, np.float32))


@pytest.fixture
def check_noise_model():
    """``check_noise_model(noisy, clean, sigma)``: asserts that ``noisy - clean`` (N, H, W), in
    photo-electrons, has the fresh-noise model's mean 0 and variance ``clean + sigma^2`` per
    pixel (Monte Carlo over the pixels; the bright ones, where the Poisson part dominates,
    also on their own)."""
    import numpy as np

    def check(noisy, clean, sigma):
        read = np.asarray(sigma, np.float64)[:, None, None] ** 2 * np.ones_like(clean)
        residual = np.asarray(noisy, np.float64) - clean
        z = residual / np.sqrt(np.clip(clean, 0, None) + read)
        assert abs(z.mean()) < 5 / np.sqrt(z.size), z.mean()
        assert z.var() == pytest.approx(1.0, rel=0.03)
        bright = clean > 10 * read
        assert bright.sum() > 2000, bright.sum()
        assert z[bright].var() == pytest.approx(1.0, rel=0.1)
        # read noise alone would be far too little there
        assert np.mean(residual[bright] ** 2) > 10 * np.mean(read[bright])
    return check


@pytest.fixture
def find_orientation():
    """``find_orientation(targets, clean)``: for each image of ``targets`` (N, H, W), the
    ``(row, element)`` of ``clean`` (M, H, W) and of the grid's symmetry
    (`galaxies.networks.training.dihedral`) it is, to float32 precision; asserts that there is one.
    A noiseless galaxy is symmetric under the half turn (element 6): ``element ^ 6`` fits too."""
    import numpy as np

    from galaxies.networks.training import dihedral

    def find(targets, clean):
        labels = np.zeros((len(clean), 5))
        turned = np.stack([dihedral(clean, labels, e)[0] for e in range(8)], axis=1)
        found = []
        for image in np.asarray(targets, np.float64):
            error = np.abs(turned - image).max(axis=(2, 3))
            row, element = np.unravel_index(np.argmin(error), error.shape)
            assert error[row, element] <= 1e-3 * np.abs(image).max(), error.min()
            found.append((int(row), int(element)))
        return found
    return find


@pytest.fixture
def without_field(tmp_path):
    """``without_field(path, name)``: a copy of the data set at ``path`` lacking field ``name``."""
    import h5py

    def copy(path, name):
        out = tmp_path / f"without_{name}.h5"
        with h5py.File(path, "r") as src, h5py.File(out, "w") as dst:
            for field in src:
                if field != name:
                    src.copy(field, dst)
            dst.attrs.update(src.attrs)
        return out
    return copy


def pytest_collection_modifyitems(config, items):
    """The notebook chain first: it is the longest test by far, so under pytest-xdist (``-n 2
    --dist loadfile --no-loadscope-reorder``, pyproject.toml; without the last, xdist would
    sort the files by their number of tests and start the one-test chain last) it runs on one
    worker while the other takes the rest."""
    items.sort(key=lambda item: item.get_closest_marker("notebook") is None)


def pytest_terminal_summary(terminalreporter):
    """The fuzz suite's count of inputs (tests/system/test_fuzz.py), also from an xdist worker."""
    for report in terminalreporter.stats.get("passed", []):
        for name, value in getattr(report, "user_properties", ()):
            if name == "fuzzed inputs":
                terminalreporter.write_line(
                    f"fuzzed inputs: {value}; no traceback, no input changed, no non-regular "
                    f"file replaced, no temporary file left")
