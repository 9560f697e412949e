"""What every binary shares: quiet library logging, a config loaded and validated, user
errors as one line, and the one `main` of the paper-experiment binaries (`run_paper_app`).

A user error (a bad flag, config, file or a busy workdir) ends a binary with one line on
stderr, `error: <kind>: <what, where, how to fix>`, and exit status 2. `--debug` (or the
environment variable TRANSJAX_DEBUG=1) shows the full traceback instead.

Every config file is checked while the flags are parsed (`parse_flags`): one that does not
import names its file and line, and a field its binary does not know names the close ones.
SIGTERM and SIGINT end a binary with one `interrupted:` line saying how to resume and the
status 128 + the signal's number (`run_or_exit`, `transjax.interrupts`).

A binary defines its flags only when it runs, in its `__main__` guard (`BinaryFlags`), and
importing this module defines none, so any set of binaries and presets imports into one
process (a test worker) without a DuplicateFlagError.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import logging as py_logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from absl import app, flags, logging
from ml_collections import config_flags

from transjax import interrupts, results, workdir_lock

USER_ERROR_EXIT = 2  # the exit status of a user error (a traceback, i.e. a bug, exits 1)


def define_debug_flag() -> None:
  """Defines --debug, once. `parse_flags` calls it, so every binary has the flag, while
  importing this module (as presets and libraries do) defines none."""
  if "debug" not in flags.FLAGS:
    flags.DEFINE_bool(
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
  return bool(flags.FLAGS.is_parsed() and "debug" in flags.FLAGS and flags.FLAGS.debug)


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


# config flag name -> the fields its binary knows (a function returning them), checked by
# `parse_flags` against what the config file's get_config() returned.
_KNOWN_FIELDS: dict[str, Callable[[], Any]] = {}
PRESET_NAMES = ("smoke", "quick", "imagenet", "full")


def preset_fields(get_config: Callable[[str], Any]) -> Callable[[], dict]:
  """The fields a binary knows, as the union of its presets' (`get_config(name)` for each
  of PRESET_NAMES it has). A section whose keys differ between presets (e.g. a preset's own
  list of targets) is open: only its name is checked."""

  def fields() -> dict:
    configs = []
    for name in PRESET_NAMES:
      try:
        configs.append(results.to_jsonable(get_config(name)))
      except ValueError:  # not a preset of this binary
        continue
    return _union(configs)

  return fields


def _union(configs: list[Mapping[str, Any]]) -> dict:
  """The fields of several configs: every key of any; a section whose keys agree in all of
  them merged the same way, else OPEN_SECTION."""
  out: dict[str, list[Any]] = {}
  for c in configs:
    for key, value in c.items():
      out.setdefault(key, []).append(value)
  merged = {}
  for key, values in out.items():
    sections = [v for v in values if isinstance(v, Mapping)]
    if sections and len(sections) == len(values):
      same = all(set(v) == set(sections[0]) for v in sections)
      merged[key] = _union(sections) if same else OPEN_SECTION
    else:
      merged[key] = values[0]
  return merged


OPEN_SECTION: dict = {}  # a section of free keys (its name alone is checked)


def unknown_field(config: Mapping[str, Any], known: Mapping[str, Any],
                  prefix: str = "") -> tuple[str, list[str]] | None:
  """(the first field of `config` that `known` lacks, the close known names), or None.

  Sections are compared key by key, except an empty (open) one in `known`.
  """
  for key, value in config.items():
    if key not in known:
      return prefix + key, [prefix + k for k in difflib.get_close_matches(
          key, [str(k) for k in known], n=3, cutoff=0.6)]
    section = known[key]
    if isinstance(section, Mapping) and section and isinstance(value, Mapping):
      found = unknown_field(value, section, prefix + key + ".")
      if found:
        return found
  return None


def _field_line(path: str, field: str) -> int | None:
  """The line of `path` that sets `field`'s last part (`c.resolutoin = 5`), if one does."""
  last = re.escape(field.rsplit(".", 1)[-1])
  pattern = re.compile(rf"""(\.{last}\b\s*=(?!=))|([\[(]\s*["']{last}["']\s*[\],])""")
  try:
    with open(path) as f:
      for n, line in enumerate(f, 1):
        if pattern.search(line):
          return n
  except OSError:
    pass
  return None


class BinaryFlags:
  """A binary's absl flags, defined when it runs as a program, never when it is imported.

  absl keeps one registry per process, so two modules that each define, say, --output when
  imported cannot be imported into one process (a test worker, a notebook, a tool that
  lists the binaries): DuplicateFlagError. Every binary under experiments/ therefore names
  its flags in a function that returns their holders by name, and defines them in its
  `__main__` guard:

      _FLAGS = cli.BinaryFlags(lambda: dict(
          output=flags.DEFINE_string("output", "out.json", "Where to write the JSON.")))

      def main(argv):
        write_json(_FLAGS.output, ...)          # the parsed value of --output

      if __name__ == "__main__":
        _FLAGS.define()
        app.run(main, flags_parser=cli.parse_flags)

  `define()` defines them once; a second call returns the same holders (a test may call
  it). Reading a value before `define()` is an error that says so.
  """

  def __init__(self, define: Callable[[], Any]):
    """`define()` defines the flags and returns their holders: a mapping name -> holder or
    a named tuple of holders (`define_run_flags`' RunFlags)."""
    self._define = define
    self._holders: dict[str, Any] | None = None

  def define(self) -> BinaryFlags:
    """Defines the flags (the first call only); returns self."""
    if self._holders is None:
      holders = self._define()
      self._holders = dict(holders._asdict() if hasattr(holders, "_asdict") else holders)
    return self

  @property
  def holders(self) -> dict[str, Any]:
    """name -> absl flag holder; an error before `define()`."""
    if self._holders is None:
      raise RuntimeError("this binary's flags are not defined: they are defined in its "
                         "`if __name__ == '__main__':` guard (`_FLAGS.define()`); a test "
                         "calls the module's library function instead, or define() first.")
    return self._holders

  def values(self) -> dict[str, Any]:
    """name -> the parsed value of every flag."""
    return {name: holder.value for name, holder in self.holders.items()}

  def __getattr__(self, name: str) -> Any:
    """The parsed value of the flag `name` (`_FLAGS.output`)."""
    if name.startswith("_"):
      raise AttributeError(name)
    holders = self.holders
    if name not in holders:
      raise AttributeError(f"no flag {name!r} among this binary's: {sorted(holders)}")
    return holders[name].value


class RunFlags(NamedTuple):
  """The holders of --config and --workdir (`define_run_flags`)."""
  config: Any
  workdir: Any


def define_run_flags(config_help: str, workdir_help: str,
                     fields: Callable[[], Any] | None = None) -> RunFlags:
  """Defines --config (a locked config file) and --workdir, both required.

  They are registered as key flags of the program being run, so its --help lists them.
  `fields`: returns every field the binary reads (a ConfigDict or dict); a config file
  whose get_config() returns another field is refused in one line naming it and the close
  names (`parse_flags`). Returns the two flag holders (a RunFlags, which `BinaryFlags`
  takes as it is).
  """
  config = config_flags.DEFINE_config_file("config", None, config_help, lock_config=True)
  if fields is not None:
    _KNOWN_FIELDS["config"] = fields
  workdir = flags.DEFINE_string("workdir", None, workdir_help + " " + LOCK_HELP)
  flags.mark_flags_as_required(["config", "workdir"])
  for name in ("config", "workdir"):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])
  return RunFlags(config, workdir)


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


def _config_args(argv: list[str]) -> list[tuple[str, str]]:
  """(flag name, file) of every config-file flag given in `argv` (`--config=f.py:arg`)."""
  names = {n for n in flags.FLAGS if type(flags.FLAGS[n]).__name__ == "_ConfigFlag"}
  out = []
  for i, arg in enumerate(argv[1:], 1):
    name, eq, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
    if name in names:
      if not eq and i + 1 < len(argv):
        value = argv[i + 1]
      out.append((name, value.split(":", 1)[0] if ".py:" in value or value.endswith(".py")
                  else value))
  return out


def _config_file_error(argv: list[str], error: BaseException) -> str | None:
  """One line for an error raised while a config file loaded: its file and line, or None
  when the error did not come from a config file."""
  for name, path in _config_args(argv):
    full = os.path.realpath(path)
    if isinstance(error, SyntaxError) and error.filename and \
        os.path.realpath(error.filename) == full:
      return (f"config file {path} line {error.lineno}: SyntaxError: {error.msg} "
              f"(--{name}; fix the file)")
    if isinstance(error, AttributeError) and "get_config" in str(error):
      return (f"config file {path} defines no get_config(arg) (--{name}): a config file is a "
              "Python file whose get_config(arg) returns the config, e.g. configs/landscape.py")
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if os.path.realpath(f.filename) == full]
    if frames:
      where = frames[-1]
      in_function = f" (in {where.name})" if where.name != "<module>" else ""
      return (f"config file {path} line {where.lineno}{in_function}: "
              f"{type(error).__name__}: {one_line(str(error))}{_import_hint(error)} "
              f"(--{name}; fix the file)")
  return None


def _import_hint(error: BaseException) -> str:
  """"; did you mean 'x'?" for `from m import y` of a name `m` lacks (Python 3.11 does not
  say), else ""."""
  match = re.match(r"cannot import name '([^']+)'", str(error))
  module = sys.modules.get(getattr(error, "name", None) or "")
  if not (isinstance(error, ImportError) and match and module):
    return ""
  close = difflib.get_close_matches(match.group(1), dir(module), n=3, cutoff=0.6)
  return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _override_field_error(argv: list[str], error: BaseException) -> str:
  """One line for a `--config.<field>=` override that names no field, with the close names."""
  text = str(error.args[0] if error.args else error)
  # ml_collections' own text: "'momentun'\nDid you mean "momentum" instead of "momentun"?"
  # (quoted once more by KeyError's repr: the escapes arrive as text).
  text = text.replace("\\n", "\n").replace("\\'", "'")
  field = text.splitlines()[0].strip("'\" ") if text.strip() else "?"
  suggested = re.findall(r'Did you mean "([^"]+)"', text)
  overrides = [a[2:].split("=")[0] for a in argv[1:]
               if a.startswith("--") and "." in a.split("=")[0]]
  given, close = ", ".join(f"--{o}" for o in overrides) or "a --config override", []
  for override in overrides:
    if override.rsplit(".", 1)[-1] == field:
      given = f"--{override}"
      close = [f"--{override.rsplit('.', 1)[0]}.{name}" for name in suggested]
  for override in ([] if close else overrides):
    flag, _, path = override.partition(".")
    try:
      config = flags.FLAGS[flag].value
    except (KeyError, AttributeError):
      continue
    *sections, last = path.split(".")
    for part in sections:
      config = config.get(part) if hasattr(config, "get") else None
    if hasattr(config, "keys") and last not in config:
      field, given = last, f"--{override}"
      prefix = ".".join([flag] + sections)
      close = [f"--{prefix}.{k}" for k in difflib.get_close_matches(
          last, [str(k) for k in config.keys()], n=3, cutoff=0.6)]
      break
  hint = (f"did you mean {' or '.join(close)}?" if close else
          "the config file's get_config() lists the valid names.")
  return f"unknown config field {field!r} in {given}; {hint}"


def _known_fields() -> dict[str, Callable[[], Any]]:
  """The registered fields of each config flag; a flag registered without them whose
  default is a preset file (reproduce's installed presets) knows that file's presets'."""
  known = dict(_KNOWN_FIELDS)
  for name in flags.FLAGS:
    flag = flags.FLAGS[name]
    if name in known or type(flag).__name__ != "_ConfigFlag" or not flag.default_as_str:
      continue
    path = flag.default_as_str.strip("'\"").split(":", 1)[0]
    if path.endswith(".py") and os.path.isfile(path):
      spec = importlib.util.spec_from_file_location(f"_transjax_presets_{name}", path)
      module = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(module)
      if callable(getattr(module, "get_config", None)):
        known[name] = preset_fields(module.get_config)
  return known


def _unknown_field_error(argv: list[str]) -> str | None:
  """One line for a field the config file set that its binary does not know."""
  files = dict(_config_args(argv))
  for name, fields in _known_fields().items():
    try:
      config = flags.FLAGS[name].value
    except (KeyError, AttributeError):
      continue
    if config is None or not hasattr(config, "to_dict"):
      continue
    found = unknown_field(results.to_jsonable(config), results.to_jsonable(fields()))
    if found:
      field, close = found
      path = files.get(name, f"--{name}")
      line = _field_line(path, field) if path.endswith(".py") else None
      where = f"config file {path}" + (f" line {line}" if line else "")
      hint = (f"did you mean {' or '.join(repr(c) for c in close)}?" if close else
              "this binary does not read it; remove it.")
      return f"{where}: unknown field {field!r}; {hint}"
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with every config file checked; each problem is one line.

  A config file that does not import (a syntax error, an import of a name that does not
  exist, an error in get_config) names the file and line; one without get_config says so;
  a field its binary does not know (`define_run_flags(fields=...)`) or a `--config.<field>`
  override that names none is refused with the close names. Pass as
  `app.run(main, flags_parser=cli.parse_flags)`.
  """
  define_debug_flag()
  flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS["debug"])
  if any(a.split("=", 1)[0] in _HELP_FLAGS for a in argv[1:]):
    _print_help(argv)
  debug = debug_enabled(argv)
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as e:
    if debug:
      raise
    exit_with_user_error(f"{_flag_error_line(e)} (--helpshort lists the flags)")
  except Exception as e:  # pylint: disable=broad-except  (a config file can raise anything)
    if debug:
      raise
    problem = _config_file_error(argv, e)
    if problem:
      exit_with_user_error(problem)
    if isinstance(e, (AttributeError, KeyError)):
      exit_with_user_error(_override_field_error(argv, e))
    raise
  for name in list(flags.FLAGS):
    problem = None if debug else _config_load_error(name)
    if problem:
      exit_with_user_error(problem)
  problem = None if debug else _unknown_field_error(argv)
  if problem:
    exit_with_user_error(problem)
  return rest


_HELP_FLAGS = ("--help", "-h", "-?", "--helpshort", "--helpfull")


def _print_help(argv: list[str]) -> None:
  """absl's help (the flags), then each config file's presets and fields; exits 0."""
  rest = [a for a in argv if not a.startswith("--config")]
  try:
    flags.FLAGS(rest)   # absl prints the help and exits (with 1)
  except SystemExit:
    pass
  from transjax import config_help  # pylint: disable=import-outside-toplevel
  configs = [(a.split("=", 1)[1] if "=" in a else "") for a in argv[1:]
             if a.split("=", 1)[0] == "--config"]
  if not configs:
    flag = flags.FLAGS["config"] if "config" in flags.FLAGS else None
    default = flag.default_as_str.strip("'\"") if flag is not None and flag.default_as_str else ""
    configs = [default] if default and default != "None" else []
  for arg in configs:
    path, _, preset = arg.partition(":")
    try:
      print("\n" + config_help.describe(path, preset or None))
    except Exception as e:  # pylint: disable=broad-except  # help must not fail
      print(f"\n(config {arg}: {one_line(str(e))})")
  if not configs and "config" in flags.FLAGS:
    print("\nConfig fields: add --config=<file>:<preset> to --help to list a preset's "
          "fields with their meaning, and the file's presets.")
  raise SystemExit(0)


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
  presets = importlib.import_module(
      f"transjax.paper.presets.{module.__name__.rsplit('.', 1)[-1]}")
  config, workdir = define_run_flags(
      f"{config_file}:<smoke|quick|full>. Override any field, e.g. "
      "--config.data_dir=/path/to/data --config.shared_dir=runs/sources.",
      "Output folder for results.json and figures; a re-run resumes "
      "unfinished training runs and reuses finished ones.",
      fields=preset_fields(presets.get_config))

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
