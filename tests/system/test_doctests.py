"""The examples in the package's docstrings run and print what they say (``>>>`` lines)."""
import doctest
import importlib

import pytest

from galaxies.runtime import code_dependencies

WITH_EXAMPLES = sorted(m for m in code_dependencies.package_modules()
                       if ">>>" in code_dependencies.module_file(m).read_text())


def test_the_package_has_examples():
    assert {"conventions", "inference.crb"} <= set(WITH_EXAMPLES)


@pytest.mark.parametrize("module", WITH_EXAMPLES)
def test_docstring_examples(module):
    name = "galaxies" if module == "__init__" else f"galaxies.{module}"
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, f"{name}: {result}"
