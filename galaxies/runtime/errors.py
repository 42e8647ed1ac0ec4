"""The exception policy: which class for which kind of mistake (in the spirit of GalSim's).

A *user error* is one the person running the code can fix by changing an input: a value, an
option, a file, a path. Every user error is a `GalaxiesError`; the command line prints its
message as one line, ``galaxies: error: ...``, and exits with status 2. The message names the
value and what is allowed. Anything else (a TypeError, a KeyError, a ValueError raised deep in
a library) is a bug and shows its traceback; plain ``ValueError`` is never raised for a user
error here, so it cannot hide one.

=======================  ===================================================================
class                    raised when
=======================  ===================================================================
`InputError`             an argument or option is outside what is allowed (also a ValueError)
`ParameterRangeError`    a galaxy parameter, PSF or noise level is outside the simulated ranges
`FileFormatError`        a file does not follow its contract (fields, shapes, dtypes, sizes)
`OutputExistsError`      an output exists and ``force`` was not given, or would replace an input
`ResourceError`          a request needs more disk or memory than this machine has free
`Terminated`             SIGTERM arrived (a KeyboardInterrupt, so cleanup runs); exit 143
=======================  ===================================================================

Operating-system errors about paths (`PermissionError`, `FileNotFoundError`,
`NotADirectoryError`, `IsADirectoryError`) are user errors too: the command line reports them
the same way.
"""
from __future__ import annotations

__all__ = ["GalaxiesError", "InputError", "ParameterRangeError", "FileFormatError",
           "OutputExistsError", "ResourceError", "Terminated", "USER_ERRORS"]


class GalaxiesError(Exception):
    """Base of every error the user can fix by changing an input."""


class InputError(GalaxiesError, ValueError):
    """An argument or option outside what is allowed; the message names both."""


class ParameterRangeError(InputError):
    """A galaxy parameter, PSF FWHM or noise level outside the simulated ranges."""


class FileFormatError(GalaxiesError, ValueError):
    """A data set, predictions file or cutout that does not follow its contract."""


class OutputExistsError(GalaxiesError, FileExistsError):
    """An output that exists (without ``force``), or that would replace one of the inputs."""


class ResourceError(GalaxiesError):
    """A request that needs more disk or memory than is free."""


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM; raised in the main thread so cleanup code runs."""


#: what the command line reports in one line and exit status 2
USER_ERRORS = (GalaxiesError, PermissionError, FileNotFoundError, NotADirectoryError,
               IsADirectoryError, FileExistsError)
