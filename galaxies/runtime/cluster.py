"""Dask distributed as the engine of the package's parallel loops past one machine.

`galaxies.runtime.parallel.engine` chooses it; this module holds the connection (`Cluster`) and the
pool its loops submit to (`DaskPool`, the ``concurrent.futures`` interface of
`galaxies.runtime.parallel.process_pool`). ``local`` starts a ``LocalCluster`` on this machine
(processes, one thread each); ``tcp://host:port`` joins a running scheduler. Every task runs
through `_call`, which makes its worker single-threaded once (as a pool's initializer does),
so a worker started by hand, by dask-jobqueue or by Kubernetes needs nothing but this package
at the client's version. Results travel back to the client, which writes every file (atomically,
`galaxies.storage.atomic`): a worker lost mid-run costs only the tasks it held, which the scheduler
runs again elsewhere.
"""
from __future__ import annotations

import logging
from concurrent.futures import Future

from .errors import InputError

#: Seconds to wait for a scheduler to answer before giving up on its address.
CONNECT_TIMEOUT = 5
#: What to install when Dask is missing.
INSTALL = "pip install 'dask[distributed]>=2024.8'"

_prepared = False  # this worker process is single-threaded already


def _call(fn, *args):
    """``fn(*args)`` on a worker, made single-threaded first (once per process)."""
    global _prepared
    if not _prepared:
        from .workers import single_threaded
        single_threaded()
        _prepared = True
    return fn(*args)


def _version() -> str:
    from galaxies import __version__
    return __version__


def _distributed():
    try:
        import distributed
    except ImportError:
        raise InputError(f"a Dask scheduler needs Dask distributed, which is not installed: "
                         f"{INSTALL}") from None
    return distributed


class DaskPool:
    """A ``concurrent.futures``-style pool over a Dask client: ``submit(fn, *args)`` (optionally
    ``worker=ADDRESS``: preferred, not required, so the task still runs if that worker is lost),
    ``map`` and ``shutdown``. Tasks are never deduplicated (``pure=False``) and never retried
    on an exception (a bug shows); a task whose worker dies is rescheduled by Dask itself."""

    def __init__(self, client):
        self._executor = client.get_executor(pure=False)

    def submit(self, fn, *args, worker: str | None = None) -> Future:
        where = {} if worker is None else {"workers": [worker], "allow_other_workers": True}
        return self._executor.submit(_call, fn, *args, **where)

    def map(self, fn, *iterables):
        futures = [self.submit(fn, *args) for args in zip(*iterables)]
        return (future.result() for future in futures)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait and not cancel_futures)


class Cluster:
    """A connection to a Dask scheduler: ``local`` (a ``LocalCluster`` of ``workers`` processes,
    default one per core, one thread each, closed with this object) or ``tcp://host:port``."""

    def __init__(self, address: str, workers: int | None = None):
        distributed = _distributed()
        self.address, self._local = address, None
        if address == "local":
            from .workers import bare_main, default_jobs
            with bare_main():  # spawned workers must not re-run the caller's script
                self._local = distributed.LocalCluster(
                    n_workers=workers or default_jobs(), threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.ERROR)
            self.client = distributed.Client(self._local)
        else:
            if "://" not in address:
                raise InputError(f"--scheduler {address!r}: give 'local' or a scheduler's address "
                                 f"such as tcp://host:8786")
            try:
                self.client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
            except Exception as err:  # refused, timed out, not a Dask scheduler at all
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise InputError(f"no Dask scheduler answers at {address} ({reason}; waited at "
                                 f"most {CONNECT_TIMEOUT} s)") from None
        try:
            self._check_versions()
        except BaseException:
            self.close()
            raise

    def _check_versions(self) -> None:
        """Refuse workers that run another version of this package (or lack it)."""
        try:
            versions = self.client.run(_version)
        except Exception as err:  # a worker that cannot import galaxies at all
            raise InputError(f"the Dask workers of {self.address} cannot run this package "
                             f"({type(err).__name__}: {err}); install galaxies {_version()} on "
                             f"them") from None
        other = {w: v for w, v in versions.items() if v != _version()}
        if other:
            worker, version = next(iter(other.items()))
            raise InputError(f"the Dask worker {worker} runs galaxies {version}, this is "
                             f"{_version()}: install the same version on every worker")

    def addresses(self) -> list[str]:
        """The workers now connected, sorted (an empty list while none has joined)."""
        return sorted(self.client.nthreads())

    def slots(self) -> int:
        """Tasks the cluster runs at once (its workers' threads), at least 1."""
        return max(1, sum(self.client.nthreads().values()))

    def pool(self) -> DaskPool:
        return DaskPool(self.client)

    def close(self) -> None:
        self.client.close()
        if self._local is not None:
            self._local.close()


class LocalhostCluster:
    """A ``dask scheduler`` and ``dask worker`` processes on this machine (one thread each), as
    a cluster of separate machines would run them: for tests, benchmarks and trying the engine
    without a cluster. ``nanny=False`` lets a killed worker stay dead. Use as a context manager,
    or call `stop`, which ends every process whatever happened."""

    def __init__(self, folder, workers: int = 0, nanny: bool = True, timeout: float = 120):
        import json
        import os
        import sys
        import time
        from pathlib import Path

        root = Path(__file__).resolve().parents[2]
        self.file, self.nanny, self.processes, self.workers = Path(folder) / "scheduler.json", nanny, [], []
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self.file.unlink(missing_ok=True)
        self._command = lambda module, *args: [sys.executable, "-m", f"distributed.cli.{module}", *args]
        self._env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
        self._start("dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(self.file))
        deadline = time.monotonic() + timeout
        while not self.file.exists():
            if time.monotonic() > deadline or self.processes[0].poll() is not None:
                self.stop()
                raise RuntimeError(f"no Dask scheduler came up within {timeout:g} s")
            time.sleep(0.1)
        self.address = json.loads(self.file.read_text())["address"]
        for _ in range(workers):
            self.add_worker()
        if workers:
            from distributed import Client
            with Client(self.address, timeout=30) as client:
                client.wait_for_workers(workers, timeout=timeout)

    def _start(self, module, *args):
        import subprocess
        process = subprocess.Popen(self._command(module, *args), env=self._env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(process)
        return process

    def add_worker(self):
        """Start one more single-threaded worker process; returns its `subprocess.Popen`."""
        worker = self._start("dask_worker", "--scheduler-file", str(self.file), "--nthreads", "1",
                             "--no-dashboard", "--host", "127.0.0.1", "--death-timeout", "60",
                             *([] if self.nanny else ["--no-nanny"]))
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        """Workers first (one that ran GalSim can be slow to honour SIGTERM, and holds
        nothing to keep: killed after 3 s), then the scheduler."""
        import subprocess
        for process in self.processes[::-1]:
            process.terminate()
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
