"""Property-based tests of the readers and of the command line's option parsing (Hypothesis).

The property everywhere: a clean error of the project's (`galaxies.runtime.errors`) or a correct
result, never a traceback from somewhere else, and never a changed input file. Each test
prints how many inputs it tried; together they run over 5,000 in `make test`, whose summary
shows the count (`test_the_fuzzed_inputs_add_up`). Beyond the readers and the options: FITS
headers and WCS matrices, PSF images, output paths that are special files, links and folders,
a simulated full disk and a real one (a small tmpfs, where mounting is allowed); no traceback,
no input changed, no non-regular file replaced, no temporary file left.
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
from hypothesis import HealthCheck, given, settings, strategies as st

from galaxies.conventions import IMAGE_SIZE, LABEL_COLUMNS
from galaxies.cutouts import uploads
from galaxies.interfaces.cli import main
from galaxies.runtime.errors import GalaxiesError
from galaxies.storage import files

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
def upload_files(draw):
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
@given(upload_files())
def test_reading_any_upload_is_a_clean_error_or_a_cutout(upload):
    data, name = upload
    try:
        image = uploads.read_cutout(data, name)
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
    "generate": ["--rows", "--sersics", "--psf-fwhm", "--sigma", "--seed", "--jobs", "--size"],
    "generate-test": ["--rows", "--flux", "--sersic-n", "--sersic-r", "--g1", "--g2",
                      "--psf-fwhm", "--sigma", "--seed", "--psf"],
    "crb": ["--flux", "--sersic-n", "--sersic-r", "--g1", "--g2", "--psf-fwhm", "--sigma",
            "--limit", "--jobs", "--dataset"],
    "fit": ["--limit", "--jobs"],
    "predict": ["--limit", "--batch-size", "--profile"],
    "train": ["--model", "--epochs", "--batch-size", "--limit", "--seed", "--arch", "--condition",
              "--inputs", "--schedule", "--learning-rate", "--profile", "--data", "--out"],
    "evaluate": ["--jobs", "--no-crb"],
    "measure": ["--method", "--model", "--profile", "--psf", "--psf-fwhm", "--sigma", "--steps",
                "--out"],
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


# ------------------------------------------------------- FITS headers, WCS matrices, PSFs

from galaxies.cutouts import fits_files, measure_inputs  # noqa: E402
from galaxies.runtime.errors import USER_ERRORS, ResourceError  # noqa: E402
from galaxies.storage import atomic

SCALES = st.sampled_from([0.0, 1e-12, 1e-7, 0.03 / 3600, 0.3 / 3600, 0.3, 1.0, 1e3, -0.3 / 3600,
                          float("inf"), float("nan")])
HEADER_VALUES = st.one_of(st.sampled_from(["0.7", "", "T", True, False, 0, -1, 0.7, 120, 1e-12,
                                           1e300, 2**62]),
                          st.floats(-10, 10, allow_nan=False),
                          st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8))


@st.composite
def fits_cutout_files(draw):
    """A FITS image with a WCS drawn from the ways one goes wrong: pixel scales in the wrong
    unit, rotated, mirrored, skewed or singular CD matrices, odd units and projections, a
    header keyword of any kind; or no WCS at all."""
    from astropy.io import fits
    shape = draw(st.sampled_from([(16, 16), (24, 20), (33, 33), (8, 40), (3, 16, 16)]))
    data = np.random.default_rng(draw(st.integers(0, 3))).normal(0, 1, shape).astype(np.float32)
    data[..., shape[-2] // 2, shape[-1] // 2] += 50
    hdr = fits.Header()
    if draw(st.integers(0, 5)):
        scale, angle = draw(SCALES), draw(st.floats(-360, 360))
        skew, mirror = draw(st.sampled_from([0.0, 0.0, 0.005, 0.3, 1.0])), draw(st.booleans())
        c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        matrix = np.array([[-c, s], [s, c]]) @ np.array([[1.0, skew], [0.0, 1.0]])
        matrix = matrix @ np.diag([-1.0 if mirror else 1.0, 1.0]) * scale
        hdr["CTYPE1"], hdr["CTYPE2"] = draw(st.sampled_from(
            [("RA---TAN", "DEC--TAN"), ("DEC--TAN", "RA---TAN"), ("RA---TAN", "PIXEL"),
             ("GLON-CAR", "GLAT-CAR"), ("XXX", "YYY")]))
        unit = draw(st.sampled_from([None, "deg", "arcsec", "rad", "furlong"]))
        if unit:
            hdr["CUNIT1"] = hdr["CUNIT2"] = unit
        hdr["CRVAL1"], hdr["CRVAL2"] = 3.59, draw(st.sampled_from([-30.4, 89.99, 95.0]))
        hdr["CRPIX1"], hdr["CRPIX2"] = shape[-1] / 2, shape[-2] / 2
        for i in range(2):
            for j in range(2):
                if np.isfinite(matrix[i, j]):
                    hdr[f"CD{i + 1}_{j + 1}"] = float(matrix[i, j])
    if draw(st.booleans()):
        hdr["SEEING"] = draw(HEADER_VALUES)
    buffer = bytes_io.BytesIO()
    fits.PrimaryHDU(data, hdr).writeto(buffer)
    raw = buffer.getvalue()
    if draw(st.integers(0, 9)) == 0:
        raw = raw[:draw(st.integers(0, len(raw)))]
    return raw, draw(st.sampled_from([None, None, 0.3, 0.0, -1.0, 1e6])), \
        draw(st.sampled_from([None, 0.7, 0.05, 120.0, 1e-12]))


@fuzz(700)
@given(fits_cutout_files())
def test_any_fits_header_and_wcs_is_a_clean_error_or_a_checked_cutout(case):
    raw, pixel_scale, fwhm = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.fits"
        path.write_bytes(raw)
        try:
            for cutout in fits_files.read_cutouts(path, pixel_scale=pixel_scale):
                low, high = fits_files.SCALE_RANGE
                assert low <= cutout.pixel_scale <= high
                assert cutout.frame is None or (np.isfinite(cutout.frame[0])
                                                and isinstance(cutout.frame[1], bool))
                key = "SEEING" if fwhm is None else None
                used, needed = measure_inputs.check_cutout(cutout, None, None, None,
                                                           fwhm if key is None else None, key)
                fwhm_pixels = used / cutout.pixel_scale
                assert measure_inputs.PSF_LOW_PIXELS <= fwhm_pixels <= min(cutout.image.shape) / 4
                assert 0 < needed < 2e10
        except GalaxiesError:
            pass
        assert path.read_bytes() == raw
    tried("FITS headers and WCS")


@st.composite
def psf_images(draw):
    """PSF images: a Moffat centred or shifted, negative, noisy, flat, a lone hot pixel, NaN."""
    import galsim
    size = draw(st.sampled_from([15, 21, 32]))
    fwhm = draw(st.sampled_from([0.2, 0.7, 2.0, 6.0]))
    shift = draw(st.tuples(st.floats(-12, 12), st.floats(-12, 12)))
    image = galsim.Moffat(beta=2.0, fwhm=fwhm).shift(*(0.3 * np.array(shift))).drawImage(
        nx=size, ny=size, scale=0.3).array
    kind = draw(st.sampled_from(["plain", "negative", "noise", "flat", "hot pixel", "nan",
                                 "offset"]))
    rng = np.random.default_rng(draw(st.integers(0, 3)))
    if kind == "negative":
        image = image - draw(st.floats(0, 2)) * image.max() * (rng.random(image.shape) < 0.5)
    elif kind == "noise":
        image = image + rng.normal(0, draw(st.sampled_from([1e-4, 1e-2, 1.0])), image.shape)
    elif kind == "flat":
        image = np.full_like(image, draw(st.sampled_from([0.0, 1.0, -1.0])))
    elif kind == "hot pixel":
        image = image * 0
        image[rng.integers(size), rng.integers(size)] = 1.0
    elif kind == "nan":
        image[0, 0] = np.nan
    elif kind == "offset":
        image = image + draw(st.floats(-0.1, 0.1))
    return image


@fuzz(500)
@given(psf_images())
def test_any_psf_image_is_refused_or_centred_and_positive(image):
    from astropy.io import fits
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "psf.fits"
        fits.PrimaryHDU(image.astype(np.float32)).writeto(path)
        before = sha(path)
        cutout = fits_files.Cutout(np.zeros((33, 33)), "c.fits", 0, None, 0.3)
        try:
            psf, scale = fits_files.read_psf(path)
            measure_inputs.check_cutout(cutout, path, psf, scale, None, None)
        except GalaxiesError:
            pass
        else:
            centre = (np.array(psf.shape) - 1) / 2
            peak = np.unravel_index(np.argmax(psf), psf.shape)
            assert np.hypot(*(peak - centre)) <= measure_inputs.PSF_OFF_CENTRE
            assert -psf[psf < 0].sum() <= measure_inputs.PSF_NEGATIVE * psf[psf > 0].sum()
        assert sha(path) == before
    tried("PSF images")


# --------------------------------------------------------------------- output paths

OUTPUT_KINDS = ["new", "new in new folders", "regular file", "fifo", "socket", "link to a file",
                "link to a fifo", "dangling link", "loop", "folder", "model folder", "under a file"]


NAMES = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="/\0"),
                min_size=1, max_size=300).filter(lambda n: n not in (".", "..") and
                                                 not n.startswith(atomic.TMP_PREFIX))


def make_output(folder: Path, kind: str, name: str = "out.h5") -> Path:
    import os
    import socket
    out = folder / name
    if kind == "new in new folders":
        return folder / "a" / "b" / name
    if kind == "regular file":
        out.write_bytes(b"old")
    elif kind == "fifo":
        os.mkfifo(out)
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(out))
        server.close()
    elif kind in ("link to a file", "link to a fifo", "dangling link", "loop"):
        target = {"link to a file": folder / "target", "link to a fifo": folder / "fifo",
                  "dangling link": folder / "gone", "loop": out}[kind]
        if kind == "link to a file":
            target.write_bytes(b"target")
        elif kind == "link to a fifo":
            os.mkfifo(target)
        out.symlink_to(target)
    elif kind in ("folder", "model folder"):
        out.mkdir()
        (out / ("training.json" if kind == "model folder" else "data.txt")).write_text("{}")
    elif kind == "under a file":
        (folder / "file").write_bytes(b"")
        return folder / "file" / name
    return out


def snapshot(folder: Path) -> dict:
    import os
    return {p.relative_to(folder): (os.lstat(p).st_mode, p.read_bytes() if p.is_file()
                                    and not p.is_symlink() else None)
            for p in folder.rglob("*")}


@fuzz(2200)
@given(kind=st.sampled_from(OUTPUT_KINDS), force=st.booleans(),
       writer=st.sampled_from(["file", "h5", "folder"]),
       full=st.sampled_from([None, None, "ENOSPC", "EDQUOT", "hdf5 message", "EROFS"]),
       name=st.one_of(st.just("out.h5"), NAMES))
def test_any_output_path_is_written_whole_or_refused_and_nothing_special_is_replaced(
        kind, force, writer, full, name):
    import errno
    import os
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root)
        try:
            out = make_output(folder, kind, name)
        except OSError:  # a name this file system refuses for the file made in advance
            return
        if kind in ("link to a fifo", "link to a file") and name in ("target", "fifo"):
            return
        before = snapshot(folder)

        def fail():
            if full == "hdf5 message":
                raise OSError("Can't write data (file write failed: errno = 28, error message "
                              "= 'No space left on device')")
            code = getattr(errno, full)
            raise OSError(code, os.strerror(code), str(atomic.temporary_name(out)))
        try:
            if writer == "file":
                with atomic.atomic_path(out, force=force) as tmp:
                    tmp.write_bytes(b"new")
                    if full:
                        fail()
            elif writer == "h5":
                with atomic.atomic_h5(out, force=force) as f:
                    f.create_dataset("x", data=np.zeros(3))
                    if full:
                        fail()
            else:
                with atomic.atomic_dir(out, force=force, marker="training.json") as tmp:
                    (tmp / "training.json").write_text("{}")
                    if full:
                        fail()
        except USER_ERRORS as err:
            assert atomic.TMP_PREFIX not in str(err), err
            assert str(out) in str(err) or str(out.parent) in str(err), err
            if full in ("ENOSPC", "EDQUOT", "hdf5 message"):
                assert isinstance(err, (ResourceError,) + USER_ERRORS)
            assert snapshot(folder) == before  # nothing changed, no folder or temporary left
        else:
            assert not full
            written = snapshot(folder)
            assert not [p for p in written if p.name.startswith(atomic.TMP_PREFIX)]
            import stat
            mode = os.lstat(out).st_mode
            assert stat.S_ISDIR(mode) if writer == "folder" else stat.S_ISREG(mode)
            for path, (old_mode, _) in before.items():  # a special file is never replaced
                if not (stat.S_ISREG(old_mode) or stat.S_ISDIR(old_mode)):
                    assert written[path][0] == old_mode, path
        if kind in ("link to a file",):
            assert (folder / "target").read_bytes() == b"target"
    tried("output paths")


@pytest.fixture(scope="module")
def small_disk():
    """A 192 kB tmpfs, where this machine lets the tests mount one (root, and the capability);
    elsewhere the test is skipped: the simulated full disk above still runs."""
    import subprocess
    with tempfile.TemporaryDirectory() as root:
        mount = Path(root)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
        try:
            yield mount
        finally:
            subprocess.run(["umount", "-l", str(mount)], check=False)


@fuzz(400)
@given(rows=st.integers(0, 40), text=st.booleans(), nested=st.booleans())
def test_a_real_full_disk_is_a_clean_error_and_leaves_nothing(small_disk, rows, text, nested):
    out = small_disk / ("sub" if nested else "") / ("out.txt" if text else "out.h5")
    data = np.ones((rows, 32, 32), np.float32)  # 4 kB a row: up to 160 kB
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 96 * 1024)  # about half the disk taken already
    try:
        if text:
            atomic.write_text(out, "x" * data.nbytes, force=False)
        else:
            with atomic.atomic_h5(out) as f:
                f.create_dataset("img", data=data)
    except ResourceError as err:
        assert str(out) in str(err) and atomic.TMP_PREFIX not in str(err)
        assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
    else:
        assert out.is_file()
    finally:
        for path in sorted(small_disk.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
    tried("full disk")


def test_the_fuzzed_inputs_add_up(record_property):
    """Last in the file (pytest keeps a file's order; ``--dist loadfile`` keeps it on one
    worker): the count of every test above, shown by ``make test``'s summary (conftest)."""
    total = sum(COUNTS.values())
    record_property("fuzzed inputs", f"{total} ({', '.join(f'{k} {v}' for k, v in COUNTS.items())})")
    if len(COUNTS) >= 8:  # every test of the file ran (the tmpfs one may be skipped)
        assert total >= 5000, COUNTS
