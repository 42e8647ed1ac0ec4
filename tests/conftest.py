"""Shared fixtures: everything runs under the smoke profile, on small sets in temporary folders."""
import os

os.environ.setdefault("GALAXIES_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from galaxies.generate import FixedSpec, RandomSpec, generate  # noqa: E402


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
