#!/usr/bin/env python
"""Generate a fixed-galaxy test set (the seed's command, a thin wrapper of
`galaxies generate-test`).

    python data/gen_test.py FILE --size N [--flux F] [--sersic-index N] [--sersic-radius R]
                            [--g1 G1] [--g2 G2] [--psf FWHM] [--noise SIGMA] [--seed S] [--jobs J]
"""
from galaxies.cli import generate_test

if __name__ == "__main__":
    generate_test(prog_name="data/gen_test.py")
