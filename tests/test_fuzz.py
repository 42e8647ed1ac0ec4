"""Property-based tests of the readers and of the command line's option parsing (Hypothesis).

The property everywhere: a clean error of the project's (`galaxies.errors`) or a correct
result, never a traceback from somewhere else, and never a changed input file. Each test
prints how many inputs it tried; together they run well over 2,000 in `make test`.
"""
import hashlib
import io as bytes_io
import tempfile
import zipfile
from pathlib import Path

import click
import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galaxies import cutouts, files
from galaxies.cli import main
from galaxies.errors import GalaxiesError
from galaxies.simulate import IMAGE_SIZE, LABEL_COLUMNS

#: the readers warn about broken files (astropy: "may have been truncated"); that is expected here
pytestmark = pytest.mark.filterwarnings("ignore")

FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def fuzz(examples: int):
    """Hypothesis settings of these tests: deterministic (CI and every machine try the same
    inputs), no deadline, ``examples`` inputs."""
    return settings(FUZZ, max_examples=examples)
COUNTS: dict[str, int] = {}


def tried(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    yield
    total = sum(COUNTS.values())
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nfuzzed inputs: {total} ({', '.join(f'{k} {v}' for k, v in COUNTS.items())}); "
              "no traceback, no input changed")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------ data sets

DTYPES = st.sampled_from(["<f4", "<f8", "<f2", "<i4", "<u1", "|S4", "?", "<c8"])
FIELDS = ("img", "img_nonoise", "label", "psf_fwhm", "psf_img", "sigma", "snr")


@st.composite
def dataset_files(draw):
    """A valid data set, then zero to three things a writer might get wrong: a field dropped,
    its shape or kind changed, NaN or inf pixels, rows never written, every field claiming ten
    million rows, attributes missing or garbled, label columns renamed."""
    n = draw(st.integers(0, 5))
    shapes = {"img": (n, IMAGE_SIZE, IMAGE_SIZE), "img_nonoise": (n, IMAGE_SIZE, IMAGE_SIZE),
              "psf_img": (draw(st.sampled_from([1, n])), IMAGE_SIZE, IMAGE_SIZE),
              "label": (n, len(LABEL_COLUMNS)), "psf_fwhm": (n,), "sigma": (n,), "snr": (n,)}
    spec = {name: [shape, "<f4", "values"] for name, shape in shapes.items()}
    attrs = {"seed", "recipe", "galaxies_version", "pixel_scale"}
    columns = list(LABEL_COLUMNS)
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["drop", "shape", "dtype", "nan", "inf", "unwritten",
                                     "huge claim", "attribute", "bad recipe", "columns"]))
        name = draw(st.sampled_from(sorted(spec))) if spec else None
        if what == "drop" and name:
            del spec[name]
        elif what == "shape" and name:
            shape = spec[name][0]
            spec[name][0] = draw(st.sampled_from([shape[:1], shape + (2,), (n + 1,) + shape[1:], ()]))
        elif what == "dtype" and name:
            spec[name][1] = draw(DTYPES)
        elif what in ("nan", "inf", "unwritten") and name:
            spec[name][2] = what
        elif what == "huge claim":
            for item in spec.values():
                if item[0]:
                    item[0] = (10**7,) + tuple(item[0][1:]) if item[0][0] != 1 else item[0]
                    item[2] = "unwritten"
        elif what == "attribute":
            attrs.discard(draw(st.sampled_from(sorted(attrs) or ["seed"])))
        elif what == "bad recipe":
            attrs.add("bad recipe")
        elif what == "columns":
            columns = draw(st.sampled_from([["a", "b"], None, list(LABEL_COLUMNS)[::-1]]))
    return {k: tuple(v) for k, v in spec.items()}, attrs, columns


def write_dataset_file(path: Path, spec, attrs, columns) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for name, (shape, dtype, fill) in spec.items():
            if fill == "unwritten" or (shape and shape[0] >= 10**7):
                f.create_dataset(name, shape=shape, dtype=dtype)
                continue
            values = rng.normal(100, 10, size=shape)
            if fill in ("nan", "inf") and values.size:
                values.flat[0] = np.nan if fill == "nan" else np.inf
            kind = np.dtype(dtype).kind
            f.create_dataset(name, data=values.astype(str).astype(dtype) if kind == "S" else
                             np.nan_to_num(values).astype(dtype) if kind in "iub" else
                             values.astype(dtype))
        if "label" in f and columns is not None:
            f["label"].attrs["columns"] = columns
        for key in attrs:
            if key == "bad recipe":
                f.attrs["recipe"] = "{not json"
            else:
                f.attrs[key] = "{}" if key == "recipe" else 1


@fuzz(700)
@given(dataset_files(), st.sampled_from([None, ("img",), ()]), st.sampled_from([None, 2, 0]))
def test_reading_any_data_set_is_a_clean_error_or_a_valid_set(case, fields, rows):
    spec, attrs, columns = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "set.h5"
        write_dataset_file(path, spec, attrs, columns)
        before = sha(path)
        try:
            ds = files.load_dataset(path, fields=fields, rows=rows)
        except GalaxiesError:
            pass
        else:
            assert ds.label.shape == (len(ds), len(LABEL_COLUMNS))
            for name in FIELDS:
                value = getattr(ds, name)
                assert value is None or value.dtype.kind == "f", (name, value.dtype)
            if ds.img is not None:
                assert ds.img.shape == (len(ds), IMAGE_SIZE, IMAGE_SIZE)
            try:
                ds.check_finite()
            except GalaxiesError:
                assert any(not np.isfinite(a).all() for a in (ds.img, ds.img_nonoise, ds.psf_img)
                           if a is not None)
        assert sha(path) == before
    tried("data sets")


# --------------------------------------------------------------------------- predictions

@fuzz(500)
@given(n=st.integers(0, 5), pred_shape=st.sampled_from(["ok", "4 columns", "1-d", "scalar"]),
       pred_dtype=DTYPES, index_dtype=DTYPES, with_std=st.booleans(),
       std_shape=st.sampled_from(["ok", "short"]),
       attrs=st.sets(st.sampled_from(["estimator", "dataset", "seconds_per_image",
                                      "bad seconds"])),
       extra=st.booleans())
def test_reading_any_predictions_file_is_a_clean_error_or_valid(n, pred_shape, pred_dtype,
                                                                index_dtype, with_std, std_shape,
                                                                attrs, extra):
    shapes = {"ok": (n, 5), "4 columns": (n, 4), "1-d": (n,), "scalar": ()}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("pred", data=np.ones(shapes[pred_shape]).astype(pred_dtype))
            f.create_dataset("index", data=np.arange(n).astype(index_dtype))
            if with_std:
                f.create_dataset("pred_std", data=np.ones((n, 5) if std_shape == "ok" else (n, 2)))
            if extra:
                f.create_group("converged")
            for key in attrs:
                f.attrs["seconds_per_image" if key == "bad seconds" else key] = (
                    "soon" if key == "bad seconds" else ("x" if key != "seconds_per_image" else 1.0))
        before = sha(path)
        try:
            p = files.load_predictions(path)
        except GalaxiesError:
            pass
        else:
            assert p.pred.shape == (n, 5) and p.index.shape == (n,) and p.index.dtype == np.int64
            assert np.isfinite(p.seconds_per_image)
        assert sha(path) == before
    tried("predictions")


# ------------------------------------------------------------------------------- cutouts

def npy_bytes(array) -> bytes:
    buffer = bytes_io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@st.composite
def uploads(draw):
    """Cutout files, valid and broken: random bytes, good files truncated or with their
    header's shape or dtype rewritten, archives with several members, FITS tables."""
    kind = draw(st.sampled_from(["random", "npy", "npz", "fits", "fits.gz", "header claim"]))
    shape = draw(st.sampled_from([(64, 64), (1, 64, 64), (32, 32), (64,), (3, 64, 64), ()]))
    dtype = draw(st.sampled_from(["<f4", "<f8", "<i2", "|S3", "<c8"]))
    array = np.zeros(shape, dtype=dtype)
    if kind == "random":
        data = draw(st.binary(max_size=4096))
    elif kind == "npy":
        data = npy_bytes(array)
    elif kind == "npz":
        buffer = bytes_io.BytesIO()
        names = draw(st.lists(st.sampled_from(["img", "mask", "other"]), min_size=1, max_size=3, unique=True))
        np.savez(buffer, **{k: array for k in names})
        data = buffer.getvalue()
    elif kind == "header claim":
        buffer = bytes_io.BytesIO()
        claim = draw(st.sampled_from([(10**6, 10**6), (64, 64), (2**31, 2), (0, 64)]))
        np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False,
                                                      "shape": claim})
        data = buffer.getvalue() + draw(st.binary(max_size=256))
    else:
        from astropy.io import fits
        buffer = bytes_io.BytesIO()
        hdu = (fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.zeros(3))])
               if draw(st.booleans()) and kind == "fits" else
               fits.PrimaryHDU(array if array.dtype.kind in "iuf" and array.ndim else None))
        hdu.writeto(buffer)
        data = buffer.getvalue()
        if kind == "fits.gz":
            import gzip
            data = gzip.compress(data)
    if draw(st.booleans()) and data:
        data = data[:draw(st.integers(0, len(data)))]
    name = draw(st.sampled_from(["", "x.npy", "x.npz", "x.fits", "x.fits.gz", "x.txt"]))
    return data, name


@fuzz(700)
@given(uploads())
def test_reading_any_upload_is_a_clean_error_or_a_cutout(upload):
    data, name = upload
    try:
        image = cutouts.read_cutout(data, name)
    except GalaxiesError:
        pass
    except zipfile.BadZipFile as err:  # pragma: no cover - a failure of the property
        pytest.fail(f"zipfile error escaped: {err}")
    else:
        assert image.shape == (IMAGE_SIZE, IMAGE_SIZE) and image.dtype == np.float32
        assert np.isfinite(image).all()
    tried("uploads")


# ------------------------------------------------------------------------ the command line

OPTION_VALUES = st.sampled_from(["0", "-1", "1", "2", "1e5", "nan", "inf", "random", "", "x",
                                 "10000000000000", "-0", "3.5", "--force"])
COMMANDS = {
    "generate": ["--size", "--sersics", "--psf", "--sigma", "--seed", "--jobs"],
    "generate-test": ["--size", "--flux", "--sersic-n", "--sersic-r", "--g1", "--g2", "--psf",
                      "--sigma", "--seed"],
    "crb": ["--flux", "--sersic-n", "--sersic-r", "--g1", "--g2", "--psf", "--sigma", "--limit",
            "--jobs"],
    "fit": ["--limit", "--jobs"],
    "predict": ["--limit", "--batch-size"],
    "train": ["--data", "--out", "--epochs", "--batch-size", "--limit", "--seed", "--size",
              "--condition", "--inputs", "--schedule", "--learning-rate", "--profile"],
    "datasets": ["--only", "--jobs", "--profile"],
    "run": ["--only", "--jobs", "--profile"],
}


@fuzz(600)
@given(command=st.sampled_from(sorted(COMMANDS)), data=st.data())
def test_parsing_any_command_line_is_a_clean_usage_error_or_a_parse(command, data):
    options = data.draw(st.lists(st.tuples(st.sampled_from(COMMANDS[command] + ["--bogus"]),
                                           OPTION_VALUES), max_size=4))
    positional = data.draw(st.lists(st.sampled_from(["a.h5", "b.h5", "lbfgsb", "models/x"]),
                                    max_size=3))
    args = positional + [item for pair in options for item in pair]
    cmd = main.get_command(click.Context(main), command)
    try:
        with cmd.make_context(command, list(args)) as ctx:
            assert isinstance(ctx.params, dict)
    except click.ClickException:
        pass
    except click.exceptions.Exit:
        pass
    tried("command lines")
