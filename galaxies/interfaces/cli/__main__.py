"""``python -m galaxies.interfaces.cli``: the ``galaxies`` command (as the tests run it)."""
from galaxies.interfaces.cli import main

main()
