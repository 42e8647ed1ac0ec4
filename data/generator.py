#!/usr/bin/env python
"""Generate a training set (the original study's command, a thin wrapper of `galaxies generate`, which
spells --size as --rows, --psf as --psf-fwhm and --noise as --sigma).

    python data/generator.py FILE --size N [--sersics K] [--psf FWHM|random]
                             [--noise SIGMA|random] [--seed S] [--jobs J] [--force]
"""
import sys

from galaxies.interfaces.cli.data import generate, study_arguments

if __name__ == "__main__":
    generate(study_arguments(sys.argv[1:], drop=()), prog_name="data/generator.py")
