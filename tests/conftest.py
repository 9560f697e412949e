"""Shared test set-up: the repo root on sys.path, quiet logs, the real-data folder."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))


def find_data_dir() -> str | None:
  """$TRANSJAX_DATA_DIR, else ../shared/data beside the repository, else None."""
  env = os.environ.get("TRANSJAX_DATA_DIR")
  if env and os.path.isdir(env):
    return env
  shared = ROOT.parent / "shared" / "data"
  return str(shared) if shared.is_dir() else None


@pytest.fixture(scope="session")
def real_data_dir() -> str:
  path = find_data_dir()
  if path is None:
    pytest.skip("real data not found: set TRANSJAX_DATA_DIR or place ../shared/data beside the repo")
  return path
