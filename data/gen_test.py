#!/usr/bin/env python
"""Generate a fixed-galaxy test set (the original study's command, a thin wrapper of
`galaxies generate-test`, which spells the options --rows, --sersic-n, --sersic-r, --psf-fwhm
and --sigma).

    python data/gen_test.py FILE --size N [--flux F] [--sersic-index N] [--sersic-radius R]
                            [--g1 G1] [--g2 G2] [--psf FWHM] [--noise SIGMA] [--seed S] [--jobs J]

The original study's --jobs is accepted and not needed: a fixed-galaxy set is one render.
"""
import sys

from galaxies.interfaces.cli.data import generate_test, study_arguments

if __name__ == "__main__":
    generate_test(study_arguments(sys.argv[1:]), prog_name="data/gen_test.py")
