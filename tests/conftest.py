"""Shared test set-up: the repo root on sys.path, quiet logs, the real-data folder."""

from __future__ import annotations

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))


def find_data_dir() -> str | None:
  """$TRANSJAX_DATA_DIR, else ../shared/data beside the repository, else None (the same
  fallback the binaries use: `transjax.data.find_data_dir`)."""
  from transjax.data.sources import find_data_dir as find  # pylint: disable=import-outside-toplevel
  return find()


@pytest.fixture(scope="session")
def real_data_dir() -> str:
  path = find_data_dir()
  if path is None:
    pytest.skip("real data not found: set TRANSJAX_DATA_DIR or place ../shared/data beside the repo")
  return path
