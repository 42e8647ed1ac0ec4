"""The one rule for outputs (`galaxies.storage.atomic`), and a full disk.

Only a regular file (or a folder holding ``training.json``) is ever replaced, with ``--force``;
a missing parent folder exists only if the command succeeded; every message names the path the
user typed; a full disk is one line, exit 2, with no temporary file left. The full disk is
simulated (writes raising ``ENOSPC``) everywhere, and real (a small tmpfs) where this machine
lets the tests mount one.
"""
import contextlib
import errno
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from galaxies.interfaces.cli import main
from galaxies.runtime.errors import OutputExistsError, ResourceError
from galaxies.storage import atomic

from cutout_files import one_line_error, simulated, write

ROOT = Path(__file__).resolve().parents[2]


def one_line(result, *words):
    """`one_line_error`, and the line names neither a temporary file nor an errno."""
    line = one_line_error(result, *words)
    assert atomic.TMP_PREFIX not in line and "Errno" not in line, line


def generate_test(out, *extra):
    return CliRunner().invoke(main, ["generate-test", str(out), "--rows", "2", *extra])


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(atomic.TMP_PREFIX)]


def special_files(folder: Path) -> dict[str, Path]:
    """A FIFO, a socket, a character device (a copy of /dev/null's numbers: root only), links."""
    made = {"fifo": folder / "fifo"}
    os.mkfifo(made["fifo"])
    made["socket"] = folder / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(made["socket"]))
    server.close()
    with contextlib.suppress(PermissionError):
        os.mknod(folder / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        made["device"] = folder / "null"
    regular = folder / "regular.h5"
    regular.write_bytes(b"keep")
    for name, target in (("link to a file", regular), ("link to a fifo", made["fifo"]),
                         ("dangling link", folder / "gone")):
        made[name] = folder / name.replace(" ", "_")
        made[name].symlink_to(target)
    made["loop"] = folder / "loop"
    made["loop"].symlink_to(folder / "loop")
    return made


def test_force_never_replaces_a_special_file_or_a_link(tmp_path):
    made = special_files(tmp_path)
    kinds = {p: os.lstat(p).st_mode for p in made.values()}
    for name, path in made.items():
        result = generate_test(path, "--force")
        one_line(result, str(path))
        assert os.lstat(path).st_mode == kinds[path], name  # still what it was
    assert (tmp_path / "regular.h5").read_bytes() == b"keep"
    assert not leftovers(tmp_path)


def test_measure_does_not_replace_a_device(tmp_path):
    noisy, _ = simulated(0.3, 33, 150.0, 1)
    cutout = write(tmp_path / "c.fits", noisy, 0.3)
    fifo = tmp_path / "mynull"
    os.mkfifo(fifo)
    result = CliRunner().invoke(main, ["measure", str(cutout), str(fifo), "--psf-fwhm", "0.7",
                                       "--force"])
    one_line(result, "mynull", "named pipe", "regular file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_folder_is_replaced_only_when_it_holds_a_model(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "keep.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="not a model directory"):
        with atomic.atomic_dir(data, force=True, marker="training.json"):
            pass
    assert (data / "keep.txt").read_text() == "x"
    model = tmp_path / "model"
    model.mkdir()
    (model / "training.json").write_text("{}")
    with atomic.atomic_dir(model, force=True, marker="training.json") as tmp:
        (tmp / "training.json").write_text('{"new": 1}')
    assert (model / "training.json").read_text() == '{"new": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "model"]


def test_missing_parents_exist_only_after_success(tmp_path):
    out = tmp_path / "a" / "b" / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("the work failed")
    assert list(tmp_path.iterdir()) == []
    result = generate_test(tmp_path / "x" / "y" / "set.h5", "--psf-fwhm", "99")  # refused: no folder
    one_line(result, "psf")
    assert list(tmp_path.iterdir()) == []
    atomic.write_text(out, "whole")
    assert out.read_text() == "whole" and not leftovers(tmp_path)


def test_a_parent_that_is_a_file_names_the_path_typed(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_line(generate_test(blocker / "sub" / "x.h5"), str(blocker / "sub" / "x.h5"), "not a folder")


def test_a_simulated_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "new" / "p.h5"
    with pytest.raises(ResourceError, match=r"p\.h5: no space left"):
        with atomic.atomic_h5(out) as f:
            f.create_dataset("x", data=np.zeros(3))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(atomic.temporary_name(out)))
    assert list(tmp_path.iterdir()) == []
    # HDF5 says it in its message, without an errno attribute
    assert atomic.is_disk_full(OSError("Can't write data (file write failed: errno = 28, "
                                       "error message = 'No space left on device')"))
    assert not atomic.is_disk_full(OSError("Can't write data (wrong type)"))

    from astropy.table import Table

    def full(*args, **kwargs):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    noisy, _ = simulated(0.3, 33, 150.0, 1)
    cutout = write(tmp_path / "c.fits", noisy, 0.3)
    monkeypatch.setattr(Table, "write", full)
    table = tmp_path / "out" / "m.csv"
    result = CliRunner().invoke(main, ["measure", str(cutout), "--psf-fwhm", "0.7", "--sigma",
                                       "150", str(table)])
    one_line(result, str(table), "disk quota exceeded")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.fits"]


@contextlib.contextmanager
def mounted_tmpfs(mount, options: str):
    """A tmpfs mounted at the folder ``mount`` with ``options`` for the block; the test is
    skipped where this machine does not let the tests mount one (not root, or in a container
    without the capability): the simulated disk covers that case."""
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def full_tmpfs(tmp_path):
    """A 256 kB tmpfs, filled."""
    with mounted_tmpfs(tmp_path / "disk", "size=256k") as mount:
        with contextlib.suppress(OSError):
            with open(mount / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 65536)
        yield mount


def test_a_real_full_disk_is_one_line_and_leaves_nothing(full_tmpfs, small_sets):
    out = full_tmpfs / "sub" / "fit.h5"
    done = subprocess.run([sys.executable, "-m", "galaxies.interfaces.cli", "fit", str(small_sets["fixed"]),
                           str(out), "--limit", "2", "--jobs", "1"], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert str(out) in lines[0] and "no space left" in lines[0], lines[0]
    assert sorted(p.name for p in full_tmpfs.iterdir()) == ["filler"]


def test_an_input_that_is_not_a_regular_file_is_one_line(tmp_path):
    fifo = tmp_path / "fifo.fits"
    os.mkfifo(fifo)  # a reader would wait for a writer for ever
    inputs = [fifo]
    with contextlib.suppress(PermissionError):  # a copy of /dev/zero: a reader never ends
        os.mknod(tmp_path / "zero.fits", stat.S_IFCHR | 0o666, os.makedev(1, 5))
        inputs.append(tmp_path / "zero.fits")
    for path in inputs:
        one_line(CliRunner().invoke(main, ["measure", str(path), str(tmp_path / "o.csv"),
                                           "--psf-fwhm", "0.7"]), str(path), "not a regular file")
        one_line(CliRunner().invoke(main, ["evaluate", str(path), str(path)]), str(path),
                 "not a regular file")


def test_a_read_only_file_system_is_one_line(tmp_path):
    with mounted_tmpfs(tmp_path / "ro", "size=4m,ro") as mount:
        one_line(generate_test(mount / "new" / "set.h5"), str(mount / "new" / "set.h5"),
                 "read-only file system")
        assert list(mount.iterdir()) == []
