"""The layout of docs/architecture.md holds: layers, module sizes, references, the drawn graph."""
import re

import pytest

from galaxies import profiles, sources

ROOT = profiles.ROOT
MAX_LINES = 400
GRAPH_START, GRAPH_END = "<!-- import graph: start -->", "<!-- import graph: end -->"


def test_every_module_has_a_layer_and_none_imports_upward():
    graph = sources.import_graph()
    upward = [(m, d) for m, deps in graph.items() for d in deps
              if sources.layer_of(d) > sources.layer_of(m)]
    assert upward == [], f"imports from a lower layer to a higher one: {upward}"


def test_the_import_graph_catches_imports_inside_functions():
    graph = sources.import_graph()
    assert "models.xception" in graph["models"]  # get_builder imports it when asked
    assert "training.loop" in graph["training"]


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
    graph = sources.import_graph()
    rows = ["| layer | module | imports from the package |", "|---|---|---|"]
    for module in sorted(graph, key=lambda m: (sources.layer_of(m), m)):
        layer = sources.LAYERS[sources.layer_of(module)][0]
        name = "galaxies" if module == "__init__" else module
        rows.append(f"| {layer} | `{name}` | {', '.join(graph[module]) or '-'} |")
    return "\n".join(rows)


def test_the_documented_import_graph_is_current():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert GRAPH_START in doc and GRAPH_END in doc
    drawn = doc.split(GRAPH_START)[1].split(GRAPH_END)[0].strip()
    assert drawn == graph_markdown(), (
        "docs/architecture.md's import graph is out of date; regenerate it with "
        "`python tests/test_architecture.py`")


if __name__ == "__main__":  # rewrite the graph in docs/architecture.md
    doc_path = ROOT / "docs" / "architecture.md"
    doc = doc_path.read_text()
    head, rest = doc.split(GRAPH_START)
    _, tail = rest.split(GRAPH_END)
    doc_path.write_text(f"{head}{GRAPH_START}\n{graph_markdown()}\n{GRAPH_END}{tail}")
    print(f"wrote {doc_path}")
