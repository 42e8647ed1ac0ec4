"""What the project prints, to a terminal or to a log: only its own lines.

* `quiet_libraries`: the start-up and log lines of TensorFlow (its C++ INFO and WARNING lines,
  ``TF_CPP_MIN_LOG_LEVEL``, inherited by notebook kernels and worker processes), absl and
  astropy (warnings about the files being read, which the project's own checks report as one
  line) are silenced, so an error is the last and only line a failed command prints.
* `show_progress`: a progress bar is drawn only where it renders: a terminal, or a notebook
  (its widget). Written to a file or a pipe (``make run > log``), a bar would be thousands of
  frames joined by carriage returns; there the project logs one line per step instead.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

__all__ = ["QUIET_ENVIRONMENT", "quiet_libraries", "show_progress"]

#: environment of this process and the processes it starts (kernels, workers)
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2"}
_LOGGERS = ("tensorflow", "absl", "keras", "h5py", "astropy", "distributed", "papermill")


def quiet_libraries() -> None:
    """Silence third-party log lines and warnings (see the module docstring); a variable the
    user has set is kept."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(astropy|keras|tensorflow|absl|h5py)(\.|$)")
    try:
        from astropy.utils.exceptions import AstropyWarning
    except ImportError:  # pragma: no cover - astropy is a dependency
        return
    warnings.filterwarnings("ignore", category=AstropyWarning)


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    try:
        return shell is not None and type(shell.get_ipython()).__name__ == "ZMQInteractiveShell"
    except AttributeError:
        return False


def show_progress(progress: bool = True, stream=None) -> bool:
    """Whether to draw a progress bar: asked for (``progress``), and ``stream`` (default
    stderr, where tqdm draws) is a terminal or this is a notebook kernel."""
    if not progress:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):
        terminal = False
    return terminal or _in_notebook()
