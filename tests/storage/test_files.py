"""The HDF5 contracts of docs/architecture.md: fields, shapes, attributes, clear errors, atomic writes."""
import json

import h5py
import numpy as np
import pytest

from galaxies.storage import atomic, files


def test_dataset_file_follows_the_contract(small_sets):
    path = small_sets["random"]
    with h5py.File(path) as f:
        n = f["label"].shape[0]
        assert n == 40
        for name, shape in [("img", (n, 64, 64)), ("img_nonoise", (n, 64, 64)), ("label", (n, 5)),
                            ("psf_fwhm", (n,)), ("psf_img", (1, 64, 64)), ("sigma", (n,)), ("snr", (n,))]:
            assert f[name].shape == shape and f[name].dtype == np.float32, name
        assert list(f["label"].attrs["columns"]) == ["flux", "sersic_n", "sersic_r", "g1", "g2"]
        assert f.attrs["pixel_scale"] == 0.23 and f.attrs["seed"] == 11
        recipe = json.loads(f.attrs["recipe"])
        assert recipe["sersics"] == 4 and recipe["psf_fwhm"] == 0.5 and recipe["size"] == 40
        assert f.attrs["galaxies_version"]
    ds = files.load_dataset(path)
    assert len(ds) == 40 and ds.psf_images().shape == (40, 64, 64)


def test_load_rows_and_fields(small_sets):
    ds = files.load_dataset(small_sets["random"], fields=("img",), rows=np.array([1, 5, 7]))
    full = files.load_dataset(small_sets["random"])
    np.testing.assert_array_equal(ds.img, full.img[[1, 5, 7]])
    assert ds.img_nonoise is None and list(ds.rows) == [1, 5, 7]
    with pytest.raises(ValueError, match="increasing"):
        files.load_dataset(small_sets["random"], rows=np.array([5, 1]))


def _copy_without(src, dst, drop=None, reshape=None):
    with h5py.File(src) as f, h5py.File(dst, "w") as g:
        for key in f:
            if key == drop:
                continue
            data = f[key][()]
            if key == reshape:
                data = data[:, :32, :32]
            g.create_dataset(key, data=data)
            for a, v in f[key].attrs.items():
                g[key].attrs[a] = v
        for a, v in f.attrs.items():
            g.attrs[a] = v


def test_missing_field_names_the_file_and_the_field(small_sets, tmp_path):
    broken = tmp_path / "broken.h5"
    _copy_without(small_sets["random"], broken, drop="img_nonoise")
    with pytest.raises(files.FileFormatError, match=r"broken\.h5.*img_nonoise"):
        files.load_dataset(broken)


def test_wrong_shape_names_the_file_and_the_field(small_sets, tmp_path):
    broken = tmp_path / "small.h5"
    _copy_without(small_sets["random"], broken, reshape="img")
    with pytest.raises(files.FileFormatError, match=r"small\.h5: field 'img' has shape \(40, 32, 32\)"):
        files.load_dataset(broken)


def test_not_an_hdf5_file(tmp_path):
    bad = tmp_path / "notes.h5"
    bad.write_text("hello")
    with pytest.raises(files.FileFormatError, match="notes.h5"):
        files.load_dataset(bad)
    with pytest.raises(FileNotFoundError, match="nothing.h5"):
        files.load_dataset(tmp_path / "nothing.h5")


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError):
        with atomic.atomic_h5(target) as f:
            f.create_dataset("x", data=np.zeros(3))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_not_overwritten_without_force(tmp_path):
    target = tmp_path / "out.h5"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="--force"):
        with atomic.atomic_h5(target):
            pass
    assert target.read_bytes() == b"precious"


def test_predictions_round_trip_and_contract(tmp_path):
    pred = np.random.default_rng(0).normal(size=(7, 5))
    path = files.write_predictions(tmp_path / "p.h5", pred, np.arange(7) * 2, estimator="xception",
                                dataset="snr60", seconds_per_image=1e-3, pred_std=np.ones((7, 5)),
                                extra={"converged": np.ones(7, bool)}, attrs={"model": {"a": 1}})
    back = files.load_predictions(path)
    np.testing.assert_allclose(back.pred, pred.astype(np.float32))
    assert list(back.index) == list(range(0, 14, 2)) and back.index.dtype == np.int64
    assert back.estimator == "xception" and back.dataset == "snr60"
    assert back.seconds_per_image == pytest.approx(1e-3) and back.pred_std.shape == (7, 5)
    assert back.extra["converged"].all() and json.loads(back.attrs["model"]) == {"a": 1}
    with pytest.raises(ValueError, match="pred has shape"):
        files.write_predictions(tmp_path / "q.h5", pred[:, :4], np.arange(7), estimator="x",
                             dataset="y", seconds_per_image=0)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["pred"] = pred
    with pytest.raises(files.FileFormatError, match="bad.h5.*'index'"):
        files.load_predictions(tmp_path / "bad.h5")
