"""The package's layout holds: layers as folders, no upward import and no cycle, module sizes,
references, the package docstring and the graph drawn in docs/architecture.md."""
import re

import pytest

from galaxies.runtime import code_dependencies, profiles

ROOT = profiles.ROOT
MAX_LINES = 400
GRAPH_START, GRAPH_END = "<!-- import graph: start -->", "<!-- import graph: end -->"
LAYOUT_START, LAYOUT_END = "<!-- layout: start -->", "<!-- layout: end -->"
PACKAGE = ROOT / "galaxies"
MAX_ROOT_ENTRIES = 10


def root_entries() -> list[str]:
    return sorted(p.name for p in PACKAGE.iterdir()
                  if p.name != "__pycache__" and (p.suffix == ".py" or p.is_dir()))


def test_the_package_root_is_a_short_list_of_layer_folders():
    entries = root_entries()
    assert len(entries) <= MAX_ROOT_ENTRIES, entries
    assert [e for e in entries if e.endswith(".py")] == ["__init__.py", "conventions.py"]


def test_every_root_entry_is_in_exactly_one_layer_and_every_layer_entry_exists():
    placed = [m for _, members in code_dependencies.LAYERS for m in members]
    assert len(placed) == len(set(placed))
    names = sorted(e.removesuffix(".py") for e in root_entries())
    assert sorted(placed) == names


def test_no_import_cycle():
    assert code_dependencies.import_cycles() == []


def test_every_subpackage_docstring_names_each_of_its_modules():
    missing = []
    for init in PACKAGE.rglob("__init__.py"):
        if init.parent == PACKAGE:
            continue
        doc = init.read_text()
        for child in init.parent.iterdir():
            name = child.stem if child.suffix == ".py" else child.name
            if child.name in ("__init__.py", "__pycache__") or not (child.suffix == ".py" or
                                                                  (child / "__init__.py").is_file()):
                continue
            if f"`{name}`" not in doc and f"`.{name}`" not in doc:
                missing.append(f"{init.parent.relative_to(PACKAGE)}: {name}")
    assert missing == []


#: a duration measured, as a docstring would state it ("~3 ms", "0.35 s an image", "12 ms")
MEASURED_TIME = re.compile(r"~\s?\d[\d.,]*\s?(ms|s|min)\b|\d[\d.]*\s?(ms|µs)\b|"
                           r"\d[\d.]*\s?s (an|a|per) (image|galaxy|epoch|fit)")


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_no_docstring_states_a_measured_time(path):
    """Measured figures go stale in code; they live in docs/benchmarks.md."""
    import ast
    tree = ast.parse(path.read_text())
    nodes = [tree] + [n for n in ast.walk(tree)
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    found = [m.group(0) for n in nodes for m in MEASURED_TIME.finditer(ast.get_docstring(n) or "")]
    assert found == [], f"{path.relative_to(ROOT)} states measured times {found}"


def test_the_readme_is_a_front_page():
    """What it is, a picture, the two commands, one table, where things are, links: the rest
    lives in docs/."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert "make run" in readme and "make test" in readme and "docs/results.md" in readme


def test_the_package_docstring_lists_the_layers_as_they_are():
    doc = (PACKAGE / "__init__.py").read_text()
    listed = doc.split(LAYOUT_START)[1].split(LAYOUT_END)[0].strip()
    assert listed == code_dependencies.layout_text(), (
        "galaxies/__init__.py's layout is out of date; regenerate it with "
        "`python tests/system/test_architecture.py`")


def test_every_module_has_a_layer_and_none_imports_upward():
    graph = code_dependencies.import_graph()
    upward = [(m, d) for m, deps in graph.items() for d in deps
              if code_dependencies.layer_of(d) > code_dependencies.layer_of(m)]
    assert upward == [], f"imports from a lower layer to a higher one: {upward}"


def test_the_import_graph_catches_imports_inside_functions():
    graph = code_dependencies.import_graph()
    assert "networks.models.xception" in graph["networks.models"]  # get_builder imports it
    assert "networks.training.loop" in graph["networks.training"]


@pytest.mark.parametrize("path", sorted((ROOT / "galaxies").rglob("*.py")), ids=lambda p: p.name)
def test_no_module_is_long(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it by concept"


def _texts():
    for folder in ("galaxies", "EDA", "benchmarks", "data", "Project", "models", "experiments", "docs"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".ipynb", ".md") and ".ipynb_checkpoints" not in path.parts:
                yield path
    yield ROOT / "README.md"


def test_no_reference_to_a_file_the_repository_does_not_have():
    pattern = re.compile(r"(?<![\w<>{}*/.-])((?:[\w-]+/)+[\w-]+\.(?:md|ipynb|py|txt|toml))\b")
    missing = []
    for path in _texts():
        text = path.read_text()
        if "DESIGN.md" in text:
            missing.append(f"{path.relative_to(ROOT)} cites DESIGN.md")
        for ref in pattern.findall(text):
            if not ((ROOT / ref).exists() or (path.parent / ref).exists()):
                missing.append(f"{path.relative_to(ROOT)} -> {ref}")
    assert missing == []


def graph_markdown() -> str:
    """The import graph as docs/architecture.md shows it: one row per module."""
    graph = code_dependencies.import_graph()
    rows = ["| layer | module | imports from the package |", "|---|---|---|"]
    for module in sorted(graph, key=lambda m: (code_dependencies.layer_of(m), m)):
        layer = code_dependencies.LAYERS[code_dependencies.layer_of(module)][0]
        name = "galaxies" if module == "__init__" else module
        rows.append(f"| {layer} | `{name}` | {', '.join(graph[module]) or '-'} |")
    return "\n".join(rows)


def test_the_documented_import_graph_is_current():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert GRAPH_START in doc and GRAPH_END in doc
    drawn = doc.split(GRAPH_START)[1].split(GRAPH_END)[0].strip()
    assert drawn == graph_markdown(), (
        "docs/architecture.md's import graph is out of date; regenerate it with "
        "`python tests/system/test_architecture.py`")


if __name__ == "__main__":  # rewrite the graph in docs/architecture.md
    doc_path = ROOT / "docs" / "architecture.md"
    doc = doc_path.read_text()
    head, rest = doc.split(GRAPH_START)
    _, tail = rest.split(GRAPH_END)
    doc_path.write_text(f"{head}{GRAPH_START}\n{graph_markdown()}\n{GRAPH_END}{tail}")
    print(f"wrote {doc_path}")
    init = PACKAGE / "__init__.py"
    head, rest = init.read_text().split(LAYOUT_START)
    _, tail = rest.split(LAYOUT_END)
    init.write_text(f"{head}{LAYOUT_START}\n{code_dependencies.layout_text()}\n{LAYOUT_END}{tail}")
    print(f"wrote {init}")
