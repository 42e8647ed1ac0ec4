"""`python -m galaxies.interfaces.cli`: the `galaxies` command."""
from . import main

main()
