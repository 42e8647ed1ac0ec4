"""Reading a data set block by block, so that memory does not grow with the set.

`galaxies.storage.files.load_dataset` holds every field it reads (a 200,000-image set is 3.3 GB per
image field). `DatasetReader` checks a file the same way (the contract, the rows asked for,
memory, but for one block) and then hands out its rows as `galaxies.storage.files.Dataset` blocks of at
most ``block`` rows; only the small per-row fields of the rows selected (label, PSF FWHM, sigma,
SNR: 32 bytes a row) are held whole, as `DatasetReader.table`. `RowSource` gives an image field
with per-row arrays to `galaxies.runtime.parallel.map_rows` in chunks, read as the work goes.

Predictions stay whole arrays (5 columns and a std per row: 2 MB for 50,000 rows), so
`galaxies.storage.files.write_predictions` needs no streaming counterpart.
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from galaxies.runtime.errors import FileFormatError, InputError
from galaxies.runtime.resources import check_memory

from . import files

__all__ = ["BLOCK_ROWS", "DatasetReader", "RowSource", "NonFinite"]

#: rows of a block by default: 4 MB per image field, one batch of a network (1,024 rows cost
#: ~75 MB more at the peak of a prediction: the network's copies of a block, and the allocator)
BLOCK_ROWS = 256
_SMALL = ("label", "psf_fwhm", "sigma", "snr")


class DatasetReader:
    """A data set read in blocks of rows.

    Parameters
    ----------
    path
        a data set (docs/architecture.md, "File contracts").
    fields
        the array fields a block holds (default all; ``label``, ``psf_fwhm``, ``sigma`` and
        ``snr`` always).
    rows
        what `galaxies.storage.files.load_dataset` takes (a slice, increasing row indices, a
        count of leading rows, default all), or distinct row indices in any order: blocks then
        hold the rows in that order (each is read in increasing order).
    block
        the most rows a block holds (the default of `blocks`; default `BLOCK_ROWS`).

    The file is checked when the reader is made, as `load_dataset` checks it, and the memory
    of one block against what is free; each block is read when it is asked for.
    """

    def __init__(self, path: str | os.PathLike, fields: tuple[str, ...] | None = None,
                 rows=None, block: int | None = None):
        block = BLOCK_ROWS if block is None else block
        if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
            raise InputError(f"block = {block!r}: the rows of a block must be a positive integer")
        self.block = int(block)
        wanted = files.wanted_fields(fields)
        self.fields = tuple(name for name in files.DATASET_FIELDS if name in wanted | set(_SMALL))
        self.path, f = files._open(path)
        with f:
            self.size = files._check_dataset_file(f, self.path)
            self.index = self._rows(rows)
            self.shared_psf = f["psf_img"].shape[0] == 1
            self.attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
            row_bytes = {name: f[name].dtype.itemsize * int(np.prod(f[name].shape[1:]))
                         for name in self.fields}
            big = sum(b for name, b in row_bytes.items() if name not in _SMALL)
            check_memory(big * min(self.block, len(self.index)) +
                         sum(row_bytes[name] for name in _SMALL) * len(self.index),
                         f"reading {list(self.fields)} of {self.path} in blocks of {self.block} rows")
            self.table = self._read(f, self.index, _SMALL)

    def _rows(self, rows) -> np.ndarray:
        """The file rows selected, in the order their blocks hold them."""
        if rows is None or isinstance(rows, (slice, int, np.integer)):
            sel, index = files._selection(rows, self.size, self.path)
            return np.arange(self.size)[sel] if index is None else index
        index = np.asarray(rows, dtype=np.int64)
        if index.ndim != 1 or len(np.unique(index)) != len(index):
            raise InputError(f"{self.path}: rows must be distinct indices in [0, {self.size})")
        files._selection(np.sort(index), self.size, self.path)  # the range
        return index

    def __len__(self) -> int:
        return len(self.index)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def rows(self) -> np.ndarray:
        """Row numbers in the file of every row selected (``index`` of the predictions contract)."""
        return self.index

    def _read(self, f, index: np.ndarray, names) -> files.Dataset:
        """The rows ``index`` (in that order) of the fields ``names`` as a `Dataset`."""
        if len(index) == 0:
            sel, back = slice(0, 0), None
        elif np.all(np.diff(index) == 1):
            sel, back = slice(int(index[0]), int(index[-1]) + 1), None
        else:  # h5py reads increasing indices only
            order = np.argsort(index, kind="stable")
            sel, back = index[order], np.argsort(order)
        arrays = dict.fromkeys(files.DATASET_FIELDS)
        for name in names:
            if name == "psf_img" and f[name].shape[0] == 1:
                arrays[name] = files._read(f[name], (), self.path)
            else:
                values = files._read(f[name], sel, self.path)
                arrays[name] = values if back is None else values[back]
        return files.Dataset(path=self.path, attrs=self.attrs, index=index, **arrays)

    def blocks(self, block: int | None = None, last_at_least: int = 1) -> Iterator[files.Dataset]:
        """The rows selected as `Dataset` blocks of ``block`` rows (default the reader's), in
        order, the last ones joined while the last is shorter than ``last_at_least``
        (a network pads a short last batch only in a set larger than a batch: a block shorter
        than a batch would change its batch shape, hence its numbers)."""
        block = self.block if block is None else int(block)
        starts = list(range(0, len(self), block))
        while len(starts) > 1 and len(self) - starts[-1] < last_at_least:
            starts.pop()
        path, f = files._open(self.path)
        with f:
            for s, e in zip(starts, starts[1:] + [len(self)]):
                yield self._read(f, self.index[s:e], self.fields)


class RowSource:
    """What `galaxies.runtime.parallel.map_rows` takes in place of a tuple of arrays: the field
    ``field`` of a reader's rows, read a block at a time, beside per-row arrays in memory
    (one row per row of the reader)."""

    def __init__(self, reader: DatasetReader, field: str, *arrays):
        if field not in reader.fields:
            raise InputError(f"field {field!r} is not read; the reader reads {list(reader.fields)}")
        for array in arrays:
            if len(array) != len(reader):
                raise InputError(f"an array of {len(array)} rows beside {len(reader)} rows of {reader.path}")
        self.reader, self.field, self.arrays = reader, field, arrays

    def __len__(self) -> int:
        return len(self.reader)

    def chunks(self, size: int) -> Iterator[tuple]:
        """Tuples ``(field, *arrays)`` of ``size`` rows each (the last fewer), in order."""
        block = size * max(1, self.reader.block // size)
        start = 0
        for ds in self.reader.blocks(block):
            values = getattr(ds, self.field)
            for s in range(0, len(ds), size):
                yield (values[s:s + size], *(a[start + s:start + s + size] for a in self.arrays))
            start += len(ds)


class NonFinite:
    """The rows with NaN or infinite pixels over the blocks of a reader, so that one error
    names them as `galaxies.storage.files.Dataset.check_finite` does for the whole selection."""

    def __init__(self, reader: DatasetReader):
        self.path, self.bad = reader.path, {}
        # as the whole selection would see it: one PSF image for more than one row
        self.shared = reader.shared_psf and len(reader) != 1

    def add(self, ds: files.Dataset) -> bool:
        """Note the bad rows of a block; whether any block so far had one."""
        for name in ("img", "img_nonoise", "psf_img"):
            images = getattr(ds, name)
            if images is None or (name == "psf_img" and self.shared and name in self.bad):
                continue
            ok = np.isfinite(images).all(axis=tuple(range(1, images.ndim)))
            if name == "psf_img" and self.shared:
                if not ok.all():
                    self.bad[name] = None
                continue
            if not ok.all():
                self.bad.setdefault(name, []).extend(int(r) for r in ds.rows[~ok])
        return bool(self.bad)

    def check(self) -> None:
        """Raise `FileFormatError` for the first field (in the contract's order) with bad rows."""
        for name in ("img", "img_nonoise", "psf_img"):
            rows = self.bad.get(name, [])
            if rows is None:
                raise FileFormatError(f"{self.path}: the shared '{name}' has NaN or infinite pixels")
            if rows:
                raise FileFormatError(f"{self.path}: {len(rows)} row(s) of '{name}' have NaN or "
                                      f"infinite pixels (first: row {rows[0]})")
