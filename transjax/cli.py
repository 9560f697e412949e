"""What every binary shares: quiet library logging, a config loaded and validated, and the
one `main` of the paper-experiment binaries (`run_paper_app`)."""

from __future__ import annotations

import logging as py_logging
import sys

from absl import app, flags, logging
from ml_collections import config_flags


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


def define_run_flags(config_help: str, workdir_help: str):
  """Defines --config (a locked config file) and --workdir, both required.

  They are registered as key flags of the program being run, so its --help lists them.
  Returns the two flag holders.
  """
  config = config_flags.DEFINE_config_file("config", None, config_help, lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, workdir_help)
  flags.mark_flags_as_required(["config", "workdir"])
  for name in ("config", "workdir"):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])
  return config, workdir


def split_csv(text: str) -> list[str]:
  """"a, b,,c" -> ["a", "b", "c"] (comma-separated config fields such as checkpoints)."""
  return [item for item in (part.strip() for part in text.split(",")) if item]


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a one-line error for a `--config.<field>` that does not exist.

  (ml_collections raises a bare AttributeError with a traceback for an unknown field of a
  locked config.) Pass as `app.run(main, flags_parser=cli.parse_flags)`.
  """
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    raise SystemExit(f"FATAL Flags parsing error: {e}\nPass --helpshort or --helpfull to see "
                     "help on flags.") from None
  except (AttributeError, KeyError) as e:
    field = str(e.args[0] if e.args else e).strip("'\"")
    overrides = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
    raise SystemExit(f"error: unknown config field {field!r} in "
                     f"{', '.join(overrides) or 'a --config override'}; the config file's "
                     "get_config() lists the valid names.") from None


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
    results = run_or_exit(module.run, config.value, workdir.value)
    if results.get("summary"):
      print(results["summary"])
    for claim in results["claims"]:
      print(f"[{claim['verdict']}] {claim['element']}: {claim['ours']}")
    print(f"-> {workdir.value}/results.json")

  app.run(main, flags_parser=parse_flags)
