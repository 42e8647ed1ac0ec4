"""Writes that are whole or absent: every file and folder the project writes goes through here.

A result is built under a temporary name next to its final one (``.tmp-<pid>-<name>``, which
readers skip) and put in place only when complete. Without ``force`` the final name is
*claimed* atomically (a hard link for files, a rename for folders), so two writers of the same
name cannot both succeed and nothing existing is replaced; with ``force`` an existing result is
replaced in one step. On any error, Ctrl-C or SIGTERM the temporary is removed and the final
name is left as it was.

The one rule for outputs, shared by every command (`check_writable`):

* only a regular file may be replaced by a file, and only a folder that holds ``marker`` (a
  model folder's ``training.json``) by a folder, and only with ``force``; a device, a FIFO, a
  socket, a symbolic link (whatever it points to) or a folder without the marker never is;
* a missing parent folder is made only while the result is written, and removed again when
  the write fails (`made_parents`), so a failed command leaves no folder behind;
* an input is a regular file (`check_readable`): a FIFO or a device would block or never end;
* every message names the path the caller gave, never the temporary name, and an operating
  system's refusal (a full disk, a read-only file system) is a one-line error of
  `galaxies.runtime.errors` (`output_error`).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import stat
import threading
import uuid
from pathlib import Path
from typing import Iterator

from galaxies.runtime.errors import InputError, OutputExistsError, ResourceError, Terminated

__all__ = ["TMP_PREFIX", "temporary_name", "check_writable", "check_readable", "check_output",
           "check_destination",
           "made_parents", "output_error", "is_disk_full", "atomic_path", "atomic_h5",
           "atomic_dir", "write_text", "write_json", "terminate_as_interrupt"]

#: prefix of every unfinished file or folder; listings skip names that start with it
TMP_PREFIX = ".tmp-"
#: errno values of a file system that has no room left (full, over quota, file too large)
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
#: errno values of a place that refuses writing (permissions, a read-only file system)
REFUSED = (errno.EACCES, errno.EPERM, errno.EROFS)


def temporary_name(path: str | os.PathLike) -> Path:
    """The temporary name under which ``path`` is built (same folder, so renames are atomic)."""
    path = Path(path)
    return path.with_name(f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (``kill``) into `galaxies.runtime.errors.Terminated`, a KeyboardInterrupt, so
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


def _kind(mode: int) -> str:
    """What a file of ``st_mode`` is, in words."""
    for test, name in ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISLNK, "symbolic link"), (stat.S_ISDIR, "folder")):
        if test(mode):
            return name
    return "regular file" if stat.S_ISREG(mode) else "special file"


def _nearest_folder(path: Path) -> Path:
    """The nearest existing ancestor of ``path``; `NotADirectoryError` when it is not a folder."""
    parent = path.parent
    while True:
        try:
            mode = os.stat(parent).st_mode
        except (FileNotFoundError, NotADirectoryError):  # missing, or below a file
            parent = parent.parent
            continue
        except OSError as err:  # a loop of links, a name too long
            raise output_error(err, path) from None
        if not stat.S_ISDIR(mode):
            raise NotADirectoryError(f"cannot write {path}: {parent} is a {_kind(mode)}, not a folder")
        return parent


def check_writable(path: str | os.PathLike, force: bool = False, directory: bool = False,
                   marker: str | None = None) -> Path:
    """Check that ``path`` may be written (the module's rule) before any work: an existing
    regular file (or, with ``directory``, a folder holding ``marker``) only with ``force``;
    never a special file or a link. The parent folder need not exist (`made_parents` makes it)."""
    path = Path(path)
    folder = _nearest_folder(path)
    if not os.access(folder, os.W_OK | os.X_OK):
        reason = "read-only file system" if _read_only(folder) else "permission denied"
        raise PermissionError(f"cannot write {path}: {reason} in {folder}")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError as err:
        raise output_error(err, path) from None
    wanted = stat.S_ISDIR(mode) if directory else stat.S_ISREG(mode)
    if stat.S_ISLNK(mode):
        raise OutputExistsError(f"{path} is a symbolic link (to {os.readlink(path)}); an output "
                                f"is never written through a link: name the file itself")
    if not wanted and not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise OutputExistsError(f"{path} is a {_kind(mode)}; only a regular file can be "
                                f"replaced (even with --force): choose another name")
    if not directory and stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{path} is a folder, expected a file name")
    if directory and not stat.S_ISDIR(mode):
        raise NotADirectoryError(f"{path} is a file, expected a folder")
    if directory and not (marker and (path / marker).is_file()):
        raise OutputExistsError(f"{path} exists and is not a model directory (no "
                                f"{marker or 'training.json'}); choose another model directory")
    if not force:
        raise OutputExistsError(f"{path} already exists; use --force (force=True) to overwrite it")
    return path


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_readable(path, what: str = "file") -> Path:
    """An input is a regular file (a link to one is followed): a FIFO would block the reader
    and a device never end; `InputError` names what it is, FileNotFoundError a missing one."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{path}: no such {what}") from None
    except OSError as err:  # a loop of links, a name too long
        raise InputError(f"{path}: cannot be read ({(err.strerror or str(err)).lower()})") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"{path} is a {_kind(mode)}, not a regular file; give a {what}")
    return path


def check_output(out, *inputs) -> None:
    """Refuse an output path that is one of the command's inputs (even with ``force``)."""
    out = Path(out)
    for given in inputs:
        given = Path(given)
        try:
            same = out.resolve() == given.resolve() or (
                out.exists() and given.exists() and os.path.samefile(out, given))
        except RuntimeError:  # a loop of symbolic links: not the same file as anything
            same = False
        except OSError as err:
            raise output_error(err, out) from None
        if same:
            raise OutputExistsError(f"{out} is also an input of this command; write the output "
                                    f"under another name")


def check_destination(out, *inputs, force: bool = False) -> Path:
    """What every command checks before its work, not after: ``out`` is none of ``inputs``
    (even with ``force``) and may be written (`check_writable`)."""
    check_output(out, *inputs)
    return check_writable(out, force)


@contextlib.contextmanager
def made_parents(path: str | os.PathLike) -> Iterator[Path]:
    """Make the missing folders above ``path`` for the block; when the block raises, remove
    those it made (if they are still empty), so a failed write leaves no folder behind."""
    path = Path(path)
    missing, parent = [], path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    made = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            made.append(folder)
        yield path
    except BaseException:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` says the file system has no room (errno, or HDF5's message of it)."""
    if getattr(err, "errno", None) in DISK_FULL:
        return True
    text = str(err)
    return isinstance(err, (OSError, RuntimeError)) and any(
        f"errno = {code}," in text for code in DISK_FULL) or "No space left on device" in text


def output_error(err: BaseException, path) -> BaseException:
    """The one-line error of `galaxies.runtime.errors` for an operating system's refusal to write
    ``path`` (named as the caller gave it, not by a temporary name): no room left is a
    `ResourceError`, a refusal a PermissionError, a loop of links or a name too long an
    `InputError`; anything else is returned unchanged (a bug shows its traceback)."""
    code = getattr(err, "errno", None)
    reason = (getattr(err, "strerror", None) or str(err)).lower()
    if is_disk_full(err):
        return ResourceError(f"cannot write {path}: no space left on its file system "
                             f"({'disk quota exceeded' if code == errno.EDQUOT else 'disk full'}); "
                             f"the temporary file was removed: free some space or choose another folder")
    if code in REFUSED:
        return PermissionError(f"cannot write {path}: {reason}")
    if code in (errno.ELOOP, errno.ENAMETOOLONG):
        return InputError(f"cannot write {path}: {reason}")
    return err


def _claim(tmp: Path, path: Path, force: bool) -> None:
    """Put the finished ``tmp`` at ``path``: replace with ``force``, else fail if it exists."""
    if force:
        check_writable(path, force=True)  # still a regular file (or nothing) at this moment
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if another writer got there first
    except FileExistsError:
        raise OutputExistsError(f"{path} already exists (written meanwhile by another process); "
                                f"use --force (force=True) to overwrite it") from None
    except FileNotFoundError:
        raise
    except OSError as err:  # a file system without hard links: the check above is the best we have
        if err.errno in DISK_FULL or err.errno in REFUSED:
            raise
        if os.path.lexists(path):
            raise OutputExistsError(f"{path} already exists; use --force (force=True) to overwrite it") from None
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary file name to write; it becomes ``path`` when the block ends. An
    operating system's refusal (a full disk) is raised as `output_error` names it."""
    path = check_writable(path, force)
    tmp = temporary_name(path)
    with terminate_as_interrupt(), made_parents(path):
        try:
            yield tmp
            _claim(tmp, path, force)
        except (OSError, RuntimeError) as err:
            _raise_as_output_error(err, path)
        finally:  # before made_parents removes the folders it made
            tmp.unlink(missing_ok=True)


def _raise_as_output_error(err: Exception, path) -> None:
    """Raise ``err`` as `output_error` words it for ``path`` (itself when it is no refusal of
    the operating system's that a user can act on)."""
    converted = output_error(err, path)
    if converted is err:
        raise err
    raise converted from None


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, force: bool = False):
    """Open a new HDF5 file to write at ``path``, atomically (see the module docstring); the
    file is closed before its temporary name is removed, whatever the error."""
    import h5py
    with atomic_path(path, force) as tmp:
        f = h5py.File(tmp, "w")
        try:
            yield f
            f.close()  # the last writes: a full disk shows here, inside atomic_path
        finally:
            if f.id.valid:  # after an error: release the file before its name goes
                with contextlib.suppress(Exception):
                    f.close()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, force: bool = False,
               marker: str | None = None) -> Iterator[Path]:
    """Yield a temporary folder to fill; it becomes the folder ``path`` when the block ends
    (an existing ``path`` is replaced only with ``force``, and only when it holds ``marker``)."""
    path = check_writable(path, force, directory=True, marker=marker)
    tmp = temporary_name(path)
    old = None
    with terminate_as_interrupt(), made_parents(path):
        try:
            tmp.mkdir()
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
        except (OSError, RuntimeError) as err:
            _raise_as_output_error(err, path)
        finally:  # before made_parents removes the folders it made
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
