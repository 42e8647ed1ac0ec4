"""Files written chunk by chunk that a killed run can continue: a partial file with its progress.

A data set of ``chunks`` chunks is built in a partial file next to its final name,
``.tmp-partial-<name>`` (skipped by listings like every temporary of `galaxies.storage.atomic`), that
holds the root attribute ``recipe`` from the start and, while it is unfinished, the per-chunk
progress: ``chunks_done`` (0/1) and ``chunk_stats`` (counts a writer keeps per chunk), written
and flushed after each chunk. When every chunk is done the progress is removed and the file
takes its final name, claimed as `galaxies.storage.atomic` does.

An interrupted run (an error, Ctrl-C, SIGTERM, a kill) leaves the partial file once a chunk is
done. ``resume=True`` continues it after checking that it was started with the same recipe;
without it an existing partial is refused (``force`` discards it), never silently reused. What
a chunk holds must depend only on the recipe, so a resumed file equals an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np

from galaxies.runtime.errors import InputError, OutputExistsError

from . import atomic

__all__ = ["partial_name", "partial_recipe", "Progress", "resumable_h5"]

DONE, STATS, CHUNK_ROWS = "chunks_done", "chunk_stats", "chunk_rows"


def partial_name(path: str | os.PathLike) -> Path:
    """Where the unfinished file of ``path`` lives (one per final name, so a rerun finds it)."""
    path = Path(path)
    return path.with_name(f"{atomic.TMP_PREFIX}partial-{path.name}")


def partial_recipe(path: str | os.PathLike) -> dict | None:
    """The recipe of the partial file of ``path``, or None if there is none (or none readable)."""
    import h5py
    try:
        with h5py.File(partial_name(path), "r") as f:
            return json.loads(f.attrs["recipe"]) if DONE in f.attrs else None
    except (OSError, KeyError, ValueError):
        return None


class Progress:
    """The chunks of an open partial file: which are done, with a writer's counts per chunk."""

    def __init__(self, f, chunks: int, chunk_rows: int, stats: int):
        self.f, self.chunk_rows = f, int(chunk_rows)
        if DONE in f.attrs:
            self.done = np.array(f.attrs[DONE], dtype=np.uint8)
            self.stats = np.array(f.attrs[STATS], dtype=np.int64).reshape(len(self.done), stats)
        else:
            self.done = np.zeros(chunks, np.uint8)
            self.stats = np.zeros((chunks, stats), np.int64)
            self._write()

    def _write(self):
        self.f.attrs[DONE] = self.done
        self.f.attrs[STATS] = self.stats
        self.f.attrs[CHUNK_ROWS] = self.chunk_rows
        self.f.flush()

    def todo(self) -> list[int]:
        return [int(k) for k in np.flatnonzero(self.done == 0)]

    def rows(self, chunk: int, size: int) -> range:
        return range(chunk * self.chunk_rows, min((chunk + 1) * self.chunk_rows, size))

    def mark_done(self, chunk: int, stats=()) -> None:
        """Record chunk ``chunk`` (its rows already written) as complete, on disk."""
        self.done[chunk] = 1
        self.stats[chunk] = stats
        self._write()

    def finish(self) -> None:
        for name in (DONE, STATS, CHUNK_ROWS):
            del self.f.attrs[name]


def _mismatch(have: dict, want: dict) -> str:
    keys = sorted(set(have) | set(want), key=str)
    diff = [f"{k} {have.get(k)!r} in the file, {want.get(k)!r} asked" for k in keys
            if have.get(k) != want.get(k)]
    return "; ".join(diff)


def _open_unlocked(partial: Path, mode: str):
    """``h5py.File(partial, mode)``; another process writing it (HDF5 locks files it has open)
    or creating it meanwhile is an `OutputExistsError`."""
    import h5py
    try:
        return h5py.File(partial, mode)
    except (BlockingIOError, FileExistsError):
        raise OutputExistsError(f"{partial} is being written by another process; wait for it "
                                f"to finish or stop it") from None


@contextlib.contextmanager
def resumable_h5(path, recipe: dict, size: int, chunk_rows: int, stats: int, create,
                 force: bool = False, resume: bool = False):
    """Open the partial file of ``path`` and yield ``(file, Progress)``.

    ``create(f)`` makes the fields and root attributes of a new file, ``recipe`` among them
    (`galaxies.storage.files.write_attrs`); a partial file being resumed must carry the same
    ``recipe`` (else `InputError`, the file left as it is).
    ``stats`` counts are kept per chunk. The block writes the chunks `Progress.todo` lists
    and marks each done; when it ends the file is finished and named ``path``.
    """
    path = atomic.check_writable(path, force)
    partial = partial_name(path)
    if partial.exists() and not resume:
        if not force:
            raise OutputExistsError(
                f"{partial} holds an interrupted generation of {path.name}; continue it with "
                f"--resume (resume=True) or start over with --force")
        _open_unlocked(partial, "r").close()  # not while another process writes it
        partial.unlink()
    f, created = None, False
    recipe = json.loads(json.dumps(recipe, sort_keys=True))
    try:
        with atomic.terminate_as_interrupt(), atomic.made_parents(path):
            if partial.exists():
                f = _open_unlocked(partial, "r+")
                have = json.loads(f.attrs.get("recipe", "{}"))
                if have != recipe or DONE not in f.attrs:
                    raise InputError(f"cannot resume {partial}: "
                                     + (_mismatch(have, recipe) or "it holds no progress record"))
                progress = Progress(f, 0, int(f.attrs[CHUNK_ROWS]), stats)
            else:
                f, created = _open_unlocked(partial, "w-"), True
                create(f)  # writes the ``recipe`` attribute (files.write_attrs)
                progress = Progress(f, -(-size // chunk_rows), chunk_rows, stats)
            yield f, progress
            progress.finish()
            f.close()
            atomic._claim(partial, path, force)  # atomic's one way to claim a name
    except BaseException as err:
        if f is not None and f.id.valid:
            done = int(np.sum(f.attrs[DONE])) if DONE in f.attrs else 0
            f.close()
            if created and not done:
                partial.unlink(missing_ok=True)
            elif done:  # the command line says so instead of "no partial output was kept"
                err.kept_partial = f"{done} complete chunk(s) kept in {partial}; --resume continues"
        raise
    finally:
        if f is not None and f.id.valid:
            f.close()
        if path.exists():  # claimed: the partial's name (a hard link) goes
            with contextlib.suppress(FileNotFoundError):
                if partial.exists() and os.path.samefile(partial, path):
                    partial.unlink()
