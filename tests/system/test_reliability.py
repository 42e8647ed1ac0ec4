"""No command destroys data, and every bad input ends in one line and status 2.

Each test here is one case a careful user met (the reliability issue): it failed on the code
before the change and passes after it.
"""
import hashlib
import io as bytes_io
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from galaxies.cutouts import uploads
from galaxies.evaluation import estimators, evaluate
from galaxies.inference import crb_sets
from galaxies.interfaces.cli import main
from galaxies.interfaces.cli.options import user_errors
from galaxies.runtime.errors import FileFormatError, InputError, OutputExistsError
from galaxies.storage import atomic, files

ROOT = Path(__file__).resolve().parents[2]


def galaxies(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "galaxies.interfaces.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def one_line_error(done, *words):
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("galaxies: error:"), done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def copy_set(src, dst) -> Path:
    dst.write_bytes(Path(src).read_bytes())
    return dst


# ------------------------------------------------------------------------------ data loss

def test_train_never_deletes_a_folder_that_holds_no_model(small_sets, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    keep = copy_set(small_sets["random"], data / "v1.h5")
    result = CliRunner().invoke(main, ["train", str(keep), str(data), "--epochs", "1",
                                       "--force"])
    assert result.exit_code == 2 and "not a model directory" in result.output
    assert keep.is_file() and digest(keep) == digest(small_sets["random"])


def test_train_asks_for_force_before_replacing_a_model(small_sets, tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "training.json").write_text("{}")
    result = CliRunner().invoke(main, ["train", str(small_sets["random"]), str(model),
                                       "--epochs", "1"])
    assert result.exit_code == 2 and "--force" in result.output
    assert (model / "training.json").read_text() == "{}"


def test_fit_and_predict_keep_an_existing_output_without_force(small_sets, tmp_path):
    out = tmp_path / "pred.h5"
    out.write_bytes(b"earlier results")
    one_line_error(galaxies("fit", small_sets["fixed"], out, "--limit", 1, "--jobs", 1),
                   "already exists", "--force")
    one_line_error(galaxies("predict", "lbfgsb", small_sets["fixed"], out, "--limit", 1),
                   "already exists", "--force")
    assert out.read_bytes() == b"earlier results"


def test_predict_without_a_model_names_the_profile_s_recommended_network(small_sets, tmp_path):
    from galaxies.runtime import profiles
    out = tmp_path / "pred.h5"
    full = profiles.get("full")
    assert full.recommended in full.xception_variants  # every profile trains its own
    assert not full.recommended_dir.exists()  # no full-profile model on a CPU machine
    one_line_error(galaxies("predict", small_sets["fixed"], out, "--profile", "full"),
                   full.recommended, "not trained", "MODEL_DIR")
    one_line_error(galaxies("predict", out), "1 path(s)", "[MODEL_DIR] DATA PRED")
    assert not out.exists()


def test_no_command_writes_over_its_own_input_even_with_force(small_sets, tmp_path):
    data = copy_set(small_sets["fixed"], tmp_path / "snr60.h5")
    before = digest(data)
    one_line_error(galaxies("fit", data, data, "--limit", 1, "--jobs", 1, "--force"),
                   "also an input")
    one_line_error(galaxies("predict", "lbfgsb", data, data, "--force"), "also an input")
    assert digest(data) == before


def test_two_writers_of_one_name_cannot_both_win(tmp_path):
    target = tmp_path / "set.h5"
    with pytest.raises(OutputExistsError, match="meanwhile"):
        with atomic.atomic_path(target) as mine:
            mine.write_text("mine")
            with atomic.atomic_path(target) as theirs:  # another process, finishing first
                theirs.write_text("theirs")
    assert target.read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["set.h5"]  # no temporary left


# -------------------------------------------------------------- bad options, one line each

@pytest.mark.parametrize("args, words", [
    (["generate", "{out}", "--rows", str(10**12)], ["GB", "free"]),
    (["generate", "{out}", "--rows", "10", "--jobs", "1000"], ["jobs = 1000", "choose 1 to"]),
    (["generate", "{out}", "--rows", "10", "--jobs", "0"], ["'--jobs'", "0"]),
    (["generate", "{out}", "--rows", "10", "--jobs", "-2"], ["'--jobs'", "-2"]),
    (["generate", "{out}", "--rows", "10", "--seed", "-1"], ["'--seed'", "-1"]),
    (["generate-test", "{out}", "--rows", str(10**12)], ["GB", "free"]),
    (["predict", "lbfgsb", "{data}", "{out}", "--limit", "-1"], ["'--limit'", "-1"]),
    (["predict", "lbfgsb", "{data}", "{out}", "--batch-size", "0"], ["'--batch-size'", "0"]),
    (["crb", "{data}", "--limit", "0"], ["'--limit'", "0"]),
    (["train", "{data}", "{out}", "--batch-size", "0"], ["'--batch-size'"]),
    (["generate", "{out}", "--rows"], ["'--rows'"]),
    (["generate", "{out}", "--nonsense"], ["--nonsense"]),
])
def test_refused_options_name_the_value(small_sets, tmp_path, args, words):
    start = time.perf_counter()
    done = galaxies(*[a.format(out=tmp_path / "out.h5", data=small_sets["fixed"]) for a in args])
    one_line_error(done, *words)
    assert time.perf_counter() - start < 60  # refused up front, not after minutes of work
    assert not list(tmp_path.iterdir())


def test_the_seed_script_refuses_a_huge_size_up_front(tmp_path):
    done = subprocess.run([sys.executable, "data/gen_test.py", str(tmp_path / "t.h5"), "--size",
                           str(10**12)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    one_line_error(done, "GB")
    assert not list(tmp_path.iterdir())


def test_a_parent_that_is_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_line_error(galaxies("generate-test", blocker / "x.h5", "--rows", 2))


def test_a_read_only_place_is_one_line(small_sets, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out.h5"))
    monkeypatch.setattr(atomic, "check_writable", refuse)
    result = CliRunner().invoke(main, ["generate-test", str(tmp_path / "out.h5"), "--rows", "2"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"galaxies: error: {tmp_path / 'out.h5'}: permission denied"]


def test_a_bug_is_not_reported_as_a_user_error():
    @user_errors
    def buggy():
        raise ValueError("index 5 is out of bounds")  # a library's ValueError: a bug
    with pytest.raises(ValueError):
        buggy()


# ------------------------------------------------------------------- files that lie

def test_a_data_set_of_bytes_is_refused(small_sets, tmp_path):
    bad = copy_set(small_sets["fixed"], tmp_path / "bytes.h5")
    with h5py.File(bad, "r+") as f:
        shape = f["img"].shape
        del f["img"]
        f.create_dataset("img", shape=shape, dtype="S4")
    with pytest.raises(FileFormatError, match="'img' holds"):
        files.load_dataset(bad)


def test_nan_pixels_are_refused_not_predicted(small_sets, tmp_path):
    bad = copy_set(small_sets["fixed"], tmp_path / "nan.h5")
    with h5py.File(bad, "r+") as f:
        f["img"][3, 10, 10] = np.nan

    class Zeros(estimators.Estimator):
        def predict(self, images, psf_fwhm=None, sigma=None, psf_img=None):
            return np.zeros((len(images), 5)), None

    with pytest.raises(FileFormatError, match="1 row.*NaN.*row 3"):
        Zeros().predict_file(bad, tmp_path / "p.h5")
    assert not (tmp_path / "p.h5").exists()


def test_a_file_claiming_millions_of_rows_is_refused_before_reading(small_sets, tmp_path):
    liar = tmp_path / "liar.h5"
    with h5py.File(small_sets["fixed"], "r") as src, h5py.File(liar, "w") as dst:
        for name in src:
            dst.create_dataset(name, shape=(10**7,) + src[name].shape[1:], dtype=src[name].dtype)
        dst["label"].attrs["columns"] = src["label"].attrs["columns"]
        dst.attrs.update(src.attrs)
    assert liar.stat().st_size < 100_000
    with pytest.raises(FileFormatError, match="truncated"):
        files.load_dataset(liar)


def test_bounds_survive_a_folder_they_cannot_be_cached_in(small_sets, tmp_path, monkeypatch):
    data = copy_set(small_sets["fixed"], tmp_path / "snr60.h5")

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(crb_sets.cache_path(data)))
    monkeypatch.setattr(atomic, "atomic_h5", read_only)
    with pytest.warns(UserWarning, match="not cached"):
        bounds = crb_sets.for_dataset(data, limit=2, jobs=1, progress=False)
    assert np.isfinite(bounds[:2]).all() and not crb_sets.cache_path(data).exists()


def _predictions(tmp_path, dataset, index, name="p.h5"):
    return files.write_predictions(tmp_path / name, np.zeros((len(index), 5)), np.asarray(index),
                                   estimator="x", dataset=dataset, seconds_per_image=1e-3)


def test_evaluate_refuses_predictions_of_another_set(small_sets, tmp_path):
    other = _predictions(tmp_path, "snr30", np.arange(16))
    with pytest.raises(InputError, match="'snr30'"):
        evaluate.summary(other, small_sets["fixed"])
    one_line_error(galaxies("evaluate", small_sets["fixed"], other, "--no-crb"), "snr30")


def test_evaluate_refuses_repeated_and_negative_rows(small_sets, tmp_path):
    twice = _predictions(tmp_path, "snr60", [0, 1, 1], "twice.h5")
    with pytest.raises(InputError, match="row 1 2 times"):
        evaluate.summary(twice, small_sets["fixed"])
    negative = _predictions(tmp_path, "snr60", [0, -3], "neg.h5")
    with pytest.raises(InputError, match="row -3"):
        evaluate.summary(negative, small_sets["fixed"])


def test_a_leftover_temporary_file_is_not_listed(small_sets, tmp_path):
    _predictions(tmp_path, "snr60", np.arange(2), "est_v1__snr60.h5")
    (tmp_path / f"{atomic.TMP_PREFIX}123-est_v1__snr30.h5").write_bytes(b"half written")
    table = evaluate.list_predictions(tmp_path)
    assert table["testset"].tolist() == ["snr60"]


# ----------------------------------------------------------------------------- SIGTERM

def _workers(pid: int) -> list[int]:
    """The pool's worker processes of process ``pid`` (spawned children running spawn_main)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if parent == pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def bigger_set(tmp_path_factory):
    """160 random galaxies: enough bounds for a pool of two to work for several seconds."""
    from galaxies.simulation.generate import RandomSpec, generate
    return generate(tmp_path_factory.mktemp("bigger") / "v1.h5",
                    RandomSpec(sersics=4, psf_fwhm=0.5, sigma=200.0), size=160, seed=3, jobs=1,
                    progress=False, name="v1")


@pytest.mark.slow
@pytest.mark.parametrize("command", ["fit", "crb"])
def test_sigterm_stops_the_workers_and_says_so(small_sets, bigger_set, tmp_path, command):
    # GalSim's path: the one with worker processes (the JAX model's runs in the command's own)
    args = (["fit", str(small_sets["random"]), str(tmp_path / "fit.h5"), "--jobs", "2"]
            if command == "fit" else
            ["crb", str(copy_set(bigger_set, tmp_path / "v1.h5")), "--jobs", "2"])
    args += ["--renderer", "galsim"]
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "galaxies.interfaces.cli", *args], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.time() + 90
    workers: list[int] = []
    while len(workers) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        workers = _workers(proc.pid)
    assert proc.poll() is None and workers, "the command finished before it could be stopped"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == 143
    assert "galaxies: terminated (SIGTERM)" in log.read_text()
    time.sleep(0.5)
    assert [w for w in workers if _running(w)] == [], "worker processes outlived the command"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(atomic.TMP_PREFIX)]


# ----------------------------------------------------------------------------- uploads

def test_an_npy_header_claiming_a_huge_array_is_refused_before_loading():
    buffer = bytes_io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**6, 10**6)})
    data = buffer.getvalue()
    assert len(data) < 200
    with pytest.raises(uploads.CutoutError, match="1000000 x 1000000"):
        uploads.read_cutout(data, "huge.npy")


def test_an_npz_bomb_is_refused_before_decompressing():
    buffer = bytes_io.BytesIO()
    np.savez_compressed(buffer, img=np.zeros((4096, 4096)))  # 134 MB of zeros in 130 kB
    data = buffer.getvalue()
    assert len(data) < uploads.MAX_UPLOAD_BYTES
    start = time.perf_counter()
    with pytest.raises(uploads.CutoutError, match="unpacks to 134 MB"):
        uploads.read_cutout(data, "bomb.npz")
    assert time.perf_counter() - start < 1.0


def test_a_gzipped_fits_cutout_is_read():
    import gzip

    from astropy.io import fits
    image = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
    buffer = bytes_io.BytesIO()
    fits.PrimaryHDU(image).writeto(buffer)
    got = uploads.read_cutout(gzip.compress(buffer.getvalue()), "galaxy.fits.gz")
    np.testing.assert_array_equal(got, image)
