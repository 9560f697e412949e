"""`--help` for a config file: its presets, and every field of one with its value and meaning.

    python -m experiments.landscape --help --config=configs/landscape.py:quick

A field's meaning is the comment where its preset sets it: on the same line
(`c.layer = ""   # "" = all parameters`) or the comment lines just above it.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
from collections.abc import Mapping
from typing import Any

PRESET_NAMES = ("smoke", "quick", "imagenet", "full")


def _load(path: str):
  spec = importlib.util.spec_from_file_location("_transjax_help_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _flat(config: Any, prefix: str = "") -> dict[str, Any]:
  from transjax import results  # pylint: disable=import-outside-toplevel
  data = results.to_jsonable(config) if not isinstance(config, Mapping) else config
  out = {}
  for key, value in data.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping) and value:
      out.update(_flat(value, name + "."))
    else:
      out[name] = value
  return out


def field_comment(lines: list[str], field: str) -> str:
  """The comment where `field` (its last part) is set in a config source: on the line
  itself, else the comment lines directly above it; "" when there is none."""
  last = re.escape(field.rsplit(".", 1)[-1])
  pattern = re.compile(rf"\.{last}\b\s*=(?!=)")   # where it is assigned
  for n, line in enumerate(lines):
    if not pattern.search(line):
      continue
    code, hash_, comment = line.partition("#")
    if hash_ and not code.strip().startswith(("'", '"')):
      return comment.strip()
    above = []
    for prev in reversed(lines[:n]):
      if not prev.strip().startswith("#"):
        break
      above.insert(0, prev.strip().lstrip("#").strip())
    if above:
      return " ".join(above)
  return ""


def describe(path: str, preset: str | None) -> str:
  """The presets a config file has and the fields of `preset` (default: quick, else the
  first it has), one per line with value and meaning."""
  module = _load(path)
  get_config = module.get_config
  presets = []
  for name in PRESET_NAMES:
    try:
      get_config(name)
      presets.append(name)
    except Exception:  # pylint: disable=broad-except  # not a preset of this file
      continue
  chosen = preset or ("quick" if "quick" in presets else (presets or [None])[0])
  config = get_config(chosen)
  sources = {os.path.realpath(path)}
  try:
    sources.add(os.path.realpath(inspect.getsourcefile(get_config)))
  except TypeError:
    pass
  lines = []
  for source in sorted(sources):
    with open(source) as f:
      lines += f.read().splitlines()
  out = [f"Config {path}: presets {', '.join(presets) or '(none)'}; fields of "
         f"{chosen!r} (override with --config.<field>=<value>):"]
  fields = _flat(config)
  width = min(max((len(k) for k in fields), default=0), 32)
  for name, value in fields.items():
    meaning = field_comment(lines, name)
    out.append(f"  {name:<{width}} = {value!r}" + (f"   # {meaning}" if meaning else ""))
  return "\n".join(out)
