"""Writes that are whole or absent: every file and folder the project writes goes through here.

A result is built under a temporary name next to its final one (``.tmp-<pid>-<name>``, which
readers skip) and put in place only when complete. Without ``force`` the final name is
*claimed* atomically (a hard link for files, a rename for folders), so two writers of the same
name cannot both succeed and nothing existing is replaced; with ``force`` an existing result is
replaced in one step. On any error, Ctrl-C or SIGTERM the temporary is removed and the final
name is left as it was.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import uuid
from pathlib import Path
from typing import Iterator

from .errors import OutputExistsError, Terminated

__all__ = ["TMP_PREFIX", "temporary_name", "check_writable", "check_output", "check_destination",
           "atomic_path", "atomic_h5", "atomic_dir", "write_text", "write_json",
           "terminate_as_interrupt"]

#: prefix of every unfinished file or folder; listings skip names that start with it
TMP_PREFIX = ".tmp-"


def temporary_name(path: str | os.PathLike) -> Path:
    """The temporary name under which ``path`` is built (same folder, so renames are atomic)."""
    path = Path(path)
    return path.with_name(f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (``kill``) into `galaxies.errors.Terminated`, a KeyboardInterrupt, so
    cleanup code runs (temporary files removed, worker processes stopped)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(f"terminated by signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_writable(path: str | os.PathLike, force: bool = False, directory: bool = False) -> Path:
    """Refuse to replace an existing result unless ``force``; make the parent folder."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists; use --force (force=True) to overwrite it")
    if directory and path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path} is a file, expected a folder")
    if not directory and path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, expected a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def check_output(out, *inputs) -> None:
    """Refuse an output path that is one of the command's inputs (even with ``force``)."""
    out = Path(out)
    for given in inputs:
        given = Path(given)
        if out.resolve() == given.resolve() or (out.exists() and given.exists()
                                                and os.path.samefile(out, given)):
            raise OutputExistsError(f"{out} is also an input of this command; write the output "
                                    f"under another name")


def check_destination(out, *inputs, force: bool = False) -> Path:
    """What every command checks before its work, not after: ``out`` is none of ``inputs``
    (even with ``force``) and, unless ``force``, does not exist yet (`check_writable`)."""
    check_output(out, *inputs)
    return check_writable(out, force)


def _claim(tmp: Path, path: Path, force: bool) -> None:
    """Put the finished ``tmp`` at ``path``: replace with ``force``, else fail if it exists."""
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if another writer got there first
    except FileExistsError:
        raise OutputExistsError(f"{path} already exists (written meanwhile by another process); "
                              f"use --force (force=True) to overwrite it") from None
    except FileNotFoundError:
        raise
    except OSError:  # a file system without hard links: the check above is the best we have
        if path.exists():
            raise OutputExistsError(f"{path} already exists; use --force (force=True) to overwrite it") from None
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary file name to write; it becomes ``path`` when the block ends."""
    path = check_writable(path, force)
    tmp = temporary_name(path)
    try:
        with terminate_as_interrupt():
            yield tmp
            _claim(tmp, path, force)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, force: bool = False):
    """Open a new HDF5 file to write at ``path``, atomically (see the module docstring)."""
    import h5py
    with atomic_path(path, force) as tmp:
        with h5py.File(tmp, "w") as f:
            yield f


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder to fill; it becomes the folder ``path`` when the block ends
    (an existing ``path`` is replaced only with ``force``)."""
    path = check_writable(path, force, directory=True)
    tmp = temporary_name(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    old = None
    try:
        with terminate_as_interrupt():
            yield tmp
            if path.exists():  # force: move the old folder aside, then swap
                old = temporary_name(path.with_name(path.name + ".old"))
                os.rename(path, old)
            try:
                os.rename(tmp, path)
            except OSError:
                if old is not None:
                    os.rename(old, path)
                raise OutputExistsError(f"{path} already exists (written meanwhile by another "
                                      f"process); use --force to overwrite it") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str, force: bool = True) -> Path:
    """Write a text file atomically (replacing it by default: used for records and state)."""
    with atomic_path(path, force) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, value, force: bool = True) -> Path:
    """Write ``value`` as indented JSON, atomically."""
    return write_text(path, json.dumps(value, indent=1, default=str), force)
