"""The whole notebook chain under the smoke profile, in dependency order, as `make run` runs it.

This is the test that executes every notebook (datasets, EDA, xception, baseline, autoencoder,
autokeras, gridsearch, the denoising notebooks once per denoiser, the final report and the
presentation).
Steps unchanged since their last successful smoke run are skipped, as in `make run`; on a fresh
clone (CI) everything runs.
"""
import nbformat
import pytest

from galaxies.interfaces import pipeline
from galaxies.runtime import profiles

pytestmark = [pytest.mark.notebook, pytest.mark.slow]


def test_every_notebook_runs_under_the_smoke_profile():
    summary = pipeline.run("smoke", log=print)
    assert {s.name for s in pipeline.STEPS} == set(summary)
    not_run = {name: item["status"] for name, item in summary.items()
               if item["status"] not in ("ran", "skipped")}
    assert not not_run, f"steps not executed: {not_run}"

    results = profiles.get("smoke").results_dir
    state = pipeline._load_state(profiles.get("smoke"))
    for step in pipeline.STEPS:
        for run in pipeline.runs(step):
            executed = results / f"{run.output_stem}.ipynb"
            assert executed.with_suffix(".html").is_file(), executed
            cells = nbformat.read(executed, as_version=4).cells
            assert not [c for c in cells if pipeline.RECORD_TAG in c.metadata.get("tags", [])]
            errors = [o for c in cells if c.cell_type == "code" for o in c.get("outputs", [])
                      if o.get("output_type") == "error"]
            assert not errors, f"{executed} holds an error output"
    # what each step's kernel imported was recorded: the Xception builder, reached through a
    # function-level import, is among the modules of every step that trains an Xception
    for name in ("xception", "autoencoder", "gridsearch", "denoising"):
        assert "galaxies.networks.models.xception" in state[name]["modules"], name
    assert (results / "presentation.slides.html").is_file()
    assert "reveal" in (results / "presentation.slides.html").read_text()[:20000].lower()
