"""The pipeline behind ``make run``: build the data sets, then execute every notebook in order.

Each step is a set of notebooks executed with papermill under the chosen profile; the executed
copies and their HTML go to ``results/<profile>/``. A notebook may run several times with other
parameters (``Run``: the denoising notebooks run once per denoiser).

A step is skipped when nothing it depends on has changed since its last successful run: its
notebooks, the profile, the steps before it, and every package module it can execute: those its
notebooks import (followed through the package's own imports, `galaxies.runtime.code_dependencies`) and those
the kernel had actually imported when the notebook finished (recorded by a last cell that
the pipeline appends and removes again), so a module reached only through a registry or a
string is covered too. Modules are compared by syntax tree: a comment changes nothing. A
failing step stops the run, naming the notebook and the cell, and keeps the executed copy.

The log (``make run > log``) holds one line per step and per notebook, and only real errors:
the kernels start with TensorFlow's start-up lines silenced (`galaxies.runtime.console`), progress bars
are drawn only on a terminal, and kernels are shut down without an interrupt
(`QuietShutdown`): jupyter_client sends SIGINT to the kernel's whole process group before each
shutdown request, and a kernel that is still busy then (its shutdown waits on child processes,
e.g. multiprocessing's resource tracker, which ignores SIGTERM, after a process pool) logs
"KeyboardInterrupt caught in kernel" although nothing was interrupted. Kernels listen on Unix
sockets, not TCP ports: a port found free can be taken before the kernel binds it.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from galaxies.runtime import code_dependencies, profiles
from galaxies.runtime.errors import InputError
from galaxies.storage import atomic

STATE_FILE = "pipeline-state.json"


@dataclass(frozen=True)
class Run:
    """One execution of a notebook (a path under the repository root) with parameters; its
    executed copy is ``<stem>.ipynb``, or ``<stem>-<values>.ipynb`` with parameters."""

    notebook: str
    parameters: tuple[tuple[str, str], ...] = ()

    @property
    def output_stem(self) -> str:
        return "-".join([Path(self.notebook).stem] + [str(v) for _, v in self.parameters])


@dataclass(frozen=True)
class Task:
    """Work a step does in the pipeline's own process, before its notebooks: ``function`` of
    package module ``module``, called as ``function(profile, jobs=..., log=...)``. ``record``,
    a function of the same module called as ``record(profile)``, returns what the work depends
    on besides the code (the data sets' recipes, say); it enters the step's fingerprint."""

    module: str
    function: str
    record: str = ""

    def attribute(self, name: str):
        import importlib
        return getattr(importlib.import_module(self.module), name)


@dataclass(frozen=True)
class Step:
    """One stage of the pipeline: an optional `Task`, then notebooks run in order (a path, or a
    `Run` with parameters)."""

    name: str
    notebooks: tuple = ()
    after: tuple[str, ...] = ()
    description: str = ""
    slides: tuple[str, ...] = field(default=())  # notebooks also rendered as reveal.js slides
    task: Task | None = None


#: The steps in dependency order (``after`` names earlier steps only).
STEPS: tuple[Step, ...] = (
    Step("data", description="build the data sets (galaxies datasets)",
         task=Task("galaxies.simulation.recipes", "build_datasets", "recipes_record")),
    Step("datasets", ("data/datasets.ipynb",), ("data",), "the data sets explained"),
    Step("eda", ("EDA/EDA.ipynb",), ("data",), "exploratory data analysis"),
    Step("xception", ("models/xception.ipynb",), ("data",), "the Xception CNN estimator"),
    Step("baseline", ("Project/baseline.ipynb",), ("data",), "CRB and maximum-likelihood fits"),
    Step("autoencoder", ("Project/autoencoder.ipynb",), ("data",), "the autoencoder estimator"),
    Step("autokeras", ("experiments/autokeras/autokeras.ipynb",), ("data",), "AutoKeras search"),
    Step("gridsearch", ("experiments/gridsearch/gridsearch.ipynb",), ("data", "autokeras"),
         "hyper-parameter grid search (HiPlot); compares with the AutoKeras pick"),
    Step("denoising", tuple(Run(f"experiments/denoising/{nb}.ipynb", (("denoiser", d),))
                            for nb in ("denoiser", "two_stage") for d in ("edsr", "rdn")),
         ("data",), "EDSR and RDN denoisers, then the CNN"),
    Step("refinement", ("Project/refinement.ipynb",), ("data", "xception", "baseline"),
         "network first, physics second: refinement, network-started fit, HSM shear"),
    Step("real_cutouts", ("EDA/real_cutouts.ipynb",), ("data",),
         "real HST cutouts measured at their own pixels (galaxies measure)"),
    Step("posterior", (), ("data",), "the Bayes reference: each test galaxy's posterior",
         task=Task("galaxies.inference.posterior_sets", "build_references", "references_record")),
    Step("cosmos", ("Project/cosmos.ipynb",), ("data", "xception"),
         "galaxies that are not the model: COSMOS galaxies in a shear ring test"),
    Step("final_report", ("Project/final_report.ipynb",),
         ("datasets", "eda", "xception", "baseline", "autoencoder", "autokeras", "gridsearch",
          "denoising", "refinement", "posterior", "cosmos"), "every estimator side by side"),
    Step("presentation", ("Project/presentation.ipynb",), ("final_report",), "the slides",
         slides=("Project/presentation.ipynb",)),
)


class StepFailed(RuntimeError):
    """A notebook of the pipeline raised; the message names the notebook and the cell."""


# ------------------------------------------------------------------------ fingerprints

def runs(step: Step) -> list[Run]:
    """The step's notebook executions."""
    return [nb if isinstance(nb, Run) else Run(nb) for nb in step.notebooks]


def _notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code"
                     and not "".join(c["source"]).lstrip().startswith(("%", "!")))


def step_modules(step: Step, recorded=()) -> list[Path]:
    """Package files a step can execute: its notebooks' imports followed through the package,
    and the modules its last run recorded (``recorded``, dotted names)."""
    code = [_notebook_code(profiles.ROOT / nb) for nb in dict.fromkeys(r.notebook for r in runs(step))]
    if step.task:
        code.append(f"import {step.task.module}")
    return code_dependencies.package_dependencies(code, recorded)


def fingerprint(step: Step, profile: profiles.Profile, upstream: dict[str, str],
                recorded=()) -> str:
    """Hash of everything the step's results depend on (see the module docstring)."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"step": step.name, "profile": profile.name,
                              "runs": [[r.notebook, list(r.parameters)] for r in runs(step)],
                              "upstream": {a: upstream.get(a, "") for a in step.after}},
                             sort_keys=True).encode())
    if step.task and step.task.record:
        digest.update(json.dumps(step.task.attribute(step.task.record)(profile), sort_keys=True,
                                 default=str).encode())
    for nb in dict.fromkeys(r.notebook for r in runs(step)):
        digest.update((profiles.ROOT / nb).read_bytes())
    digest.update(code_dependencies.digest(step_modules(step, recorded)).encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------- execution

def _quiet_shutdown():
    """`QuietShutdown`, made on first use (jupyter_client is imported only to run notebooks)."""
    import tempfile
    import uuid

    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum, default

    class QuietShutdown(AsyncKernelManager):
        """A kernel manager that connects over Unix sockets and does not interrupt (SIGINT)
        the kernel it is shutting down (see the module docstring)."""

        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        @default("ip")
        def _unique_socket_path(self) -> str:
            # absolute (the kernel runs in the notebook's folder), this kernel's own
            return str(Path(tempfile.gettempdir()) / f"galaxies-kernel-{uuid.uuid4().hex}")

        async def _async_interrupt_kernel(self) -> None:
            if self.shutting_down:
                return
            await super()._async_interrupt_kernel()

        interrupt_kernel = _async_interrupt_kernel

    return QuietShutdown


def _outputs(step: Step, profile: profiles.Profile) -> list[Path]:
    return [profile.results_dir / f"{r.output_stem}.ipynb" for r in runs(step)]


RECORD_TAG = "galaxies-record-imports"
_RECORD_MARK = "GALAXIES-IMPORTED "
_RECORD_CODE = ("import json as _json, sys as _sys\n"
                f"print({_RECORD_MARK!r} + _json.dumps(sorted(m for m in _sys.modules "
                "if m == 'galaxies' or m.startswith('galaxies.'))))")


def _with_record_cell(notebook: Path):
    """The notebook with a last cell that prints the package modules the kernel imported."""
    import nbformat
    nb = nbformat.read(notebook, as_version=4)
    cell = nbformat.v4.new_code_cell(_RECORD_CODE)
    cell.metadata["tags"] = [RECORD_TAG]
    nb.cells.append(cell)
    return nb


def _take_record(output: Path) -> list[str]:
    """Read the modules the record cell printed and remove the cell from the executed copy."""
    import nbformat
    nb = nbformat.read(output, as_version=4)
    found = []
    for cell in [c for c in nb.cells if RECORD_TAG in c.get("metadata", {}).get("tags", [])]:
        for out in cell.get("outputs", []):
            text = out.get("text", "")
            if text.startswith(_RECORD_MARK):
                found = json.loads(text[len(_RECORD_MARK):])
        nb.cells.remove(cell)
    nbformat.write(nb, output)
    return found


KERNEL_START_FAILURES = ("Kernel died before replying", "Kernel didn't respond")


def execute_notebook(notebook: Path, output: Path, profile: profiles.Profile,
                     timeout: int | None = None, parameters: dict | None = None) -> list[str]:
    """Run ``notebook`` with papermill under ``profile`` (and ``parameters``); write the
    executed copy and HTML. Returns the package modules the kernel had imported at the end."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from galaxies.runtime.console import QUIET_ENVIRONMENT

    output.parent.mkdir(parents=True, exist_ok=True)
    env_before = os.environ.get("GALAXIES_PROFILE")
    os.environ["GALAXIES_PROFILE"] = profile.name  # the kernel inherits it
    for name, value in QUIET_ENVIRONMENT.items():  # and TensorFlow's silence
        os.environ.setdefault(name, value)
    def execute():
        papermill.execute_notebook(
            _with_record_cell(notebook), str(output),
            parameters={"profile": profile.name, **(parameters or {})},
            cwd=str(notebook.parent), kernel_name="python3", progress_bar=False,
            execution_timeout=timeout, report_mode=False,
            # the kernel's own log (not the notebook's output): keep its errors only
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
            kernel_manager_class=_quiet_shutdown())

    try:
        try:
            execute()
        except RuntimeError as err:  # a kernel that died starting ran no cell: start once more
            if not str(err).startswith(KERNEL_START_FAILURES):
                raise
            execute()
    except PapermillExecutionError as err:
        _take_record(output)  # the executed copy kept for reading shows the notebook as written
        rel = notebook.relative_to(profiles.ROOT) if notebook.is_relative_to(profiles.ROOT) else notebook
        raise StepFailed(f"{rel}, {_failing_cell(output, err.cell_index)} raised "
                         f"{err.ename}: {err.evalue.strip()[:500]}\n"
                         f"  executed copy kept at {output}") from None
    finally:
        if env_before is None:
            os.environ.pop("GALAXIES_PROFILE", None)
        else:
            os.environ["GALAXIES_PROFILE"] = env_before
    imported = _take_record(output)
    export_html(output)
    return imported


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
    atomic.write_text(target, body)
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
    atomic.write_text(path, json.dumps(state, indent=2, sort_keys=True))


def select_steps(only=None, steps=STEPS) -> list[Step]:
    """The steps to run: all, or those named in ``only`` (in pipeline order)."""
    names = [s.name for s in steps]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise InputError(f"unknown step(s) {unknown}; choose from {', '.join(names)}")
    return [s for s in steps if not only or s.name in only]


def run(profile=None, only=None, force: bool = False, jobs: int | None = None,
        steps=STEPS, log=print, timeout: int | None = None) -> dict[str, dict]:
    """Run the pipeline; returns ``{step: {"status": ..., "seconds": ...}}``.

    ``status`` is ``ran`` or ``skipped`` (unchanged since its last successful run). Raises
    `StepFailed` (a notebook that fails or does not exist).
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
        missing = [r.notebook for r in runs(step) if not (profiles.ROOT / r.notebook).is_file()]
        if missing:
            raise StepFailed(f"step {step.name!r}: no notebook {', '.join(missing)} under "
                             f"{profiles.ROOT}")
        done = state.get(step.name, {})
        fingerprints[step.name] = fp = fingerprint(step, profile, fingerprints, done.get("modules", ()))
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
            if step.task:
                from galaxies.runtime.parallel import engine
                with engine(workers=jobs):  # GALAXIES_SCHEDULER's cluster, for this step only
                    step.task.attribute(step.task.function)(profile, jobs=jobs,
                                                            log=lambda m: log(f"    {m}"))
            imported = set()
            for r in runs(step):
                t1 = time.perf_counter()
                output = profile.results_dir / f"{r.output_stem}.ipynb"
                imported |= set(execute_notebook(profiles.ROOT / r.notebook, output, profile,
                                                 timeout=timeout, parameters=dict(r.parameters)))
                if r.notebook in step.slides:
                    export_html(output, slides=True)
                label = r.notebook + "".join(f" {k}={v}" for k, v in r.parameters)
                log(f"    {label}: {time.perf_counter() - t1:.0f} s -> {output.with_suffix('.html')}")
        except StepFailed as err:
            summary[step.name] = {"status": "failed", "seconds": time.perf_counter() - t0}
            log(f"{head}: FAILED after {time.perf_counter() - t0:.0f} s")
            _log_summary(summary, time.perf_counter() - started, log)
            raise StepFailed(f"step '{step.name}' failed: {err}") from None
        seconds = time.perf_counter() - t0
        modules = sorted(imported)
        # what later runs compare against: the fingerprint with the modules this run imported
        fingerprints[step.name] = fp = fingerprint(step, profile, fingerprints, modules)
        state[step.name] = {"fingerprint": fp, "seconds": round(seconds, 1), "modules": modules,
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
