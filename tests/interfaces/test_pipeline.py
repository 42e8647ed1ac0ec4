"""The pipeline: dependency order, skipping unchanged steps, and failing notebooks named."""
import json
import shutil
import time

import nbformat
import pytest

from galaxies.interfaces import pipeline
from galaxies.runtime import code_dependencies, profiles


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
    deps = {p.name for p in code_dependencies.package_dependencies(
        ["from galaxies.evaluation import evaluate"])}
    assert {"evaluate.py", "files.py", "conventions.py", "crb.py", "__init__.py"} <= deps
    assert not {"loop.py", "galsim_fit.py", "report.py"} & deps


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """The project's package and notebooks copied to a throwaway root, which the pipeline's
    fingerprints then read, so a test can edit modules freely."""
    for folder in ("galaxies", "data", "EDA", "models", "Project", "experiments"):
        shutil.copytree(profiles.ROOT / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("*.h5", "__pycache__", "quick", "smoke", "full"))
    monkeypatch.setattr(profiles, "ROOT", tmp_path)
    monkeypatch.setattr(code_dependencies, "PACKAGE_DIR", tmp_path / "galaxies")
    return tmp_path / "galaxies"


def _fingerprints(recorded=None) -> dict[str, str]:
    smoke, out = profiles.get("smoke"), {}
    for step in pipeline.STEPS:
        out[step.name] = pipeline.fingerprint(step, smoke, out, (recorded or {}).get(step.name, ()))
    return out


XCEPTION_STEPS = {"xception", "autoencoder", "gridsearch", "denoising"}


def test_changing_the_xception_builder_reruns_every_step_that_trains_one(package_copy):
    before = _fingerprints()
    builder = package_copy / "networks" / "models" / "xception.py"
    builder.write_text(builder.read_text() + "\nSTEMS = STEMS + ()\n")
    after = _fingerprints()
    changed = {name for name in before if before[name] != after[name]}
    assert XCEPTION_STEPS <= changed
    assert not {"data", "datasets", "eda", "baseline"} & changed
    assert {"final_report", "presentation"} <= changed  # downstream of the changed steps


def test_a_comment_changes_no_fingerprint(package_copy):
    before = _fingerprints()
    for module in ("cutouts/uploads.py", "networks/models/xception.py", "simulation/render.py"):
        path = package_copy / module
        path.write_text("# a comment only\n\n" + path.read_text() + "\n\n# and one at the end\n")
    assert _fingerprints() == before


def test_a_module_only_the_kernel_imported_is_covered(package_copy):
    """A module no notebook imports by name (reached through a string, say) counts once the
    run recorded it."""
    before = _fingerprints({"eda": ["galaxies.cutouts.uploads"]})
    cutouts = package_copy / "cutouts" / "uploads.py"
    cutouts.write_text(cutouts.read_text() + "\nEXTRA = 1\n")
    after = _fingerprints({"eda": ["galaxies.cutouts.uploads"]})
    assert before["eda"] != after["eda"] and before["baseline"] == after["baseline"]


def test_the_record_cell_reports_imports_and_leaves_no_trace(toy):
    root, log, steps = toy
    write_notebook(root / "a.ipynb", "import importlib; importlib.import_module('galaxies.cutouts.uploads')")
    pipeline.run("smoke", steps=steps[:1], log=quiet)
    state = json.loads((root / "results" / "smoke" / pipeline.STATE_FILE).read_text())
    assert "galaxies.cutouts.uploads" in state["a"]["modules"]
    executed = nbformat.read(root / "results" / "smoke" / "a.ipynb", as_version=4)
    assert not [c for c in executed.cells if pipeline.RECORD_TAG in c.metadata.get("tags", [])]
    assert pipeline.run("smoke", steps=steps[:1], log=quiet)["a"]["status"] == "skipped"


def test_a_notebook_runs_once_per_parameter_set(toy):
    root, log, steps = toy
    write_notebook(root / "p.ipynb", f"open({str(log)!r}, 'a').write(denoiser + '\\n')")
    nb = nbformat.read(root / "p.ipynb", as_version=4)
    nb.cells[0].source += '\ndenoiser = "none"'
    nbformat.write(nb, root / "p.ipynb")
    step = pipeline.Step("p", tuple(pipeline.Run("p.ipynb", (("denoiser", d),)) for d in ("edsr", "rdn")))
    pipeline.run("smoke", steps=(step,), log=quiet)
    assert log.read_text().split() == ["edsr", "rdn"]
    assert (root / "results" / "smoke" / "p-edsr.html").is_file()
    assert (root / "results" / "smoke" / "p-rdn.html").is_file()


def test_the_command_lists_every_notebook_run():
    from click.testing import CliRunner

    from galaxies.interfaces.cli import main
    result = CliRunner().invoke(main, ["run", "--list"])
    assert result.exit_code == 0, result.output
    assert "two_stage.ipynb[denoiser=rdn]" in result.output and "final_report" in result.output


def test_a_kernel_is_shut_down_without_an_interrupt(toy):
    """jupyter_client interrupts (SIGINT) a kernel's whole process group before shutting it
    down; a kernel busy then logs "KeyboardInterrupt caught in kernel". A child process of the
    kernel, in its process group, records any SIGINT that reaches it."""
    root, log, steps = toy
    child = ("import signal, sys, time\n"
             "signal.signal(signal.SIGINT, lambda *a: (open(sys.argv[1], 'a').write('SIGINT\\n'), sys.exit()))\n"
             "open(sys.argv[1], 'a').write('ready\\n')\n"
             "time.sleep(60)\n")
    write_notebook(root / "a.ipynb",
                   "import subprocess, sys, time\n"
                   f"subprocess.Popen([sys.executable, '-c', {child!r}, {str(log)!r}])\n"
                   f"while 'ready' not in open({str(log)!r}).read() if __import__('os').path.exists({str(log)!r}) else True:\n"
                   "    time.sleep(0.1)")
    pipeline.run("smoke", steps=steps[:1], log=quiet)
    time.sleep(1)
    assert log.read_text().split() == ["ready"]


def test_the_kernel_starts_without_tensorflow_s_log_lines(toy, monkeypatch):
    root, log, steps = toy
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    write_notebook(root / "a.ipynb", "import os\n"
                   f"open({str(log)!r}, 'w').write(os.environ.get('TF_CPP_MIN_LOG_LEVEL', 'unset'))")
    pipeline.run("smoke", steps=steps[:1], log=quiet)
    assert log.read_text() == "2"


def test_the_kernel_listens_on_its_own_unix_sockets_not_on_tcp_ports(toy):
    """A TCP port that jupyter_client found free can be taken by another process (a test
    beside this one, a Dask cluster) before the kernel binds it, and the kernel dies; the
    kernel's connection file names Unix sockets in a path no other kernel shares."""
    root, log, steps = toy
    write_notebook(root / "a.ipynb", "import json, ipykernel.connect\n"
                   f"open({str(log)!r}, 'w').write(json.dumps("
                   "{k: v for k, v in ipykernel.connect.get_connection_info(unpack=True).items()"
                   " if k in ('transport', 'ip')}))")
    pipeline.run("smoke", steps=steps[:1], log=quiet)
    connection = json.loads(log.read_text())
    assert connection["transport"] == "ipc"
    assert connection["ip"].startswith("/") and "galaxies-kernel-" in connection["ip"]


def test_a_kernel_that_dies_starting_is_started_once_more(toy, monkeypatch):
    import papermill
    root, log, steps = toy
    real, calls = papermill.execute_notebook, []

    def dies_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(*args, **kwargs)

    monkeypatch.setattr(papermill, "execute_notebook", dies_first)
    pipeline.run("smoke", steps=steps[:1], log=quiet)
    assert len(calls) == 2 and log.read_text() == "a:smoke\n"


def test_the_data_step_runs_its_task_and_its_fingerprint_covers_the_recipes():
    data = next(s for s in pipeline.STEPS if s.name == "data")
    files = {p.name for p in pipeline.step_modules(data)}
    assert {"recipes.py", "generate.py", "render.py", "sampler.py"} <= files
    assert data.task.attribute(data.task.function).__name__ == "build_datasets"


def test_a_task_runs_before_the_notebooks_and_its_record_enters_the_fingerprint(toy, monkeypatch):
    root, log, steps = toy
    calls, record = [], {"value": 1}
    monkeypatch.setattr(pipeline.Task, "attribute", lambda self, name: {
        "work": lambda profile, jobs, log: calls.append(profile.name),
        "inputs": lambda profile: dict(record)}[name])
    step = pipeline.Step("a", ("a.ipynb",), task=pipeline.Task("galaxies.conventions", "work", "inputs"))
    pipeline.run("smoke", steps=(step,), log=quiet)
    assert calls == ["smoke"] and log.read_text() == "a:smoke\n"
    assert pipeline.run("smoke", steps=(step,), log=quiet)["a"]["status"] == "skipped"
    record["value"] = 2
    assert pipeline.run("smoke", steps=(step,), log=quiet)["a"]["status"] == "ran"
    assert calls == ["smoke", "smoke"]


def test_a_step_whose_notebook_does_not_exist_fails_naming_it(toy):
    root, log, steps = toy
    with pytest.raises(pipeline.StepFailed, match="no notebook nowhere.ipynb"):
        pipeline.run("smoke", steps=(pipeline.Step("x", ("nowhere.ipynb",)),), log=quiet)
