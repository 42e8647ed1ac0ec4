"""The envelope sampler: its bounds hold, it keeps the rejection sampler's rows, and the
two-sample tests that compare the two can tell a wrong sampler."""
import dataclasses
import functools

import h5py
import numpy as np
import pytest
from scipy import stats

from galaxies.conventions import RANGES, SNR_RANGE
from galaxies.simulation import generate as generate_module, sampler
from galaxies.simulation.generate import RandomSpec, generate, render_candidates
from galaxies.storage import files, resumable

# Fixed PSF, noise in [200, 400] (the SNR per unit flux scales as 1 / sigma), four indices.
SPEC = RandomSpec(sersics=4, psf_fwhm=0.5, sigma=None)
SIZE = 1000
COLUMNS = ("flux", "sersic_n", "sersic_r", "g1", "g2", "sigma", "snr")


@functools.cache
def table_of(spec):
    nodes = sampler.table_nodes(spec)
    return sampler.envelope_from_table(spec, render_candidates(nodes, False, (np.inf, np.inf))[1])


def exact_a(spec, count, seed):
    candidates = sampler.draw_candidates(spec, seed, np.arange(count), np.zeros(count, int))
    snrs = render_candidates(candidates, False, (np.inf, np.inf))[1]
    return candidates, snrs, snrs * candidates[:, 6] / candidates[:, 0]


@pytest.mark.parametrize("spec, count", [
    (RandomSpec(sersics=None, psf_fwhm=0.5), 60),  # continuous n: between the table's indices
    (RandomSpec(sersics=4, psf_fwhm=None, sigma=None), 150)])  # the PSF axis
def test_envelope_holds_with_room_to_spare(spec, count):
    envelope = table_of(spec)
    candidates, snrs, a = exact_a(spec, count, seed=8)
    error = np.abs(a / np.exp(envelope.log_a_at(candidates)) - 1)
    assert error.max() < sampler.MARGIN / 4, error.max()  # measured: below 0.4%
    assert envelope.check(candidates, snrs) > 0.75


def test_envelope_violation_is_an_error_not_a_bias():
    envelope = table_of(SPEC)
    candidates, snrs, _ = exact_a(SPEC, 20, seed=3)
    assert envelope.check(candidates, snrs) > 0
    wrong = dataclasses.replace(envelope, log_a=envelope.log_a + 0.03)  # 3% too bright
    with pytest.raises(sampler.EnvelopeError, match="beyond its margin 2%"):
        wrong.check(candidates, snrs)


def test_envelope_never_skips_a_candidate_the_cut_keeps():
    envelope = table_of(SPEC)
    candidates, snrs, _ = exact_a(SPEC, 300, seed=4)
    kept = (snrs >= SNR_RANGE.low) & (snrs <= SNR_RANGE.high)
    may = envelope.may_pass(candidates)
    assert may[kept].all() and kept.mean() < 0.7 and may.mean() < kept.mean() + 0.05


def test_a_wrong_envelope_stops_the_generation_and_keeps_nothing(tmp_path, monkeypatch):
    right = sampler.envelope_from_table
    monkeypatch.setattr(sampler, "envelope_from_table", lambda spec, snrs: dataclasses.replace(
        right(spec, snrs), log_a=right(spec, snrs).log_a - 0.05))  # 5% too faint
    path = tmp_path / "wrong.h5"
    with pytest.raises(sampler.EnvelopeError, match="beyond its margin"):
        generate(path, dataclasses.replace(SPEC, sersics=2), 300, seed=1, jobs=1, progress=False,
                 chunk_rows=8)
    assert list(tmp_path.iterdir()) == []
    # found late, after chunks were written: those go too (they may lack rows they should have)
    monkeypatch.undo()
    kept = []

    def check(self, candidates, snrs):
        if kept:  # the first check after a chunk was written (not a call count: cached
            raise sampler.EnvelopeError("found late")  # tables change how many come first)
        return 1.0
    monkeypatch.setattr(sampler.Envelope, "check", check)
    monkeypatch.setattr(generate_module, "TASK_SIZE", 8)
    original = resumable.Progress.mark_done
    monkeypatch.setattr(resumable.Progress, "mark_done",
                        lambda self, *a: (kept.append(1), original(self, *a)))
    with pytest.raises(sampler.EnvelopeError, match="found late"):
        generate(path, dataclasses.replace(SPEC, sersics=2), 300, seed=1, jobs=1, progress=False,
                 chunk_rows=8)
    assert kept and list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("samplers")
    rejection = dataclasses.replace(SPEC, sampler="rejection")
    return {
        "envelope": generate(folder / "e.h5", SPEC, SIZE, seed=1, jobs=1, progress=False),
        "rejection": generate(folder / "r.h5", rejection, SIZE, seed=2, jobs=1, progress=False),
        "same_seed": generate(folder / "r1.h5", rejection, 300, seed=1, jobs=1, progress=False),
        "two_jobs": generate(folder / "e2.h5", SPEC, 300, seed=1, jobs=2, progress=False),
    }


def columns(ds) -> dict:
    return {**dict(zip(COLUMNS[:5], ds.label.T)), "sigma": ds.sigma, "snr": ds.snr}


def two_sample_pvalues(a: dict, b: dict) -> dict:
    return {k: stats.ks_2samp(a[k], b[k]).pvalue for k in COLUMNS}


def test_envelope_sampler_keeps_the_rejection_samplers_rows(sets):
    """Same seed, same rows (a row depends only on the seed and its index, not on the size,
    the sampler, or the workers that rendered it and their table)."""
    with h5py.File(sets["envelope"]) as e, h5py.File(sets["same_seed"]) as r, \
            h5py.File(sets["two_jobs"]) as e2:
        for key in files.DATASET_FIELDS:
            mine = e[key][:300] if len(e[key]) > 1 else e[key][()]
            np.testing.assert_array_equal(mine, r[key][()], err_msg=key)
            np.testing.assert_array_equal(mine, e2[key][()], err_msg=key)
        assert e2.attrs["envelope_renders"] == 288
        assert 0.5 < e.attrs["acceptance_rate"] < 0.8 and 0.5 < r.attrs["acceptance_rate"] < 0.8
        assert r.attrs["renders_kept"] == r.attrs["acceptance_rate"] < 0.75
        assert e.attrs["envelope_renders"] == 288  # 4 indices x 12 radii x 6 shears
        renders = SIZE / e.attrs["renders_kept"] - 288
        assert SIZE / renders > 0.9  # kept / rendered besides the table (measured 0.95)
        assert '"sampler": "envelope"' in e.attrs["recipe"]
        assert '"sampler": "rejection"' in r.attrs["recipe"]


def test_two_sample_tests_accept_the_envelope_sampler(sets):
    p = two_sample_pvalues(columns(files.load_dataset(sets["envelope"])),
                           columns(files.load_dataset(sets["rejection"])))
    assert min(p.values()) > 1e-3, p


def wrong_sampler(weighted_shapes: bool) -> dict:
    """Shapes and noise drawn as the prior does, flux uniform: without the cut, or (a subtler
    error) uniform on each shape's SNR window without weighting shapes by the window's length."""
    envelope = table_of(SPEC)
    c = sampler.draw_candidates(SPEC, 9, np.arange(SIZE), np.zeros(SIZE, int))
    a = np.exp(envelope.log_a_at(c)) / c[:, 6]  # SNR per unit flux
    lo, hi = RANGES["flux"].low, RANGES["flux"].high
    if weighted_shapes:
        flux = c[:, 0]
    else:
        lo, hi = np.maximum(lo, SNR_RANGE.low / a), np.minimum(hi, SNR_RANGE.high / a)
        c, a, lo, hi = c[lo < hi], a[lo < hi], lo[lo < hi], hi[lo < hi]
        flux = lo + (hi - lo) * np.random.default_rng(0).random(len(c))
    return {**dict(zip(COLUMNS[:5], [flux, *c[:, 1:5].T])), "sigma": c[:, 6], "snr": flux * a}


@pytest.mark.parametrize("weighted_shapes", [True, False])
def test_two_sample_tests_detect_a_wrong_sampler(sets, weighted_shapes):
    p = two_sample_pvalues(wrong_sampler(weighted_shapes),
                           columns(files.load_dataset(sets["rejection"])))
    assert min(p.values()) < 1e-6, p
