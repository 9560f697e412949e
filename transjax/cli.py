"""What every binary shares: quiet library logging, a config loaded and validated."""

from __future__ import annotations

import logging as py_logging

from absl import logging


class _DropChatter(py_logging.Filter):
  """Orbax logs every save step at INFO; keep its warnings, drop the chatter."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    noisy = "orbax" in record.pathname or "etils" in record.pathname
    return not (noisy and record.levelno < py_logging.WARNING)


def setup_logging() -> None:
  """INFO progress lines from transjax; only warnings from orbax."""
  logging.set_verbosity(logging.INFO)
  handler = logging.get_absl_handler()
  handler.addFilter(_DropChatter())
  for name in ("orbax", "absl"):
    py_logging.getLogger(name).addFilter(_DropChatter())


# Errors that mean "the input is wrong", reported as one line instead of a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, PermissionError,
                                                FloatingPointError, KeyError)


def run_or_exit(fn, *args, **kwargs):
  """Calls `fn`; a user error ends the program with its one message (exit status 1)."""
  try:
    return fn(*args, **kwargs)
  except USER_ERRORS as e:
    logging.error("%s: %s", type(e).__name__, e)
    raise SystemExit(f"error: {type(e).__name__}: {e}") from None


def preset(arg: str | None, presets: dict, file: str):
  """Returns `presets[arg]()`; an unknown preset names the valid ones."""
  name = arg or "quick"
  if name not in presets:
    raise ValueError(f"{file}: unknown preset {name!r}; choose one of {sorted(presets)}.")
  return presets[name]()
