"""The project's HDF5 files: data sets and predictions (docs/architecture.md, "File contracts").

Every writer goes through `galaxies.storage.atomic.atomic_h5` (a file at its final name is whole); readers
check every field and shape and name the file and the field when something is wrong."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from galaxies.conventions import IMAGE_SIZE, LABEL_COLUMNS, PIXEL_SCALE
from galaxies.runtime.errors import FileFormatError, InputError
from galaxies.runtime.resources import check_memory

from .atomic import atomic_h5, check_readable

__all__ = [
    "FileFormatError", "Dataset", "Predictions", "load_dataset", "create_dataset_fields",
    "write_attrs", "load_predictions", "write_predictions", "dataset_info", "rows_of",
]


def _version() -> str:
    from galaxies import __version__
    return __version__


# ----------------------------------------------------------------------------- data sets

#: name -> (shape after the row count, dtype); ``psf_img`` may also have 1 row.
DATASET_FIELDS: dict[str, tuple[tuple[int, ...], type]] = {
    "img": ((IMAGE_SIZE, IMAGE_SIZE), np.float32),
    "img_nonoise": ((IMAGE_SIZE, IMAGE_SIZE), np.float32),
    "label": ((len(LABEL_COLUMNS),), np.float32),
    "psf_fwhm": ((), np.float32),
    "psf_img": ((IMAGE_SIZE, IMAGE_SIZE), np.float32),
    "sigma": ((), np.float32),
    "snr": ((), np.float32),
}
DATASET_ATTRS = ("seed", "recipe", "galaxies_version", "pixel_scale")


@dataclass
class Dataset:
    """A data set held in memory. Arrays follow docs/architecture.md; ``psf_img`` may hold one image
    shared by all rows. Fields not asked for when loading are ``None``."""

    path: Path
    img: np.ndarray | None
    img_nonoise: np.ndarray | None
    label: np.ndarray
    psf_fwhm: np.ndarray
    psf_img: np.ndarray | None
    sigma: np.ndarray
    snr: np.ndarray
    attrs: dict = field(default_factory=dict)
    index: np.ndarray | None = None  # rows of the file these are (all rows when None)

    columns = LABEL_COLUMNS

    def __len__(self) -> int:
        return len(self.label)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def recipe(self) -> dict:
        return json.loads(self.attrs.get("recipe", "{}"))

    @property
    def rows(self) -> np.ndarray:
        """Row numbers in the file (``index`` of the predictions contract)."""
        return np.arange(len(self), dtype=np.int64) if self.index is None else self.index

    def labels_frame(self):
        """Labels, SNR, sigma and PSF FWHM as a pandas DataFrame."""
        import pandas as pd
        frame = pd.DataFrame(self.label, columns=list(LABEL_COLUMNS))
        frame["snr"], frame["sigma"], frame["psf_fwhm"] = self.snr, self.sigma, self.psf_fwhm
        return frame

    def subset(self, sel) -> "Dataset":
        """The rows ``sel`` (a slice or row numbers of this set) as a new `Dataset`."""
        arrays = {}
        for name in ("img", "img_nonoise", "label", "psf_fwhm", "sigma", "snr"):
            value = getattr(self, name)
            arrays[name] = None if value is None else value[sel]
        shared = self.psf_img is not None and len(self.psf_img) == 1 and len(self) != 1
        arrays["psf_img"] = self.psf_img if self.psf_img is None or shared else self.psf_img[sel]
        return Dataset(path=self.path, attrs=self.attrs, index=self.rows[sel], **arrays)

    def check_finite(self) -> None:
        """Refuse images with NaN or infinite pixels (an estimate of them would be a finite,
        wrong number), naming how many rows and the first of them."""
        for name in ("img", "img_nonoise", "psf_img"):
            images = getattr(self, name)
            if images is None:
                continue
            bad = np.flatnonzero(~np.isfinite(images).all(axis=tuple(range(1, images.ndim))))
            if len(bad) and len(images) != len(self):  # one PSF image shared by every row
                raise FileFormatError(f"{self.path}: the shared '{name}' has NaN or infinite pixels")
            if len(bad):
                raise FileFormatError(f"{self.path}: {len(bad)} row(s) of '{name}' have NaN or "
                                      f"infinite pixels (first: row {int(self.rows[bad[0]])})")

    def psf_images(self) -> np.ndarray:
        """PSF image per row, (N, 64, 64), broadcasting a shared one (a view, no copy)."""
        if self.psf_img is None:
            raise InputError(f"{self.path}: psf_img was not loaded")
        return np.broadcast_to(self.psf_img, (len(self),) + self.psf_img.shape[1:])


def _check_array(f: h5py.File, name: str, path: Path, kinds: str = "f") -> h5py.Dataset:
    """Field ``name`` of an open file: an HDF5 array of a number kind in ``kinds`` whose bytes
    are all in the file (an uncompressed array that stores fewer bytes than its shape claims
    was truncated or never written: reading it would allocate memory for nothing)."""
    field = f[name]
    if not isinstance(field, h5py.Dataset):
        raise FileFormatError(f"{path}: '{name}' is a {type(field).__name__}, expected an array")
    if field.dtype.kind not in kinds or field.dtype.itemsize > 8:
        raise FileFormatError(f"{path}: field '{name}' holds {field.dtype} values, expected "
                              f"{'floating-point numbers' if kinds == 'f' else 'integers'}")
    claimed = field.size * field.dtype.itemsize
    if field.compression is None and claimed and field.id.get_storage_size() < claimed:
        raise FileFormatError(f"{path}: field '{name}' claims shape {field.shape} "
                              f"({claimed:,} bytes) but the file holds "
                              f"{field.id.get_storage_size():,} bytes of it (truncated?)")
    return field


def _read(field: h5py.Dataset, sel, path: Path) -> np.ndarray:
    try:
        return field[sel]
    except (OSError, ValueError, TypeError) as err:
        raise FileFormatError(f"{path}: field '{field.name.lstrip('/')}' cannot be read ({err})") from None


def _check_dataset_file(f: h5py.File, path: Path) -> int:
    missing = [name for name in DATASET_FIELDS if name not in f]
    if missing:
        raise FileFormatError(
            f"{path}: missing field(s) {', '.join(missing)}; a data set needs "
            f"{', '.join(DATASET_FIELDS)} (docs/architecture.md)")
    label = _check_array(f, "label", path)
    n = label.shape[0] if label.ndim else -1
    for name, (shape, _) in DATASET_FIELDS.items():
        got = _check_array(f, name, path).shape
        allowed = [(n,) + shape]
        if name == "psf_img":
            allowed.append((1,) + shape)
        if got not in allowed:
            raise FileFormatError(
                f"{path}: field '{name}' has shape {got}, expected "
                f"{' or '.join(str(a) for a in allowed)}")
    missing = [a for a in DATASET_ATTRS if a not in f.attrs]
    if missing:
        raise FileFormatError(f"{path}: missing root attribute(s) {', '.join(missing)}")
    try:
        columns = tuple(str(c) for c in np.atleast_1d(f["label"].attrs.get("columns", ())))
        json.loads(f.attrs["recipe"])
    except (TypeError, ValueError, OSError) as err:
        raise FileFormatError(f"{path}: unreadable attributes ({err})") from None
    if columns != LABEL_COLUMNS:
        raise FileFormatError(
            f"{path}: field 'label' has columns {columns}, expected {LABEL_COLUMNS}")
    return n


def _open(path: str | os.PathLike) -> tuple[Path, h5py.File]:
    path = check_readable(path, "data file")  # a regular file: not a FIFO or a device
    try:
        return path, h5py.File(path, "r")
    except OSError as err:
        raise FileFormatError(f"{path}: not a readable HDF5 file ({err})") from None


def dataset_info(path: str | os.PathLike) -> dict:
    """Size, recipe and attributes of a data set, without reading its images."""
    path, f = _open(path)
    with f:
        n = _check_dataset_file(f, path)
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    return {"path": path, "size": n, "recipe": json.loads(attrs["recipe"]), "attrs": attrs}


def _selection(rows, n: int, path: Path):
    """``(h5py selection, index or None)`` of ``rows`` (see `load_dataset`), checked."""
    if rows is None:
        return slice(None), None
    if isinstance(rows, (int, np.integer)) and not isinstance(rows, bool):
        if rows < 0:
            raise InputError(f"rows = {rows}: a count of leading rows must be at least 0")
        return slice(0, int(rows)), None
    if isinstance(rows, slice):
        return rows, np.arange(n)[rows]
    index = np.asarray(rows, dtype=np.int64)
    if index.size and (np.any(np.diff(index) <= 0) or index[0] < 0 or index[-1] >= n):
        raise InputError(f"{path}: rows must be increasing indices in [0, {n})")
    return index, index


def wanted_fields(fields: tuple[str, ...] | None) -> set[str]:
    """The array fields asked for (None: all), checked against the contract."""
    if unknown := set(fields or ()) - set(DATASET_FIELDS):
        raise InputError(f"unknown field(s) {sorted(unknown)}; choose from {list(DATASET_FIELDS)}")
    return set(DATASET_FIELDS if fields is None else fields)


def load_dataset(path: str | os.PathLike, fields: tuple[str, ...] | None = None,
                 rows: slice | np.ndarray | int | None = None) -> Dataset:
    """Read a data set, checking it against the contract.

    Parameters:
        fields:  which of the array fields to read (default all); ``label``, ``psf_fwhm``,
                 ``sigma`` and ``snr`` are always read.
        rows:    a slice, increasing row indices, or a count of leading rows (default all).

    The fields asked for are checked (kind, shape, bytes in the file) and their size against
    the memory available before anything is read.
    """
    path, f = _open(path)
    wanted = wanted_fields(fields) | {"label", "psf_fwhm", "sigma", "snr"}
    with f:
        n = _check_dataset_file(f, path)
        sel, index = _selection(rows, n, path)
        selected = len(range(n)[sel]) if isinstance(sel, slice) else len(sel)
        check_memory(sum(f[name].dtype.itemsize * int(np.prod(f[name].shape[1:])) *
                         (1 if name == "psf_img" and f[name].shape[0] == 1 else selected)
                         for name in wanted), f"reading {sorted(wanted)} of {path}")
        arrays = {}
        for name in DATASET_FIELDS:
            if name not in wanted:
                arrays[name] = None
            elif name == "psf_img" and f[name].shape[0] == 1:
                arrays[name] = _read(f[name], (), path)
            else:
                arrays[name] = _read(f[name], sel, path)
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    return Dataset(path=path, attrs=attrs, index=index, **arrays)


def create_dataset_fields(f: h5py.File, size: int, shared_psf: bool) -> dict[str, h5py.Dataset]:
    """Create the (empty) fields of a data set of ``size`` rows in an open file."""
    out = {}
    for name, (shape, dtype) in DATASET_FIELDS.items():
        rows = 1 if (name == "psf_img" and shared_psf) else size
        out[name] = f.create_dataset(name, shape=(rows,) + shape, dtype=dtype)
    out["label"].attrs["columns"] = list(LABEL_COLUMNS)
    return out


def write_attrs(f: h5py.File, seed: int, recipe: dict) -> None:
    f.attrs["seed"] = int(seed)
    f.attrs["recipe"] = json.dumps(recipe, sort_keys=True)
    f.attrs["galaxies_version"] = _version()
    f.attrs["pixel_scale"] = PIXEL_SCALE


# --------------------------------------------------------------------------- predictions

PREDICTION_ATTRS = ("estimator", "dataset", "seconds_per_image")


@dataclass
class Predictions:
    """One estimator's predictions on one data set (docs/architecture.md, "File contracts")."""

    path: Path | None
    pred: np.ndarray
    index: np.ndarray
    estimator: str
    dataset: str
    seconds_per_image: float
    pred_std: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # further per-row arrays, e.g. ``converged``

    columns = LABEL_COLUMNS

    def __len__(self) -> int:
        return len(self.pred)

    def take(self, keep) -> "Predictions":
        """The predictions of the rows ``keep`` selects (a boolean mask or positions), with
        their standard deviations and per-row fields."""
        from dataclasses import replace
        return replace(self, pred=self.pred[keep], index=self.index[keep],
                       pred_std=None if self.pred_std is None else self.pred_std[keep],
                       extra={k: v[keep] for k, v in self.extra.items()
                              if np.ndim(v) and len(v) == len(self.pred)})

    def frame(self):
        """Predictions (and their standard deviations) as a pandas DataFrame by row index."""
        import pandas as pd
        frame = pd.DataFrame(self.pred, columns=list(LABEL_COLUMNS), index=self.index)
        if self.pred_std is not None:
            for j, c in enumerate(LABEL_COLUMNS):
                frame[f"{c}_std"] = self.pred_std[:, j]
        return frame


def write_predictions(path, pred, index, *, estimator: str, dataset: str,
                      seconds_per_image: float, pred_std=None, extra: dict | None = None,
                      attrs: dict | None = None, force: bool = False) -> Path:
    """Write a predictions file atomically.

    ``extra`` holds further per-row arrays (for example the fit's ``converged`` flags);
    ``attrs`` further scalar attributes (JSON-encoded when not a number or string).
    """
    pred = np.asarray(pred, dtype=np.float32)
    index = np.asarray(index, dtype=np.int64)
    if pred.ndim != 2 or pred.shape[1] != len(LABEL_COLUMNS):
        raise InputError(f"pred has shape {pred.shape}, expected (N, {len(LABEL_COLUMNS)})")
    if index.shape != (len(pred),):
        raise InputError(f"index has shape {index.shape}, expected ({len(pred)},)")
    if pred_std is not None and np.shape(pred_std) != pred.shape:
        raise InputError(f"pred_std has shape {np.shape(pred_std)}, expected {pred.shape}")
    with atomic_h5(path, force) as f:
        f.create_dataset("pred", data=pred).attrs["columns"] = list(LABEL_COLUMNS)
        f.create_dataset("index", data=index)
        if pred_std is not None:
            f.create_dataset("pred_std", data=np.asarray(pred_std, dtype=np.float32))
        for name, value in (extra or {}).items():
            value = np.asarray(value)
            if len(value) != len(pred):
                raise InputError(f"extra field {name!r} has {len(value)} rows, expected {len(pred)}")
            f.create_dataset(name, data=value)
        f.attrs["estimator"] = str(estimator)
        f.attrs["dataset"] = str(dataset)
        f.attrs["seconds_per_image"] = float(seconds_per_image)
        f.attrs["galaxies_version"] = _version()
        for key, value in (attrs or {}).items():
            f.attrs[key] = value if isinstance(value, (int, float, str, np.number)) else json.dumps(value)
    return Path(path)


def load_predictions(path: str | os.PathLike) -> Predictions:
    """Read a predictions file, checking it against the contract (fields, kinds, shapes,
    attributes) before reading any array."""
    path, f = _open(path)
    with f:
        for name in ("pred", "index"):
            if name not in f:
                raise FileFormatError(f"{path}: missing field '{name}' of a predictions file")
        pred, index = _check_array(f, "pred", path), _check_array(f, "index", path, kinds="iu")
        if pred.ndim != 2 or pred.shape[1] != len(LABEL_COLUMNS):
            raise FileFormatError(
                f"{path}: field 'pred' has shape {pred.shape}, expected (N, {len(LABEL_COLUMNS)})")
        if index.shape != (len(pred),):
            raise FileFormatError(
                f"{path}: field 'index' has shape {index.shape}, expected ({len(pred)},)")
        std = _check_array(f, "pred_std", path) if "pred_std" in f else None
        if std is not None and std.shape != pred.shape:
            raise FileFormatError(
                f"{path}: field 'pred_std' has shape {std.shape}, expected {pred.shape}")
        missing = [a for a in PREDICTION_ATTRS if a not in f.attrs]
        if missing:
            raise FileFormatError(f"{path}: missing attribute(s) {', '.join(missing)}")
        try:
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
            seconds = float(attrs["seconds_per_image"])
        except (TypeError, ValueError, OSError) as err:
            raise FileFormatError(f"{path}: unreadable attributes ({err})") from None
        others = [k for k in f if k not in ("pred", "index", "pred_std")]
        check_memory(sum(a.size * a.dtype.itemsize for a in (pred, index, std) if a is not None)
                     + sum(getattr(f[k], "nbytes", 0) for k in others), f"reading {path}")
        extra = {k: _read(f[k], (), path) for k in others if isinstance(f[k], h5py.Dataset)}
        pred, index = _read(pred, (), path), _read(index, (), path).astype(np.int64)
        std = None if std is None else _read(std, (), path)
    return Predictions(path=path, pred=pred, index=index, estimator=str(attrs["estimator"]),
                       dataset=str(attrs["dataset"]), seconds_per_image=seconds,
                       pred_std=std, attrs=attrs, extra=extra)


def rows_of(predictions: Predictions, data_path, limit: int | None = None) -> np.ndarray:
    """The rows of the data set at ``data_path`` that a predictions file covers (its first
    ``limit``), checked: predictions of this data set (by name), every row inside it, once.
    For a command that starts from another estimator's predictions (refine, fit --start)."""
    info = dataset_info(data_path)
    name = Path(data_path).stem
    if predictions.dataset != name:
        raise InputError(f"{predictions.path} holds predictions of data set "
                         f"'{predictions.dataset}', not of {data_path} ('{name}')")
    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 1):
        raise InputError(f"limit = {limit} must be a positive integer")
    rows = predictions.index[:limit]
    if len(rows) == 0:
        raise InputError(f"{predictions.path}: no rows")
    if rows.min() < 0 or rows.max() >= info["size"] or len(np.unique(rows)) != len(rows):
        raise InputError(f"{predictions.path} refers to rows {rows.min()}..{rows.max()} "
                         f"(each once: {len(np.unique(rows)) == len(rows)}), but {data_path} has "
                         f"rows 0..{info['size'] - 1}: these are not predictions of this data set")
    return rows
