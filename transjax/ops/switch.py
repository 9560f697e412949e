"""The one switch of `transjax.ops`: CPU formulations on, or plain `lax` everywhere.

The alternative formulations run only where they pay: on the CPU backend, with the switch
on (the default). On an accelerator the switch is off whatever it is set to, so nothing
written for XLA:CPU reaches the GPU or TPU path. Turn the formulations off

- for a whole process: `TRANSJAX_CPU_KERNELS=0` in the environment;
- in code: `transjax.ops.set_cpu_kernels(False)`, or for a block,
  `with transjax.ops.cpu_kernels(False): ...`.

The switch is read when a function is traced, like any Python-level choice under `jit`:
flip it before tracing (a function jitted earlier keeps the formulation it was traced
with until it is traced again).
"""

from __future__ import annotations

import contextlib
import os

import jax

ENV_VAR = "TRANSJAX_CPU_KERNELS"
_OFF = ("0", "false", "off", "no")

_enabled = os.environ.get(ENV_VAR, "1").strip().lower() not in _OFF


def set_cpu_kernels(enabled: bool) -> None:
  """Turns the CPU formulations on or off for this process (read at trace time)."""
  global _enabled
  _enabled = bool(enabled)


def cpu_kernels_enabled() -> bool:
  """The switch as set (on an accelerator `active()` is False whatever it says)."""
  return _enabled


@contextlib.contextmanager
def cpu_kernels(enabled: bool):
  """The switch set to `enabled` inside the block, restored after it."""
  previous = _enabled
  set_cpu_kernels(enabled)
  try:
    yield
  finally:
    set_cpu_kernels(previous)


def active() -> bool:
  """Whether the CPU formulations are used now: the switch is on and the backend is CPU."""
  return _enabled and jax.default_backend() == "cpu"
