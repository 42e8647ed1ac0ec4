"""The pipeline behind ``make run``: build the data sets, then execute every notebook in order.

Each step is a set of notebooks executed with papermill under the chosen profile; the executed
copies and their HTML go to ``results/<profile>/``. A step is skipped when nothing it depends
on has changed since its last successful run: its notebooks, the package modules they import
(followed through the package's own imports), the profile, and the steps before it. A failing
step stops the run, naming the notebook and the cell, and keeps the executed copy to read.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import profiles

PACKAGE_DIR = Path(__file__).resolve().parent
STATE_FILE = "pipeline-state.json"


@dataclass(frozen=True)
class Step:
    """One stage of the pipeline: notebooks (paths under the repository root) run in order."""

    name: str
    notebooks: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    description: str = ""
    slides: tuple[str, ...] = field(default=())  # notebooks also rendered as reveal.js slides


#: The steps in dependency order (``after`` names earlier steps only).
STEPS: tuple[Step, ...] = (
    Step("data", description="build the data sets (galaxies datasets)"),
    Step("datasets", ("data/datasets.ipynb",), ("data",), "the data sets explained"),
    Step("eda", ("EDA/EDA.ipynb",), ("data",), "exploratory data analysis"),
    Step("xception", ("models/xception.ipynb",), ("data",), "the Xception CNN estimator"),
    Step("baseline", ("Project/baseline.ipynb",), ("data",), "CRB and maximum-likelihood fits"),
    Step("autoencoder", ("Project/autoencoder.ipynb",), ("data",), "the autoencoder estimator"),
    Step("autokeras", ("experiments/autokeras/autokeras.ipynb",), ("data",), "AutoKeras search"),
    Step("gridsearch", ("experiments/gridsearch/gridsearch.ipynb",), ("data", "autokeras"),
         "hyper-parameter grid search (HiPlot); compares with the AutoKeras pick"),
    Step("denoising", ("experiments/denoising/edsr.ipynb", "experiments/denoising/rdn.ipynb",
                       "experiments/denoising/edsr_pipeline.ipynb",
                       "experiments/denoising/rdn_pipeline.ipynb"),
         ("data",), "EDSR and RDN denoisers, then the CNN"),
    Step("final_report", ("Project/final_report.ipynb",),
         ("datasets", "eda", "xception", "baseline", "autoencoder", "autokeras", "gridsearch",
          "denoising"), "every estimator side by side"),
    Step("presentation", ("Project/presentation.ipynb",), ("final_report",), "the slides",
         slides=("Project/presentation.ipynb",)),
)


class StepFailed(RuntimeError):
    """A notebook of the pipeline raised; the message names the notebook and the cell."""


# ------------------------------------------------------------------------ fingerprints

def _imports(source: str, package: str = "") -> set[str]:
    """Modules of ``galaxies`` (dotted, without the prefix) that Python source imports.

    ``package`` is the dotted package of the importing module ("" for the top level), used to
    resolve relative imports. Imported names that are not modules are filtered out later.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bases = [a.name.split(".")[1:] for a in node.names if a.name.split(".")[0] == "galaxies"]
            names = []
        elif isinstance(node, ast.ImportFrom):
            module = node.module.split(".") if node.module else []
            if node.level == 0:
                if not module or module[0] != "galaxies":
                    continue
                base = module[1:]
            else:
                parts = package.split(".") if package else []
                base = parts[:len(parts) - (node.level - 1)] + module
            bases, names = [base], [a.name for a in node.names]
        else:
            continue
        for base in bases:
            found.add(".".join(base) or "__init__")
            found.update(".".join(base + [n]) for n in names)
    return found


def _module_file(name: str) -> Path | None:
    if name == "__init__":
        return PACKAGE_DIR / "__init__.py"
    path = PACKAGE_DIR.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def package_dependencies(sources: list[str]) -> list[Path]:
    """Package files that Python ``sources`` depend on, following the package's imports."""
    todo = set().union(set(), *(_imports(s) for s in sources)) | {"__init__"}
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if path is None or name in seen:
            continue
        seen[name] = path
        package = name if path.name == "__init__.py" and name != "__init__" else (
            name.rsplit(".", 1)[0] if "." in name else "")
        todo |= _imports(path.read_text(), package)
    return sorted(set(seen.values()))


def _notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code"
                     and not "".join(c["source"]).lstrip().startswith(("%", "!")))


def fingerprint(step: Step, profile: profiles.Profile, upstream: dict[str, str]) -> str:
    """Hash of everything the step's results depend on."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"step": step.name, "profile": profile.name,
                              "upstream": {a: upstream.get(a, "") for a in step.after}},
                             sort_keys=True).encode())
    if step.name == "data":
        from .generate import RECIPES, recipe_record
        digest.update(json.dumps([recipe_record(r, profile) for r in RECIPES.values()]).encode())
        sources = ["from galaxies import generate"]
    else:
        sources = []
        for nb in step.notebooks:
            path = profiles.ROOT / nb
            digest.update(path.read_bytes())
            sources.append(_notebook_code(path))
    for dep in package_dependencies(sources):
        digest.update(str(dep.relative_to(PACKAGE_DIR)).encode())
        digest.update(dep.read_bytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- execution

def _outputs(step: Step, profile: profiles.Profile) -> list[Path]:
    return [profile.results_dir / f"{Path(nb).stem}.ipynb" for nb in step.notebooks]


def execute_notebook(notebook: Path, output: Path, profile: profiles.Profile,
                     timeout: int | None = None) -> None:
    """Run ``notebook`` with papermill under ``profile``; write the executed copy and HTML."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output.parent.mkdir(parents=True, exist_ok=True)
    env_before = os.environ.get("GALAXIES_PROFILE")
    os.environ["GALAXIES_PROFILE"] = profile.name  # the kernel inherits it
    try:
        papermill.execute_notebook(
            str(notebook), str(output), parameters={"profile": profile.name},
            cwd=str(notebook.parent), kernel_name="python3", progress_bar=False,
            execution_timeout=timeout, report_mode=False,
            # the kernel's own log (not the notebook's output): keep its errors, drop the
            # warning every local kernel prints about plain TCP on localhost
            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except PapermillExecutionError as err:
        rel = notebook.relative_to(profiles.ROOT) if notebook.is_relative_to(profiles.ROOT) else notebook
        raise StepFailed(f"{rel}, {_failing_cell(output, err.cell_index)} raised "
                         f"{err.ename}: {err.evalue.strip()[:500]}\n"
                         f"  executed copy kept at {output}") from None
    finally:
        if env_before is None:
            os.environ.pop("GALAXIES_PROFILE", None)
        else:
            os.environ["GALAXIES_PROFILE"] = env_before
    export_html(output)


def _failing_cell(executed: Path, index: int) -> str:
    """'cell K of N (`first line`)', numbered as in the source notebook (1-based, markdown
    cells included, papermill's injected parameters cell left out)."""
    import nbformat
    try:
        cells = nbformat.read(executed, as_version=4).cells
    except Exception:  # noqa: BLE001 - the message is still useful without the source line
        return f"cell {index}"
    tags = lambda c: c.get("metadata", {}).get("tags", [])  # noqa: E731
    cells = [c for c in cells if "papermill-error-cell-tag" not in tags(c)]  # as executed
    failing = cells[index] if 0 <= index < len(cells) else None
    source = [c for c in cells if "injected-parameters" not in tags(c)]
    if failing is None or failing not in source:
        return f"cell {index}"
    first = next((line for line in failing.source.splitlines() if line.strip()), "")
    return f"cell {source.index(failing) + 1} of {len(source)} (`{first[:80]}`)"


def export_html(executed: Path, slides: bool = False) -> Path:
    """HTML (or reveal.js slides) of an executed notebook, next to it."""
    import nbformat
    from nbconvert import HTMLExporter, SlidesExporter

    nb = nbformat.read(executed, as_version=4)
    if slides:
        body, _ = SlidesExporter(reveal_scroll=True).from_notebook_node(nb)
        target = executed.with_suffix(".slides.html")
    else:
        body, _ = HTMLExporter().from_notebook_node(nb)
        target = executed.with_suffix(".html")
    target.write_text(body)
    return target


def _load_state(profile) -> dict:
    path = profile.results_dir / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _save_state(profile, state: dict) -> None:
    path = profile.results_dir / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    os.replace(tmp, path)


def select_steps(only=None, steps=STEPS) -> list[Step]:
    """The steps to run: all, or those named in ``only`` (in pipeline order)."""
    names = [s.name for s in steps]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ValueError(f"unknown step(s) {unknown}; choose from {', '.join(names)}")
    return [s for s in steps if not only or s.name in only]


def run(profile=None, only=None, force: bool = False, jobs: int | None = None,
        steps=STEPS, log=print, timeout: int | None = None) -> dict[str, dict]:
    """Run the pipeline; returns ``{step: {"status": ..., "seconds": ...}}``.

    ``status`` is ``ran``, ``skipped`` (unchanged since its last successful run) or
    ``missing`` (a notebook of the step does not exist yet). Raises `StepFailed`.
    """
    profile = profiles.get(profile)
    state = _load_state(profile)
    fingerprints: dict[str, str] = {}
    summary: dict[str, dict] = {}
    started = time.perf_counter()
    chosen = select_steps(only, steps)
    log(f"pipeline: profile {profile.name}, {len(chosen)} step(s), results in {profile.results_dir}")
    for k, step in enumerate(chosen, 1):
        head = f"[{k}/{len(chosen)}] {step.name}"
        missing = [nb for nb in step.notebooks if not (profiles.ROOT / nb).is_file()]
        if missing:
            summary[step.name] = {"status": "missing", "seconds": 0.0}
            log(f"{head}: not built yet (missing {', '.join(missing)})")
            continue
        fingerprints[step.name] = fp = fingerprint(step, profile, fingerprints)
        done = state.get(step.name, {})
        if (not force and done.get("fingerprint") == fp
                and all(p.exists() for p in _outputs(step, profile))):
            summary[step.name] = {"status": "skipped", "seconds": 0.0}
            log(f"{head}: unchanged since its last successful run ({done.get('finished', '?')}), skipped")
            continue
        log(f"{head}: {step.description} ...")
        t0 = time.perf_counter()
        state.pop(step.name, None)
        _save_state(profile, state)
        try:
            if step.name == "data":
                from .generate import build_datasets
                build_datasets(profile, jobs=jobs, force=False, log=lambda m: log(f"    {m}"))
            for nb in step.notebooks:
                t1 = time.perf_counter()
                output = profile.results_dir / f"{Path(nb).stem}.ipynb"
                execute_notebook(profiles.ROOT / nb, output, profile, timeout=timeout)
                if nb in step.slides:
                    export_html(output, slides=True)
                log(f"    {nb}: {time.perf_counter() - t1:.0f} s -> {output.with_suffix('.html')}")
        except StepFailed as err:
            summary[step.name] = {"status": "failed", "seconds": time.perf_counter() - t0}
            log(f"{head}: FAILED after {time.perf_counter() - t0:.0f} s")
            _log_summary(summary, time.perf_counter() - started, log)
            raise StepFailed(f"step '{step.name}' failed: {err}") from None
        seconds = time.perf_counter() - t0
        state[step.name] = {"fingerprint": fp, "seconds": round(seconds, 1),
                            "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        _save_state(profile, state)
        summary[step.name] = {"status": "ran", "seconds": seconds}
        log(f"{head}: done in {seconds:.0f} s")
    _log_summary(summary, time.perf_counter() - started, log)
    return summary


def _log_summary(summary: dict, total: float, log) -> None:
    log("\npipeline summary")
    for name, item in summary.items():
        log(f"  {name:<14} {item['status']:<8} {item['seconds']:8.1f} s")
    log(f"  {'total':<14} {'':<8} {total:8.1f} s ({total / 60:.1f} min)")
