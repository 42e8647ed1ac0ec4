#!/usr/bin/env python
"""Generate a training set (the seed's command, now a thin wrapper of `galaxies generate`).

    python data/generator.py FILE --size N [--sersics K] [--psf FWHM|random]
                             [--noise SIGMA|random] [--seed S] [--jobs J] [--force]
"""
from galaxies.cli import generate

if __name__ == "__main__":
    generate(prog_name="data/generator.py")
