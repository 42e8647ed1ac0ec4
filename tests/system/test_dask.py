"""Dask as the engine past one machine: a real scheduler and two workers, each its own process
on localhost, give the local pool's bits, and a worker killed mid-run costs only its tasks."""
import socket
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from galaxies.inference import galsim_fit
from galaxies.runtime import parallel
from galaxies.runtime.cluster import LocalhostCluster
from galaxies.runtime.errors import InputError
from galaxies.simulation.generate import RandomSpec, generate_random

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]
SPEC = RandomSpec(sersics=3, psf_fwhm=None, sigma=None)  # a PSF image per row: every field varies


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalhostCluster(tmp_path_factory.mktemp("dask"), workers=2, nanny=False) as running:
        yield running


def same_file(a, b, skip=()):
    """Every field and attribute of two HDF5 files equal, bit for bit (but those in ``skip``)."""
    with h5py.File(a, "r") as x, h5py.File(b, "r") as y:
        assert sorted(x) == sorted(y)
        for name in x:
            if name not in skip:
                assert x[name].dtype == y[name].dtype and np.array_equal(
                    x[name][()], y[name][()]), name
        for name in set(x.attrs) | set(y.attrs):
            if name not in skip:
                assert np.array_equal(x.attrs[name], y.attrs[name]), name


#: what a fit's file holds that depends on the run, not on the images: times and processes
TIMING = ("seconds", "seconds_per_image", "median_seconds_per_image", "wall_seconds", "jobs")


@pytest.mark.slow
def test_workers_give_the_local_bits_and_a_lost_worker_only_its_tasks(cluster, tmp_path,
                                                                      monkeypatch):
    from click.testing import CliRunner

    from galaxies.interfaces.cli import main
    from galaxies.runtime import cluster as dask_cluster

    local = generate_random(tmp_path / "local.h5", SPEC, 16, seed=7, jobs=1, progress=False)
    local_fit = galsim_fit.fit_dataset(local, tmp_path / "local_fit.h5", limit=6, jobs=1,
                                     progress=False)

    # the command line joins the running scheduler; the rows come back the local pool's bits
    done = CliRunner().invoke(main, ["generate", str(tmp_path / "dask.h5"), "--rows", "16",
                                     "--sersics", "3", "--seed", "7", "--scheduler",
                                     cluster.address])
    assert done.exit_code == 0, done.output
    same_file(local, tmp_path / "dask.h5")

    # kill a worker as soon as the first fit comes back: its tasks run on the other one
    submitted, killed = [], []
    submit = dask_cluster.DaskPool.submit

    def submit_and_watch(self, fn, *args, **kwargs):
        future = submit(self, fn, *args, **kwargs)
        submitted.append(future)
        future.add_done_callback(lambda _: killed or killed.append(
            (sum(not f.done() for f in submitted), cluster.workers[1].kill())))
        return future
    monkeypatch.setattr(dask_cluster.DaskPool, "submit", submit_and_watch)
    with parallel.engine(cluster.address) as engine:
        assert len(engine.addresses()) == 2
        fit = galsim_fit.fit_dataset(local, tmp_path / "dask_fit.h5", limit=6, progress=False)
        left = engine.addresses()
    assert killed and killed[0][0] >= 3, "the worker was killed with fits still to do"
    assert cluster.workers[1].poll() is not None and len(left) == 1
    assert len(submitted) == 6  # one fit a task (map_rows: chunks of one row for 6 images)
    same_file(local_fit, fit, skip=TIMING)
    with h5py.File(fit, "r") as f:
        assert f["converged"][()].all()


@pytest.mark.slow
def test_bounds_and_measured_cutouts_on_the_cluster_are_the_local_bits(cluster, tmp_path):
    """The other loops through the cluster (one worker or two: the test before may have killed
    one): the bounds of a set and `galaxies measure --method fit`."""
    import shutil

    from galaxies.cutouts import measure
    from galaxies.inference import crb_sets

    data = generate_random(tmp_path / "set.h5", SPEC, 4, seed=3, jobs=1, progress=False)
    shutil.copy(data, tmp_path / "copy.h5")  # its own cache of bounds
    hst = ROOT / "tests" / "data" / "hst"
    cutout = dict(psf=hst / "a2744_f105w_psf.fits.gz", rms=hst / "a2744_f105w_compact_rms.fits.gz",
                  force=True, progress=False, log=lambda message: None)
    local_bounds = crb_sets.for_dataset(data, jobs=1, progress=False)
    local = measure.measure_files([hst / "a2744_f105w_compact.fits.gz"], tmp_path / "a.csv", **cutout)
    with parallel.engine(cluster.address):
        bounds = crb_sets.for_dataset(tmp_path / "copy.h5", progress=False)
        measured = measure.measure_files([hst / "a2744_f105w_compact.fits.gz"], tmp_path / "b.csv",
                                         **cutout)
    assert np.isfinite(bounds).all() and np.array_equal(bounds, local_bounds)
    rows = [{k: v for k, v in m.row().items() if k != "seconds"} for m in (local[0], measured[0])]
    assert repr(rows[0]) == repr(rows[1]) and rows[0]["converged"]  # repr: exact, NaN too


def test_an_unreachable_scheduler_is_one_line_naming_it():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    started = time.monotonic()
    with pytest.raises(InputError, match=f"no Dask scheduler answers at {address}") as err:
        with parallel.engine(address):
            pass
    assert "\n" not in str(err.value) and time.monotonic() - started < 30
    with pytest.raises(InputError, match="give 'local' or a scheduler's address"):
        with parallel.engine("localhost"):
            pass
    assert parallel.remote() is None  # nothing left behind: the local pool again


def test_engine_none_is_the_local_pool_and_the_variable_the_default(monkeypatch):
    monkeypatch.setenv(parallel.SCHEDULER_ENV, "none")
    assert parallel.remote() is None and parallel.workers_for(3) == 3
    with parallel.engine() as engine:
        assert engine is None
    monkeypatch.setenv(parallel.SCHEDULER_ENV, "bad-address")
    with pytest.raises(InputError, match="'bad-address'"):
        parallel.remote()
    with parallel.engine("none"):  # the block wins over the variable
        assert parallel.remote() is None


def test_missing_dask_says_what_to_install(monkeypatch):
    from galaxies.runtime import cluster as dask_cluster
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    with pytest.raises(InputError, match=r"pip install 'dask\[distributed\]"):
        dask_cluster.Cluster("local")
