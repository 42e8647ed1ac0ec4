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
#: loggers quieted whenever they exist: TensorFlow's is a plain logger, made here if need be;
#: absl and astropy install their own logger classes when imported, so theirs are quieted only
#: once made (a plain logger made first would break astropy's import)
_LOGGERS = ("tensorflow", "absl", "astropy", "keras", "h5py", "distributed", "papermill")
_WARNING_MODULES = r"(astropy|keras|tensorflow|absl|h5py)(\.|$)"


def quiet_libraries() -> None:
    """Silence third-party log lines and warnings (see the module docstring); a variable the
    user has set is kept. Cheap: nothing is imported."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    existing = logging.Logger.manager.loggerDict
    for name in _LOGGERS:
        if name == "tensorflow" or isinstance(existing.get(name), logging.Logger):
            logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=_WARNING_MODULES)


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
