"""Write a clean notebook (no outputs) from a percent-format script.

Cells start with ``# %%`` (code) or ``# %% [markdown]`` (markdown, each line starting with
``# ``), optionally followed by a JSON object of cell metadata, e.g.
``# %% [markdown] {"slideshow": {"slide_type": "slide"}}``. A code cell whose first line is
``# parameters`` is tagged for papermill.

    python tools/py2nb.py notebook.py path/to/notebook.ipynb
"""
import json
import re
import sys

import nbformat


def convert(text: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for block in re.split(r"^# %%", text, flags=re.M)[1:]:
        header, _, body = block.partition("\n")
        body = body.strip("\n")
        brace = header.find("{")
        metadata = json.loads(header[brace:]) if brace >= 0 else {}
        if "[markdown]" in header:
            lines = [re.sub(r"^# ?", "", line) for line in body.splitlines()]
            cell = nbformat.v4.new_markdown_cell("\n".join(lines))
        else:
            cell = nbformat.v4.new_code_cell(body)
            if body.startswith("# parameters"):
                metadata.setdefault("tags", []).append("parameters")
        cell.metadata.update(metadata)
        nb.cells.append(cell)
    for k, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{k}"
    return nb


if __name__ == "__main__":
    source, target = sys.argv[1:3]
    nbformat.write(convert(open(source).read()), target)
    print(f"wrote {target}")
