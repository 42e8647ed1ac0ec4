"""How the ``galaxies`` command line takes options and reports errors (used by every command).

User errors (`galaxies.runtime.errors.USER_ERRORS`) become one line, ``galaxies: error: ...``, and
status 2; click's own usage errors too, and a full disk wherever it is met
(`galaxies.storage.atomic.output_error`). An operating system's error names its path and its reason in
words, never a bare errno. Third-party log lines are silenced before any command runs
(`galaxies.runtime.console.quiet_libraries`), so the error is the only line. Ctrl-C exits 130 and
SIGTERM 143, each with one line, after cleanup. Any other exception is a bug and shows its
traceback.

The group's command class, `Command`, applies that handler (`user_errors`) to every command's
callback, so no command repeats it. A command also names the options it renamed
(``renamed={"--size": "--rows"}``): an old spelling, ``--size 5`` or ``--size=5``, is answered
with one line naming the new one and the command's arguments, status 2.
"""
from __future__ import annotations

import functools
import sys

import click

from galaxies.conventions import TEST_GALAXY
from galaxies.inference.differentiable import RENDERERS
from galaxies.runtime.errors import USER_ERRORS, Terminated

__all__ = ["COUNT", "SEED", "FLOAT_OR_RANDOM", "SCHEDULER", "RENDERER", "PROFILE_OPTION",
           "Command", "Group", "user_errors", "describe", "fail", "galaxy_options"]

#: option types that name the option and the allowed values when a value is refused
COUNT = click.IntRange(min=1)
SEED = click.IntRange(min=0, max=2**63 - 1)


class FloatOrRandom(click.ParamType):
    """A number, or 'random' (None: drawn per galaxy)."""
    name = "float|random"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, float):
            return value
        if str(value).lower() == "random":
            return None
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} must be a number or 'random'", param, ctx)


#: a number or 'random' (`generate`'s --psf-fwhm and --sigma)
FLOAT_OR_RANDOM = FloatOrRandom()

#: where the workers run (`galaxies.runtime.parallel.engine`): the command's body runs inside
#: ``with engine(scheduler, workers=jobs)``
SCHEDULER = click.option(
    "--scheduler", default=None, metavar="ADDRESS", envvar="GALAXIES_SCHEDULER", show_envvar=True,
    help="Run the workers on Dask: 'local' (a LocalCluster of --jobs processes) or a scheduler's "
         "tcp://host:port [default: this machine's process pool].")

#: what draws the model images of the likelihood (`galaxies.inference.differentiable.RENDERERS`)
RENDERER = click.option(
    "--renderer", type=click.Choice(RENDERERS), default="jax", show_default=True,
    help="The model images: the differentiable JAX model (batched, in this process; --jobs "
         "unused) or GalSim's renders (the reference, in --jobs processes).")


def fail(message: str, status: int) -> None:
    click.echo(f"galaxies: {message}", err=True)
    sys.exit(status)


class _OneLineErrors:
    """Click's own usage errors (an unknown option, a value of the wrong type) as one line,
    ``galaxies: error: ...``, with status 2, like every other user error."""

    def main(self, args=None, prog_name=None, **extra):
        from galaxies.runtime.console import quiet_libraries
        quiet_libraries()
        try:
            result = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            fail("interrupted", 130)
        except click.ClickException as err:
            fail(f"error: {err.format_message()}", err.exit_code)
        sys.exit(result if isinstance(result, int) else 0)


class Command(_OneLineErrors, click.Command):
    """A command whose callback reports user errors in one line (`user_errors`), and which
    answers an option it ``renamed`` (old spelling -> new) with one line naming the new one."""

    def __init__(self, *args, renamed: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.renamed = dict(renamed or {})
        if self.callback is not None:
            self.callback = user_errors(self.callback)

    def parse_args(self, ctx, args):
        for arg in args:
            if arg == "--":
                break
            old = arg.partition("=")[0]
            if old in self.renamed:
                raise click.UsageError(f"{old} is now {self.renamed[old]} ({self.synopsis()})",
                                       ctx)
        return super().parse_args(ctx, args)

    def synopsis(self) -> str:
        """``galaxies NAME ARGUMENTS... [OPTIONS]``: how the command is called."""
        names = [p.make_metavar(click.Context(self)) for p in self.params
                 if isinstance(p, click.Argument)]
        return " ".join(["galaxies", self.name, *names, "[OPTIONS]"])


class Group(_OneLineErrors, click.Group):
    command_class = Command


def describe(err: BaseException) -> str:
    """A user error in words: an operating system's error as ``PATH: reason`` (no errno)."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        where = f"{err.filename} -> {err.filename2}" if err.filename2 else f"{err.filename}"
        return f"{where}: {err.strerror[0].lower()}{err.strerror[1:]}"
    return str(err)


def user_errors(func):
    """Report user errors as ``galaxies: error: ...`` (status 2); Ctrl-C (130) and SIGTERM
    (143) as one line too, after cleanup. Any other exception is a bug: its traceback shows."""
    from galaxies.storage.atomic import is_disk_full, output_error, terminate_as_interrupt

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            with terminate_as_interrupt():
                return func(*args, **kwargs)
        except USER_ERRORS as err:
            fail(f"error: {describe(err)}", 2)
        except (OSError, RuntimeError) as err:
            if not is_disk_full(err):
                raise
            kept = getattr(err, "kept_partial", None)
            fail(f"error: {output_error(err, getattr(err, 'filename', None) or 'the output')}"
                 + (f"; {kept}" if kept else ""), 2)
        except Terminated as err:
            kept = getattr(err, "kept_partial", "no partial output was kept")
            fail(f"terminated (SIGTERM); workers stopped, {kept}", 143)
        except KeyboardInterrupt as err:
            fail(f"interrupted; {getattr(err, 'kept_partial', 'no partial output was kept')}", 130)
    return wrapper


#: the profile (`galaxies.runtime.profiles`): its data sets, sizes and recommended network; one
#: definition for every command that takes it
PROFILE_OPTION = click.option(
    "--profile", default=None, envvar="GALAXIES_PROFILE", show_envvar=True,
    type=click.Choice(["smoke", "quick", "full"]),
    help="The profile: its data sets, sizes and recommended network [default: quick].")


def galaxy_options(func):
    """The options that describe one galaxy image, defaults the test galaxy's (snr60)."""
    for name, key, help_text in reversed([
            ("--flux", "flux", "Total flux, photo-electrons."),
            ("--sersic-n", "sersic_n", "Sérsic index."),
            ("--sersic-r", "sersic_r", "Half-light radius, arcsec."),
            ("--g1", "g1", "Reduced shear g1."), ("--g2", "g2", "Reduced shear g2."),
            ("--psf-fwhm", "psf_fwhm", "PSF FWHM, arcsec.")]):
        func = click.option(name, key, type=float, default=TEST_GALAXY[key], show_default=True,
                            help=help_text)(func)
    return click.option("--sigma", type=float, default=200.0, show_default=True,
                        help="Read-noise sigma, photo-electrons.")(func)
