"""Generation: the SNR cut, the parameter distributions, determinism, and the recipes."""
import h5py
import numpy as np
import pytest

from galaxies.conventions import snr
from galaxies.runtime import profiles
from galaxies.runtime.errors import InputError, OutputExistsError, ParameterRangeError
from galaxies.simulation.generate import (FixedSpec, RandomSpec, draw_candidates, generate,
                                          generate_fixed)
from galaxies.simulation.recipes import RECIPES, build_datasets, recipe_record
from galaxies.simulation.render import GalaxyRenderer
from galaxies.storage import files, resumable


def test_random_set_keeps_only_snr_in_window_and_labels_in_range(small_sets):
    ds = files.load_dataset(small_sets["random"])
    assert ((ds.snr >= 10) & (ds.snr <= 100)).all()
    np.testing.assert_allclose(ds.snr, snr(ds.img_nonoise, ds.sigma), rtol=1e-5)
    flux, n, r, g1, g2 = ds.label.T
    assert ((3e4 <= flux) & (flux <= 4e5)).all() and ((0.1 <= r) & (r <= 0.6)).all()
    assert np.isclose(n[:, None], np.linspace(0.5, 6, 4), rtol=1e-6).any(axis=1).all()
    assert (np.hypot(g1, g2) <= 0.67 + 1e-6).all()
    assert (ds.sigma == 200).all() and (ds.psf_fwhm == 0.5).all()


def test_rows_are_the_galaxies_their_labels_describe(small_sets):
    ds = files.load_dataset(small_sets["random"], rows=np.array([0, 17, 39]))
    renderer = GalaxyRenderer()
    for label, clean, noisy in zip(ds.label, ds.img_nonoise, ds.img):
        np.testing.assert_allclose(renderer.draw(*label.astype(float), 0.5), clean,
                                   atol=1e-4 * clean.max())
        residual = (noisy - clean) / np.sqrt(200.0**2 + np.clip(clean, 0, None))
        assert abs(residual.std() - 1) < 0.1


def test_rejection_redraws_every_parameter():
    """The SNR cut conditions the joint distribution: bright compact galaxies are removed."""
    spec = RandomSpec(sersics=None, psf_fwhm=0.5, sigma=200.0)
    first = draw_candidates(spec, 3, np.arange(5), np.zeros(5, int))
    second = draw_candidates(spec, 3, np.arange(5), np.ones(5, int))
    assert (first[:, :5] != second[:, :5]).all()
    np.testing.assert_array_equal(first, draw_candidates(spec, 3, np.arange(5), np.zeros(5, int)))


def test_same_seed_same_file_whatever_the_number_of_jobs(tmp_path):
    spec = RandomSpec(sersics=5, psf_fwhm=None, sigma=None)
    files = [generate(tmp_path / f"j{jobs}.h5", spec, size=24, seed=5, jobs=jobs, progress=False)
             for jobs in (1, 2, 3)]
    with h5py.File(files[0]) as a:
        reference = {k: a[k][()] for k in a}
        assert reference["psf_img"].shape == (24, 64, 64)  # random PSF: one per galaxy
    for other in files[1:]:
        with h5py.File(other) as b:
            for key, value in reference.items():
                np.testing.assert_array_equal(b[key][()], value, err_msg=f"{other.name}:{key}")
    different = generate(tmp_path / "s6.h5", spec, size=24, seed=6, jobs=1, progress=False)
    with h5py.File(different) as c:
        assert not np.array_equal(c["label"][()], reference["label"])


def test_fixed_set_differs_only_by_noise(small_sets):
    ds = files.load_dataset(small_sets["fixed"])
    assert (ds.label == ds.label[0]).all() and (ds.img_nonoise == ds.img_nonoise[0]).all()
    assert len({img.tobytes() for img in ds.img}) == len(ds)
    np.testing.assert_allclose(ds.label[0], [1e5, 3.0, 0.3, -0.069, 0.15], rtol=1e-6)
    assert 55 < ds.snr[0] < 65


@pytest.mark.parametrize("kwargs, match", [
    (dict(psf_fwhm=1.5), "psf_fwhm = 1.5"), (dict(sigma=50.0), "sigma = 50"),
    (dict(sersics=0), "sersics = 0")])
def test_bad_random_spec(kwargs, match):
    with pytest.raises(ParameterRangeError, match=match):
        RandomSpec(**kwargs)


def test_bad_fixed_spec_and_size(tmp_path):
    with pytest.raises(ParameterRangeError, match="sersic_r = 0.9"):
        FixedSpec(1e5, 3.0, 0.9, 0.0, 0.0)
    with pytest.raises(InputError, match="size = 0"):
        generate(tmp_path / "x.h5", RandomSpec(), size=0, seed=1)
    assert not (tmp_path / "x.h5").exists()


def test_recipes_and_profiles():
    assert set(RECIPES) == {"v1", "v2", "v3", "v1a", "test", "snr60", "snr30", "compact", "extended"}
    full = profiles.get("full")
    assert full.sizes["v1"] == 200_000 and full.sizes["snr60"] == 10_000
    v3 = recipe_record(RECIPES["v3"], full)
    assert v3["psf_fwhm"] is None and v3["sigma"] is None and v3["sersics"] == 1000
    assert recipe_record(RECIPES["snr30"], full)["sigma"] == 400
    seeds = [r.seed for r in RECIPES.values()]
    assert len(set(seeds)) == len(seeds)
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        profiles.get("huge")


def test_build_datasets_skips_up_to_date_and_refuses_changed(tmp_path, monkeypatch):
    profile = profiles.get("smoke", sizes={**profiles.get("smoke").sizes, "snr60": 8})
    monkeypatch.setattr(profiles, "ROOT", tmp_path)
    assert build_datasets(profile, ["snr60"], progress=False, log=lambda m: None) == {"snr60": "built"}
    assert build_datasets(profile, ["snr60"], progress=False, log=lambda m: None) == {"snr60": "up to date"}
    bigger = profiles.get(profile, sizes={**profile.sizes, "snr60": 9})
    with pytest.raises(FileExistsError, match="--force"):
        build_datasets(bigger, ["snr60"], progress=False, log=lambda m: None)
    assert build_datasets(bigger, ["snr60"], force=True, progress=False, log=lambda m: None) == {"snr60": "built"}
    assert len(files.load_dataset(tmp_path / "data" / "smoke" / "snr60.h5")) == 9


# ------------------------------------------------------------------- streaming and resuming

RESUME_SPEC = RandomSpec(sersics=3, psf_fwhm=None, sigma=None)


def contents(path) -> dict:
    with h5py.File(path) as f:
        return {**{k: f[k][()] for k in f}, **{f"attr:{k}": v for k, v in f.attrs.items()}}


def assert_same_file(a, b):
    a, b = contents(a), contents(b)
    assert sorted(a) == sorted(b)
    for key, value in a.items():
        np.testing.assert_array_equal(b[key], value, err_msg=key)


def stop_after(monkeypatch, chunks: int, action):
    """Make the generator call ``action`` once ``chunks`` chunks are recorded done."""
    original, calls = resumable.Progress.mark_done, []

    def mark_done(self, chunk, stats=()):
        original(self, chunk, stats)
        calls.append(chunk)
        if len(calls) == chunks:
            action()
    monkeypatch.setattr(resumable.Progress, "mark_done", mark_done)


def test_an_interrupted_run_resumes_to_the_same_file(tmp_path, monkeypatch):
    reference = generate(tmp_path / "ref.h5", RESUME_SPEC, size=40, seed=3, jobs=1,
                         progress=False, chunk_rows=8)
    path = tmp_path / "set.h5"

    def interrupt():
        raise KeyboardInterrupt
    stop_after(monkeypatch, 2, interrupt)
    with pytest.raises(KeyboardInterrupt):
        generate(path, RESUME_SPEC, size=40, seed=3, jobs=1, progress=False, chunk_rows=8)
    monkeypatch.undo()
    partial = resumable.partial_name(path)
    assert not path.exists() and partial.exists()
    with h5py.File(partial) as f:
        assert f.attrs["chunks_done"].sum() == 2 and len(f.attrs["chunks_done"]) == 5
    with pytest.raises(OutputExistsError, match="interrupted generation of set.h5; continue it with --resume"):
        generate(path, RESUME_SPEC, size=40, seed=3, jobs=1, progress=False)
    with pytest.raises(InputError, match=r"cannot resume .*partial-set.h5: seed 3 in the file, 4 asked"):
        generate(path, RESUME_SPEC, size=40, seed=4, jobs=1, progress=False, resume=True)
    assert partial.exists()
    generate(path, RESUME_SPEC, size=40, seed=3, jobs=2, progress=False, resume=True)
    assert not partial.exists()
    assert_same_file(reference, path)


def test_a_killed_run_resumes_to_the_same_file(tmp_path):
    """SIGKILL after two chunks are flushed: no cleanup runs, the partial file must still hold them."""
    import signal
    import subprocess
    import sys
    import textwrap
    path = tmp_path / "set.h5"
    script = textwrap.dedent(f"""
        import os, signal
        from galaxies.storage import resumable
        from galaxies.simulation.generate import RandomSpec, generate
        original, calls = resumable.Progress.mark_done, []
        def mark_done(self, chunk, stats=()):
            original(self, chunk, stats)
            calls.append(chunk)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        resumable.Progress.mark_done = mark_done
        generate({str(path)!r}, RandomSpec(sersics=3, psf_fwhm=None, sigma=None), size=40,
                 seed=3, jobs=1, progress=False, chunk_rows=8)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()
    assert not path.exists() and resumable.partial_name(path).exists()
    generate(path, RESUME_SPEC, size=40, seed=3, jobs=1, progress=False, resume=True)
    reference = generate(tmp_path / "ref.h5", RESUME_SPEC, size=40, seed=3, jobs=1, progress=False)
    assert_same_file(reference, path)


def test_fixed_sets_resume_too_and_force_starts_over(tmp_path, monkeypatch):
    spec = FixedSpec(1e5, 3.0, 0.3, -0.069, 0.15, 0.5, 200.0)
    reference = generate(tmp_path / "ref.h5", spec, size=20, seed=12, progress=False)
    path = tmp_path / "fixed.h5"

    def fail():
        raise RuntimeError("disk gone")
    stop_after(monkeypatch, 1, fail)
    with pytest.raises(RuntimeError, match="disk gone"):
        generate_fixed(path, spec, size=20, seed=12, progress=False, chunk_rows=8)
    monkeypatch.undo()
    generate(path, spec, size=20, seed=12, progress=False, resume=True)
    assert_same_file(reference, path)
    stop_after(monkeypatch, 1, fail)
    with pytest.raises(RuntimeError):
        generate_fixed(tmp_path / "again.h5", spec, size=20, seed=12, progress=False, chunk_rows=8)
    monkeypatch.undo()
    generate(tmp_path / "again.h5", spec, size=20, seed=12, progress=False, force=True)
    assert not resumable.partial_name(tmp_path / "again.h5").exists()
    assert_same_file(reference, tmp_path / "again.h5")


def test_a_partial_another_process_writes_is_left_alone(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "set.h5"
    partial = resumable.partial_name(path)
    with h5py.File(partial, "w") as f:
        f.attrs["recipe"] = "{}"
    holder = subprocess.Popen([sys.executable, "-c", f"import h5py, sys, time; f = h5py.File("
                               f"{str(partial)!r}, 'r+'); print('open', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        for options in (dict(force=True), dict(resume=True)):
            with pytest.raises(OutputExistsError, match="being written by another process"):
                generate(path, RandomSpec(sersics=3), size=8, seed=1, jobs=1, progress=False, **options)
            assert partial.exists()
    finally:
        holder.kill()
        holder.wait()
