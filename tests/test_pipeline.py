"""The pipeline: dependency order, skipping unchanged steps, and failing notebooks named."""
import json

import nbformat
import pytest

from galaxies import pipeline, profiles


def write_notebook(path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('# parameters\nprofile = "quick"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """Three notebooks that append their name and profile to a log, in a throwaway root."""
    monkeypatch.setattr(profiles, "ROOT", tmp_path)
    log = tmp_path / "log.txt"
    for name in ("a", "b", "c"):
        write_notebook(tmp_path / f"{name}.ipynb",
                       f"open({str(log)!r}, 'a').write('{name}:' + profile + '\\n')")
    steps = (pipeline.Step("a", ("a.ipynb",)), pipeline.Step("b", ("b.ipynb",), ("a",)),
             pipeline.Step("c", ("c.ipynb",), ("b",)))
    return tmp_path, log, steps


def quiet(*args):
    pass


def test_project_steps_are_in_dependency_order():
    seen = set()
    for step in pipeline.STEPS:
        assert set(step.after) <= seen, f"{step.name} runs before {set(step.after) - seen}"
        seen.add(step.name)
    assert [s.name for s in pipeline.STEPS][:2] == ["data", "datasets"]
    assert pipeline.STEPS[-1].name == "presentation"


def test_runs_in_order_then_skips_unchanged_and_reruns_downstream(toy):
    root, log, steps = toy
    summary = pipeline.run("smoke", steps=steps, log=quiet)
    assert [s["status"] for s in summary.values()] == ["ran"] * 3
    assert log.read_text().split() == ["a:smoke", "b:smoke", "c:smoke"]
    for name in "abc":
        assert (root / "results" / "smoke" / f"{name}.html").is_file()

    summary = pipeline.run("smoke", steps=steps, log=quiet)
    assert [s["status"] for s in summary.values()] == ["skipped"] * 3
    assert log.read_text().split() == ["a:smoke", "b:smoke", "c:smoke"]

    write_notebook(root / "b.ipynb", f"open({str(log)!r}, 'a').write('b2:' + profile + '\\n')")
    summary = pipeline.run("smoke", steps=steps, log=quiet)
    assert [s["status"] for s in summary.values()] == ["skipped", "ran", "ran"]
    assert log.read_text().split()[-2:] == ["b2:smoke", "c:smoke"]


def test_a_failing_notebook_stops_the_run_and_names_the_cell(toy):
    root, log, steps = toy
    write_notebook(root / "b.ipynb", "x = 1", "raise ValueError('galaxy exploded')")
    with pytest.raises(pipeline.StepFailed) as failure:
        pipeline.run("smoke", steps=steps, log=quiet)
    message = str(failure.value)
    assert "step 'b' failed" in message and "b.ipynb" in message
    assert "cell 3 of 3 (`raise ValueError('galaxy exploded')`)" in message
    assert "ValueError: galaxy exploded" in message
    assert log.read_text().split() == ["a:smoke"]  # c never ran
    executed = root / "results" / "smoke" / "b.ipynb"
    assert executed.is_file()  # kept for reading
    state = json.loads((root / "results" / "smoke" / pipeline.STATE_FILE).read_text())
    assert "a" in state and "b" not in state


def test_unknown_step_is_refused():
    with pytest.raises(ValueError, match="unknown step"):
        pipeline.select_steps(["nonsense"])


def test_fingerprint_follows_package_imports():
    deps = {p.name for p in pipeline.package_dependencies(["from galaxies import evaluate"])}
    assert {"evaluate.py", "io.py", "simulate.py", "crb.py", "__init__.py"} <= deps
    assert not {"train.py", "baseline.py", "report.py"} & deps
