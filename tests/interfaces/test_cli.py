"""The command line: the seed's scripts, exit codes, one-line errors, no partial files."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from galaxies.storage import files

ROOT = Path(__file__).resolve().parents[2]


def run(*args, **kwargs):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, **kwargs)


def galaxies(*args):
    return run("-m", "galaxies.interfaces.cli", *args)


def test_seed_generator_script(tmp_path):
    out = tmp_path / "train.h5"
    done = run("data/generator.py", out, "--size", 12, "--sersics", 3, "--psf", 0.6,
               "--noise", 300, "--seed", 4, "--jobs", 1)
    assert done.returncode == 0, done.stderr
    ds = files.load_dataset(out)
    assert len(ds) == 12 and (ds.psf_fwhm == np.float32(0.6)).all() and (ds.sigma == 300).all()


def test_seed_test_script(tmp_path):
    out = tmp_path / "test.h5"
    done = run("data/gen_test.py", out, "--size", 5, "--flux", 2e5, "--sersic-index", 2,
               "--sersic-radius", 0.4, "--g1", 0.1, "--g2", -0.2, "--psf", 0.7, "--noise", 250,
               "--seed", 1, "--jobs", 2)
    assert done.returncode == 0, done.stderr
    ds = files.load_dataset(out)
    np.testing.assert_allclose(ds.label[0], [2e5, 2, 0.4, 0.1, -0.2], rtol=1e-6)
    assert ds.psf_fwhm[0] == np.float32(0.7) and ds.sigma[0] == 250


@pytest.mark.parametrize("args, message", [
    (["generate", "{out}", "--rows", "5", "--psf-fwhm", "2.0"], "psf_fwhm = 2 is outside"),
    (["generate", "{out}", "--rows", "5", "--sigma", "1000"], "sigma = 1000 is outside"),
    (["generate", "{out}", "--rows", "-3"], "'--rows': -3"),
    (["generate", "{out}", "--rows", "5", "--sersics", "0"], "'--sersics': 0"),
    (["generate-test", "{out}", "--rows", "5", "--sersic-n", "9"], "sersic_n = 9 is outside"),
    (["generate-test", "{out}", "--rows", "5", "--g1", "0.6", "--g2", "0.6"], "shear"),
    (["generate-test", "{out}", "--rows", "5", "--flux", "1e7"], "flux = 1e+07 is outside"),
])
def test_out_of_range_option_exits_2_with_one_line_and_no_file(tmp_path, args, message):
    out = tmp_path / "x.h5"
    done = galaxies(*[a.format(out=out) for a in args])
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("galaxies: error:") and message in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_force(tmp_path):
    out = tmp_path / "x.h5"
    out.write_bytes(b"keep me")
    done = galaxies("generate-test", out, "--rows", "3")
    assert done.returncode == 2 and "already exists" in done.stderr and "--force" in done.stderr
    assert out.read_bytes() == b"keep me"
    done = galaxies("generate-test", out, "--rows", "3", "--force")
    assert done.returncode == 0, done.stderr
    assert len(files.load_dataset(out)) == 3


@pytest.mark.parametrize("sig, jobs", [(signal.SIGINT, 1), (signal.SIGTERM, 1), (signal.SIGTERM, 2)])
def test_interrupted_generation_leaves_no_file_but_a_resumable_partial(tmp_path, sig, jobs):
    folder = tmp_path / "out"
    folder.mkdir()
    log = tmp_path / "stderr.txt"
    # The child gets SIGINT's default action back: a shell script's background job (``cmd &``)
    # inherits SIGINT ignored, and Python then never raises KeyboardInterrupt. Its output goes
    # to a file (a pipe nobody reads could block it); with -X faulthandler, SIGABRT makes it
    # print where each thread is, should it ever hang.
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "galaxies.interfaces.cli",
                                 "generate", str(folder / "big.h5"), "--rows", "100000",
                                 "--sersics", "50", "--jobs", str(jobs)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while not any(folder.iterdir()) and time.time() < deadline:  # wait for the temporary file
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(sig)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        proc.wait(timeout=30)
        pytest.fail(f"generation did not stop within 120 s of signal {sig!r}; its stderr:\n"
                    f"{log.read_text()[-5000:]}")
    assert proc.returncode != 0
    left = [p.name for p in folder.iterdir()]
    # Only the partial file, and only once a chunk is complete (resumable with --resume).
    assert left in ([], [".tmp-partial-big.h5"]), f"an interrupted run left {left}"
    if left:
        assert "--resume continues" in log.read_text().splitlines()[-1]


def test_generate_resume(tmp_path):
    """A partial file is refused without --resume, resumed with the same settings only."""
    out = tmp_path / "set.h5"
    reference = tmp_path / "ref.h5"
    args = ["--rows", "30", "--sersics", "3", "--seed", "2", "--jobs", "1"]
    assert galaxies("generate", reference, *args).returncode == 0
    # an interrupted run's partial file: the reference, its one chunk not done and blanked
    import h5py

    from galaxies.storage import resumable
    with h5py.File(reference) as src, h5py.File(resumable.partial_name(out), "w") as dst:
        for key in src:
            src.copy(key, dst)
        dst.attrs.update(src.attrs)
        dst.attrs["chunks_done"] = np.array([0], np.uint8)
        dst.attrs["chunk_stats"] = np.zeros((1, 2), np.int64)
        dst.attrs["chunk_rows"] = 256
        dst["img"][...] = 0
    done = galaxies("generate", out, *args)
    assert done.returncode == 2 and "continue it with --resume" in done.stderr
    done = galaxies("generate", out, *args[:-3], "3", "--jobs", "1", "--resume")
    assert done.returncode == 2 and "cannot resume" in done.stderr and "seed 2 in the file, 3 asked" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = galaxies("generate", out, *args, "--resume")
    assert done.returncode == 0, done.stderr
    assert not resumable.partial_name(out).exists()
    np.testing.assert_array_equal(files.load_dataset(out).img, files.load_dataset(reference).img)


def test_every_command_has_the_one_line_error_handler():
    """The group's command class applies the handler to every command (none repeats it)."""
    from galaxies.interfaces import pipeline
    from galaxies.interfaces.cli import main
    from galaxies.interfaces.cli.options import Command, user_errors
    wrapper = user_errors(lambda: None).__code__
    for name, command in main.commands.items():
        assert isinstance(command, Command), f"galaxies {name} is not made by the Command class"
        assert command.callback.__code__ is wrapper, f"galaxies {name} lacks user_errors"
        assert command.callback.__wrapped__.__code__ is not wrapper, f"galaxies {name}: twice"
    done = galaxies("run", "--only", "nonexistent-step")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "galaxies: error: unknown step(s) ['nonexistent-step']; choose from "
        + ", ".join(s.name for s in pipeline.STEPS)]


def test_third_party_log_lines_do_not_precede_the_error(tmp_path, small_sets):
    model = tmp_path / "model"
    model.mkdir()
    (model / "training.json").write_text('{"config": {"model": "xception"}}')
    (model / "scalers.json").write_text("{}")
    (model / "model.keras").write_bytes(b"garbage")
    done = galaxies("predict", model, small_sets["fixed"], tmp_path / "p.h5")  # imports TensorFlow
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "model.keras: not a Keras model" in lines[0]
    # silencing imports nothing and leaves every library importable after it
    done = run("-c", "import sys; from galaxies.runtime.console import quiet_libraries; quiet_libraries(); "
               "assert 'astropy' not in sys.modules; import astropy.io.fits, absl.logging")
    assert done.returncode == 0, done.stderr


def test_a_log_gets_no_progress_bar_frames(tmp_path):
    from galaxies.runtime import console
    done = galaxies("generate-test", tmp_path / "t.h5", "--rows", "40")  # stderr is a pipe
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "%|" not in done.stderr, done.stderr
    assert not console.show_progress(True, stream=open(tmp_path / "log.txt", "w"))
    assert not console.show_progress(False)

    class Terminal:
        def isatty(self):
            return True
    assert console.show_progress(True, stream=Terminal())
