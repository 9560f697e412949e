"""What every binary shares: quiet library logging, a config loaded and validated, user
errors as one line, and the one `main` of the paper-experiment binaries (`run_paper_app`).

A user error (a bad flag, config, file or a busy workdir) ends a binary with one line on
stderr, `error: <kind>: <what, where, how to fix>`, and exit status 2. `--debug` (or the
environment variable TRANSJAX_DEBUG=1) shows the full traceback instead.
"""

from __future__ import annotations

import logging as py_logging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from transjax import interrupts, results, workdir_lock

USER_ERROR_EXIT = 2  # the exit status of a user error (a traceback, i.e. a bug, exits 1)

DEBUG = flags.DEFINE_bool(
    "debug", False, "Show the full Python traceback of an error instead of its one-line "
    "message (also: TRANSJAX_DEBUG=1). User errors exit with status 2.")


class _DropChatter(py_logging.Filter):
  """Orbax logs every save at INFO and a failed write (a full disk) as pages of ERROR lines
  from its worker threads; every failure also reaches transjax as an exception that ends in
  one line, so its own records are kept off the terminal (--debug shows them)."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    noisy = any(name in record.pathname for name in ("orbax", "etils", "tensorstore"))
    return not noisy or debug_enabled()


def setup_logging() -> None:
  """INFO progress lines from transjax; Orbax's records only with --debug."""
  logging.set_verbosity(logging.INFO)
  handler = logging.get_absl_handler()
  handler.addFilter(_DropChatter())
  for name in ("orbax", "absl"):
    py_logging.getLogger(name).addFilter(_DropChatter())


# Errors that mean "the input is wrong", reported as one line instead of a traceback.
# OSError covers missing files, unwritable folders, config files that do not load;
# ImportError an optional dependency that a chosen input needs (PyTorch for a .pth).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, FloatingPointError,
                                                KeyError, ImportError,
                                                workdir_lock.WorkdirLockedError)


def debug_enabled(argv: list[str] | None = None) -> bool:
  """--debug on the command line (parsed or still in `argv`) or TRANSJAX_DEBUG=1."""
  if os.environ.get("TRANSJAX_DEBUG", "").lower() in ("1", "true", "yes"):
    return True
  if argv is not None and any(a in ("--debug", "--debug=true", "--debug=True") for a in argv):
    return True
  return bool(flags.FLAGS.is_parsed() and DEBUG.value)


def one_line(text: str) -> str:
  """A message on one line: its lines joined, blank ones dropped."""
  return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def exit_with_user_error(message: str) -> None:
  """Prints `error: <message>` (one line) to stderr and exits with status 2."""
  print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
  raise SystemExit(USER_ERROR_EXIT)


def run_or_exit(fn, *args, **kwargs):
  """Calls `fn`; a user error ends the program with its one message (exit status 2).

  SIGTERM and SIGINT end it with one line saying where it stopped and how to resume, and
  the exit status 128 + the signal's number (`transjax.interrupts`: training writes a
  checkpoint at the current step first; a second signal exits at once).

  With --debug (or TRANSJAX_DEBUG=1) the error propagates with its traceback.
  """
  results.git_commit()  # the commit this process's code came from, read before it runs
  try:
    with interrupts.handled():
      return fn(*args, **kwargs)
  except interrupts.Interrupted as e:
    if debug_enabled():
      raise
    print(f"interrupted: {one_line(str(e)) or 'stopped'}"
          + ("" if e.where else "; run the same command again to resume"),
          file=sys.stderr, flush=True)
    raise SystemExit(e.exit_status) from None
  except USER_ERRORS as e:
    if debug_enabled():
      raise
    key = e.args[0] if isinstance(e, KeyError) and e.args else e  # KeyError quotes its text
    exit_with_user_error(f"{type(e).__name__}: {key} (--debug shows the traceback)")


def preset(arg: str | None, presets: dict, file: str):
  """Returns `presets[arg]()`; an unknown preset names the valid ones."""
  name = arg or "quick"
  if name not in presets:
    raise ValueError(f"{file}: unknown preset {name!r}; choose one of {sorted(presets)}.")
  return presets[name]()


def define_run_flags(config_help: str, workdir_help: str):
  """Defines --config (a locked config file) and --workdir, both required.

  They are registered as key flags of the program being run, so its --help lists them.
  Returns the two flag holders.
  """
  config = config_flags.DEFINE_config_file("config", None, config_help, lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, workdir_help + " " + LOCK_HELP)
  flags.mark_flags_as_required(["config", "workdir"])
  for name in ("config", "workdir"):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])
  return config, workdir


LOCK_HELP = ("One process at a time writes a workdir: a second one is refused at once, "
             "naming the holder (a lock left by a killed run is taken over).")


def _config_load_error(name: str) -> str | None:
  """The one-line reason a config flag's file did not load (config_flags defers it), or None."""
  try:
    value = flags.FLAGS[name].value
  except (KeyError, AttributeError):
    return None
  if type(value).__name__ != "_ErrorConfig":
    return None
  raw = str(flags.FLAGS[name].serialize()).split("=", 1)[-1]
  path = raw.split(":", 1)[0]
  if not os.path.exists(path):
    return (f"flag --{name}={raw}: no config file {path} (relative to {os.getcwd()}); "
            f"give an existing file with a preset, e.g. --{name}=configs/lenet_mnist.py:quick.")
  error = object.__getattribute__(value, "_error")
  last = [line.strip() for line in str(error).splitlines() if line.strip()]
  return f"flag --{name}={raw}: the config file did not load: {last[-1] if last else error}."


def _flag_error_line(e: flags.Error) -> str:
  """absl's flag error (which may embed a config file's traceback) as one line."""
  text = str(e)
  marker = "Traceback (most recent call last):"
  if marker in text:
    head, trace = text.split(marker, 1)
    head = head.replace("Error whilst parsing config file:", "").strip().rstrip(":")
    lines = [line for line in trace.splitlines() if line.strip()]
    return f"{head}: {lines[-1].strip() if lines else text}"
  return one_line(text)


def split_csv(text: str) -> list[str]:
  """"a, b,,c" -> ["a", "b", "c"] (comma-separated config fields such as checkpoints)."""
  return [item for item in (part.strip() for part in text.split(",")) if item]


def layer_selection(text: str, field: str = "config.layers") -> list[str] | None:
  """A comma-separated layer list: None for "" (every parameter); an empty list is refused.

  "conv1,fc" -> ["conv1", "fc"]; "" -> None; "," or " , " -> ValueError (a selection that
  names nothing would otherwise silently analyse the whole model).
  """
  if not str(text).strip():
    return None
  names = split_csv(text)
  if not names:
    raise ValueError(f"{field} = {text!r} names no layer; give layer names (e.g. "
                     f"--{field}=conv1,fc) or leave it empty ('') for every parameter.")
  return names


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a one-line error for a `--config.<field>` that does not exist.

  (ml_collections raises a bare AttributeError with a traceback for an unknown field of a
  locked config.) Pass as `app.run(main, flags_parser=cli.parse_flags)`.
  """
  flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS["debug"])
  debug = debug_enabled(argv)
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as e:
    if debug:
      raise
    exit_with_user_error(f"{_flag_error_line(e)} (--helpshort lists the flags)")
  except (AttributeError, KeyError) as e:
    if debug:
      raise
    field = str(e.args[0] if e.args else e).strip("'\"")
    overrides = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
    exit_with_user_error(f"unknown config field {field!r} in "
                         f"{', '.join(overrides) or 'a --config override'}; the config file's "
                         "get_config() lists the valid names.")
  for name in list(flags.FLAGS):
    problem = None if debug else _config_load_error(name)
    if problem:
      exit_with_user_error(problem)
  return rest


def _validated(module):
  """`module.run` after `module.validate` (where the experiment has one: every value and
  what can be checked without data, before anything is trained), holding the workdir."""
  locked_run = workdir_lock.locked()(module.run)

  def run(config, workdir):
    if hasattr(module, "validate"):
      module.validate(config)
    return locked_run(config, workdir)

  return run


def run_paper_app(module, config_file: str) -> None:
  """The `main` of a paper-experiment binary: --config/--workdir -> `module.run` -> a short table.

  Each `experiments/paper_<name>.py` is its docstring plus this call with
  `transjax.paper.<name>` and its config file.
  """
  config, workdir = define_run_flags(
      f"{config_file}:<smoke|quick|full>. Override any field, e.g. "
      "--config.data_dir=/path/to/data --config.shared_dir=runs/sources.",
      "Output folder for results.json and figures; a re-run resumes "
      "unfinished training runs and reuses finished ones.")

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    setup_logging()
    results = run_or_exit(_validated(module), config.value, workdir.value)
    if results.get("summary"):
      print(results["summary"])
    for claim in results["claims"]:
      reason = f": {claim['inconclusive']}" if claim.get("inconclusive") else ""
      print(f"[{claim['verdict']}{reason}] {claim['element']}: {claim['ours']}")
    print(f"-> {workdir.value}/results.json")

  app.run(main, flags_parser=parse_flags)
