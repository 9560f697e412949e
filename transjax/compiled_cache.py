"""A small, explicit cache of jitted functions (and whatever is built with them).

`jax.jit` keeps the executables it compiled on the function object it returns, so code
that builds a jitted function afresh for every run traces and compiles it again (or reads
it from the persistent cache). A `CompiledCache` keeps the last `max_size` such functions
under a key that says everything they depend on, so later runs in the process that agree
on the key reuse them.

Lifetime: a cache is an object its owner creates (a module holds one for the life of the
process); an entry lives until `max_size` newer keys have been used since it was last
read, or until `clear()`. `len`, `keys()` and `in` show what it holds. Clearing frees the
host memory of the jitted functions and, once nothing else refers to them, their
compiled executables; nothing is lost but the time to build them again.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class CompiledCache(Generic[V]):
  """The last `max_size` values built by `get(key, build)`, least recently used dropped."""

  def __init__(self, name: str, max_size: int):
    if max_size < 1:
      raise ValueError(f"CompiledCache {name!r}: max_size must be >= 1, got {max_size}.")
    self.name, self.max_size = name, int(max_size)
    self._entries: collections.OrderedDict[Hashable, V] = collections.OrderedDict()

  def get(self, key: Hashable, build: Callable[[], V]) -> V:
    """The value cached under `key`, or `build()` (then cached) when there is none."""
    if key in self._entries:
      self._entries.move_to_end(key)
      return self._entries[key]
    value = build()
    self._entries[key] = value
    while len(self._entries) > self.max_size:
      self._entries.popitem(last=False)
    return value

  def clear(self) -> None:
    """Drops every entry (the next `get` of each key builds it again)."""
    self._entries.clear()

  def keys(self) -> list[Hashable]:
    """The keys held, least recently used first."""
    return list(self._entries)

  def __contains__(self, key: Hashable) -> bool:
    return key in self._entries

  def __len__(self) -> int:
    return len(self._entries)

  def __repr__(self) -> str:
    return f"CompiledCache({self.name!r}, {len(self)}/{self.max_size} entries)"
