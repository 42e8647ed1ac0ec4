"""The ``galaxies`` command line: one group, its commands in one module per family.

`options` (the shared options and the one-line errors), `data` (generate, generate-test,
datasets), `run` (the pipeline), `networks` (train, predict), `estimates` (crb, fit, refine,
evaluate), `measure` (a person's FITS cutouts); `__main__` runs the group for
``python -m galaxies.interfaces.cli``.

One grammar for every command: ``galaxies VERB INPUTS... OUTPUT``, the inputs first and the file
written last, as positional arguments; an option means one thing wherever it appears (``--psf``
a PSF image file, ``--psf-fwhm`` a FWHM, ``--profile`` the shared `options.PROFILE_OPTION`).

Each subcommand is a thin layer over the package. User errors (`galaxies.runtime.errors`: a value out
of range, a file that breaks its contract, an existing output, a path that cannot be read or
written, an option that is not allowed) end with status 2 and one line,
``galaxies: error: ...``; anything else is a bug and shows its traceback. Ctrl-C exits 130 and
SIGTERM 143, each with one line, after the worker processes are stopped and temporary files
removed. Heavy libraries (TensorFlow, Keras) are imported only by the commands that need them.
"""
from __future__ import annotations

import click

from galaxies import __version__

from .data import datasets, generate, generate_test
from .estimates import crb_command, evaluate_command, fit_command, refine_command
from .measure import measure_command
from .networks import predict, train
from .options import Group
from .run import run


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="galaxies")
def main():
    """Simulate galaxies, train estimators of their parameters, and compare them."""


for command in (generate, generate_test, datasets, run, train, predict, crb_command, fit_command,
                refine_command, evaluate_command, measure_command):
    main.add_command(command)

if __name__ == "__main__":
    main()
