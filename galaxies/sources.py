"""What code a result depends on: the package modules a piece of source imports, and a digest.

`package_dependencies` follows ``galaxies``' own imports (module-level and inside functions)
from some Python source to every package file it can reach. `digest` hashes those files by
their syntax tree, not their bytes: a comment or a blank line changes nothing, a changed
statement or docstring changes the digest. The pipeline (`galaxies.pipeline`) fingerprints its
steps with these, together with the modules a step's notebooks actually imported.
"""
from __future__ import annotations

import ast
import hashlib
from pathlib import Path

__all__ = ["PACKAGE_DIR", "imports", "module_file", "package_dependencies", "digest"]

PACKAGE_DIR = Path(__file__).resolve().parent


def imports(source: str, package: str = "") -> set[str]:
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
            for k in range(len(base) + 1):  # importing a.b runs a/__init__ too
                found.add(".".join(base[:k]) or "__init__")
            found.update(".".join(base + [n]) for n in names)
    return found


def module_file(name: str) -> Path | None:
    """The file of package module ``name`` (dotted, without ``galaxies.``), or None."""
    if name in ("__init__", ""):
        return PACKAGE_DIR / "__init__.py"
    path = PACKAGE_DIR.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def package_dependencies(sources: list[str], modules=()) -> list[Path]:
    """Package files that Python ``sources`` depend on, following the package's imports;
    ``modules`` (dotted names, with or without ``galaxies.``) are added as known imports."""
    todo = set().union(set(), *(imports(s) for s in sources)) | {"__init__"}
    todo |= {m.removeprefix("galaxies").lstrip(".") or "__init__" for m in modules}
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        path = module_file(name)
        if path is None or name in seen:
            continue
        seen[name] = path
        package = name if path.name == "__init__.py" and name != "__init__" else (
            name.rsplit(".", 1)[0] if "." in name else "")
        todo |= imports(path.read_text(), package)
    return sorted(set(seen.values()))


def digest(paths) -> str:
    """SHA-256 of package files by name and syntax tree (comments and layout left out)."""
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        h.update(str(path.resolve().relative_to(PACKAGE_DIR)).encode())
        source = path.read_text()
        try:
            h.update(ast.dump(ast.parse(source)).encode())
        except SyntaxError:
            h.update(source.encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------ layers

#: The package's layers, lowest first (`galaxies` docstring, docs/architecture.md): a module
#: may import modules of its own layer and of lower ones, never of a higher one.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundations", ("__init__", "errors", "console", "resources", "simulate", "atomic", "files", "chunked",
                     "profiles", "parallel", "cluster", "sources")),
    ("physics", ("sampler", "resumable", "generate", "recipes", "likelihood", "differentiable", "crb",
                 "crb_sets", "posterior", "measure_inputs",
                 "baseline", "refine", "hsm", "cosmos", "ring_test", "psf_wings",
                 "evaluate", "image_quality", "cutouts", "eda", "fits_cutouts", "resampling",
                 "segmentation", "measure")),
    ("networks", ("models", "training")),
    ("estimators", ("estimators", "testsets", "cosmos_report")),
    ("experiments", ("experiments",)),
    ("presentation", ("plots", "report", "tradeoffs", "app_support", "pipeline", "commandline", "cli",
                      "cli_measure")),
)


def package_modules() -> list[str]:
    """Every module of the package, dotted without ``galaxies.`` (``__init__`` for the top)."""
    out = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out.append(".".join(parts))
    return out


def layer_of(module: str) -> int:
    """The index in `LAYERS` of a module (by its first dotted part)."""
    top = module.split(".")[0]
    for k, (_, members) in enumerate(LAYERS):
        if top in members:
            return k
    raise KeyError(f"module galaxies.{module} is in no layer of galaxies.sources.LAYERS")


def import_graph() -> dict[str, list[str]]:
    """Each package module and the package modules it imports (module level and inside
    functions), resolved to modules (an imported name that is not a module is dropped)."""
    known = set(package_modules())
    graph = {}
    for module in known:
        path = module_file(module)
        package = module if path.name == "__init__.py" and module != "__init__" else (
            module.rsplit(".", 1)[0] if "." in module else "")
        found = {m for m in imports(path.read_text(), package) if m in known and m != module}
        found.discard("__init__")  # every import runs it; not an edge worth drawing
        graph[module] = sorted(found)
    return dict(sorted(graph.items()))
