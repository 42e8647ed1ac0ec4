"""Reading a data set in blocks: the same rows as the whole-set reader, never more than a block
of images at once, and the loops that use it (fits, HSM, refinement, bounds) unchanged."""
import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from galaxies.runtime.errors import FileFormatError, InputError
from galaxies.storage import chunked, files

IMAGES = ("img", "img_nonoise", "psf_img")


def _equal(a: files.Dataset, b: files.Dataset) -> None:
    for name in files.DATASET_FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape, name
            np.testing.assert_array_equal(x, y, err_msg=name)
    np.testing.assert_array_equal(a.rows, b.rows)


def _joined(blocks: list, whole: files.Dataset) -> files.Dataset:
    """The blocks as one `Dataset` (the shared PSF image once)."""
    def cat(name):
        values = [getattr(b, name) for b in blocks]
        if values[0] is None:
            return None
        if name == "psf_img" and len(whole.psf_img) == 1 and len(whole) != 1:
            return values[0]
        return np.concatenate(values)
    return files.Dataset(path=whole.path, attrs=whole.attrs, index=np.concatenate([b.rows for b in blocks]),
                         **{name: cat(name) for name in files.DATASET_FIELDS})


selections = st.one_of(
    st.none(), st.integers(0, 45),
    st.builds(slice, st.integers(0, 45) | st.none(), st.integers(0, 45) | st.none(),
              st.integers(1, 5) | st.none()),
    st.sets(st.integers(0, 39), max_size=40).map(lambda s: np.array(sorted(s), dtype=np.int64)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=selections, block=st.integers(1, 50),
       fields=st.sets(st.sampled_from(IMAGES)).map(tuple) | st.none(), last=st.integers(1, 12))
def test_blocks_hold_what_load_dataset_reads(small_sets, rows, block, fields, last):
    whole = files.load_dataset(small_sets["random"], fields=fields, rows=rows)
    reader = chunked.DatasetReader(small_sets["random"], fields=fields, rows=rows, block=block)
    assert len(reader) == len(whole) and reader.name == whole.name
    np.testing.assert_array_equal(reader.rows, whole.rows)
    _equal(reader.table, files.load_dataset(small_sets["random"], fields=(), rows=rows))
    blocks = list(reader.blocks(last_at_least=last))
    sizes = [len(b) for b in blocks]
    assert sum(sizes) == len(whole) and all(s == block for s in sizes[:-1])
    assert not blocks or len(blocks) == 1 or sizes[-1] >= last
    if blocks:
        _equal(_joined(blocks, whole), whole)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(16)), size=st.integers(1, 16), block=st.integers(1, 7))
def test_rows_in_any_order_come_in_that_order(small_sets, order, size, block):
    rows = np.array(order[:size])
    reader = chunked.DatasetReader(small_sets["fixed"], fields=("img",), rows=rows, block=block)
    whole = files.load_dataset(small_sets["fixed"], fields=("img",))
    images = np.concatenate([b.img for b in reader.blocks()])
    np.testing.assert_array_equal(images, whole.img[rows])
    np.testing.assert_array_equal(reader.table.sigma, whole.sigma[rows])
    np.testing.assert_array_equal(np.concatenate([b.rows for b in reader.blocks()]), rows)


@pytest.fixture
def reads(monkeypatch):
    """Rows of each image field handed out by h5py, one entry per read."""
    seen = []
    original = h5py.Dataset.__getitem__

    def getitem(self, sel, *args, **kwargs):
        out = original(self, sel, *args, **kwargs)
        if self.name.lstrip("/") in IMAGES:
            seen.append((self.name.lstrip("/"), len(out) if np.ndim(out) else 0))
        return out
    monkeypatch.setattr(h5py.Dataset, "__getitem__", getitem)
    return seen


def test_the_reader_never_asks_for_more_than_a_block(small_sets, reads):
    reader = chunked.DatasetReader(small_sets["random"], fields=IMAGES, block=6)
    assert reads == []  # nothing of the images before the blocks are asked for
    for ds in reader.blocks():
        assert len(ds) <= 6
    assert max(n for _, n in reads) <= 6 and {name for name, _ in reads} == set(IMAGES)
    assert sum(n for name, n in reads if name == "img") == 40


def test_memory_is_checked_for_one_block(small_sets, monkeypatch):
    asked = []
    monkeypatch.setattr(chunked, "check_memory", lambda size, what: asked.append(size))
    chunked.DatasetReader(small_sets["random"], fields=("img",), block=5)
    chunked.DatasetReader(small_sets["random"], fields=("img",), block=500)
    assert asked == [5 * 64 * 64 * 4 + 40 * 32, 40 * 64 * 64 * 4 + 40 * 32]


@pytest.mark.parametrize("kwargs, match", [
    ({"block": 0}, "block = 0"), ({"block": 2.5}, "block = 2.5"), ({"fields": ("pixels",)}, "unknown field"),
    ({"rows": np.array([3, 3])}, "distinct"), ({"rows": np.array([2, 99])}, r"\[0, 40\)"),
    ({"rows": -1}, "at least 0")])
def test_wrong_arguments_are_input_errors(small_sets, kwargs, match):
    with pytest.raises(InputError, match=match):
        chunked.DatasetReader(small_sets["random"], **kwargs)


def test_a_broken_file_is_refused_before_any_block(small_sets, without_field, reads):
    with pytest.raises(FileFormatError, match="missing field.*snr"):
        chunked.DatasetReader(without_field(small_sets["random"], "snr"))
    assert reads == []


def test_row_source_chunks_are_the_arrays_sliced(small_sets):
    reader = chunked.DatasetReader(small_sets["random"], fields=("img",), rows=slice(3, 40), block=10)
    whole = files.load_dataset(small_sets["random"], fields=("img",), rows=slice(3, 40))
    extra = np.arange(len(reader))
    parts = list(chunked.RowSource(reader, "img", extra).chunks(4))
    assert [len(p[0]) for p in parts] == [4] * 9 + [1]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), whole.img)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), extra)
    with pytest.raises(InputError, match="12 rows beside 37"):
        chunked.RowSource(reader, "img", extra[:12])


@pytest.mark.parametrize("pixel, rows", [((3, 10, 10), None), ((7, 0, 0), np.array([1, 7, 9]))])
def test_non_finite_rows_are_named_as_for_the_whole_set(small_sets, tmp_path, pixel, rows):
    bad = tmp_path / "nan.h5"
    bad.write_bytes(small_sets["random"].read_bytes())
    with h5py.File(bad, "r+") as f:
        f["img"][pixel] = np.nan
        f["img"][30, 1, 1] = np.inf
    with pytest.raises(FileFormatError) as whole:
        files.load_dataset(bad, fields=("img",), rows=rows).check_finite()
    reader = chunked.DatasetReader(bad, fields=("img",), rows=rows, block=4)
    check = chunked.NonFinite(reader)
    for ds in reader.blocks():
        check.add(ds)
    with pytest.raises(FileFormatError) as blocked:
        check.check()
    assert str(blocked.value) == str(whole.value)


def test_map_rows_reads_a_row_source_as_it_goes(small_sets):
    from galaxies.inference.hsm import measure_rows
    from galaxies.runtime.parallel import map_rows
    whole = files.load_dataset(small_sets["random"], fields=("img",))
    expected, _ = map_rows(measure_rows, (whole.img, whole.psf_fwhm, whole.sigma), 1, "KSB",
                           progress=False)
    reader = chunked.DatasetReader(small_sets["random"], fields=("img",), block=3)
    got, _ = map_rows(measure_rows, chunked.RowSource(reader, "img", whole.psf_fwhm, whole.sigma),
                      1, "KSB", progress=False)
    assert [r[:2] for r in got] == [r[:2] for r in expected]


def test_the_bounds_of_a_set_never_read_its_images(small_sets, reads, tmp_path):
    from galaxies.inference import crb_sets
    data = tmp_path / "snr60.h5"
    data.write_bytes(small_sets["fixed"].read_bytes())
    bounds = crb_sets.for_dataset(data, limit=2, jobs=1, progress=False)
    assert np.isfinite(bounds[:2]).all() and reads == []
