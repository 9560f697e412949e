"""The two-layer ReLU network of Section 6.1 and its full-batch gradient descent, in float64.

f(x) = a^T relu(W^T x) / sqrt(m), W in R^{d x m}, a_r in {-1, +1} fixed, loss
1/2 ||y - f(X)||^2. Only W is trained. All JAX work runs under `jax.enable_x64(True)`
so the rest of the process keeps its own dtype setting.

Step size: the default is eta = 1 / lambda_max(H_inf) of the set being trained on.
Near initialisation u(k+1) - y ~ (I - eta H(k)) (u(k) - y) with H(k) ~ H_inf, so this
eta is the largest "safe" constant step (eta < 2 / lambda_max is needed for stability) and
gives the fastest linear rate (1 - eta lambda_min) of the paper's Theorem 3; the paper's
O(lambda / n^2) is a worst-case sufficient choice that is needlessly slow.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from theory.errors import DivergenceError, MemoryBudgetError

# A residual this many times the starting one means the iteration has blown up.
_BLOWUP_FACTOR = 1e6


@dataclasses.dataclass(frozen=True)
class Network:
  """Initial weights W(0) (d, m) and fixed output signs a (m,), numpy float64."""

  w_init: np.ndarray
  signs: np.ndarray

  @property
  def width(self) -> int:
    return int(self.signs.shape[0])


@dataclasses.dataclass(frozen=True)
class Trajectory:
  """What one gradient-descent run did.

  Attributes:
    steps: recorded step indices (logarithmically spaced, ending at the last step).
    residual_sq: ||u(k) - y||^2 at each recorded step.
    max_neuron_distance: max_r ||w_r(k) - w_r(0)||_2 at each recorded step (from W(0) of
      the network, not from the start of this run).
    w_final: final weights (d, m).
    num_steps: steps taken.
    converged: residual reached the tolerance before the step cap.
    eta: step size used.
  """

  steps: np.ndarray
  residual_sq: np.ndarray
  max_neuron_distance: np.ndarray
  w_final: np.ndarray
  num_steps: int
  converged: bool
  eta: float


def init_network(seed: int, width: int, dim: int, kappa: float) -> Network:
  """Draws W(0) ~ N(0, kappa^2 I) and a ~ Unif{-1, +1}^m from `jax.random.key(seed)`."""
  with jax.enable_x64(True):
    key_w, key_a = jax.random.split(jax.random.key(seed))
    w_init = kappa * jax.random.normal(key_w, (dim, width), dtype=jnp.float64)
    signs = jnp.where(jax.random.bernoulli(key_a, 0.5, (width,)), 1.0, -1.0)
    return Network(w_init=np.asarray(w_init), signs=np.asarray(signs, dtype=np.float64))


def estimate_bytes(width: int, dim: int, num_samples: int) -> int:
  """Estimates peak bytes of a training run: weight copies plus n x m activations.

  Counts W(0), W(P), the iterate, its gradient and a spare copy (5 d x m) and the
  pre-activations, their mask and the backward product (4 n x m), all float64.
  """
  return 8 * (5 * dim * width + 4 * num_samples * width)


def check_memory(width: int, dim: int, num_samples: int, limit_bytes: float) -> int:
  """Raises MemoryBudgetError when `estimate_bytes` exceeds `limit_bytes`; returns it."""
  needed = estimate_bytes(width, dim, num_samples)
  if needed > limit_bytes:
    raise MemoryBudgetError(
        f"width m={width} with d={dim}, n={num_samples} needs about {needed / 2**30:.2f} GiB "
        f"(> memory limit {limit_bytes / 2**30:.2f} GiB); lower the widths or n, or raise "
        "config.memory_limit_gib.")
  return needed


def _outputs(w: jax.Array, signs: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  pre_activation = x @ w
  # A fused multiply-reduce reads the (n, m) pre-activations once; `relu(pre) @ signs`
  # made XLA:CPU write relu(pre) out first (GD is memory-bound at large m).
  outputs = jnp.sum(jax.nn.relu(pre_activation) * signs, axis=1) / jnp.sqrt(signs.shape[0])
  return pre_activation, outputs


@jax.jit
def _forward(w, signs, x):
  return _outputs(w, signs, x)[1]


@jax.jit
def _descend_full(w, signs, x, y, eta, stop_step, start_step, tol_sq, blowup_sq):
  """Runs GD from `start_step` until `stop_step`, the tolerance, or a blow-up."""
  scale = 1.0 / jnp.sqrt(signs.shape[0])

  def residual_sq(outputs):
    return jnp.sum((outputs - y) ** 2)

  def keep_going(carry):
    _, _, _, res_sq, step = carry
    return (step < stop_step) & (res_sq > tol_sq) & (res_sq < blowup_sq)

  def one_step(carry):
    # The outputs of the current w ride in the carry: each step reads the (n, m)
    # pre-activations three times (outputs, weighted mask, nothing else) instead of five.
    w, pre_activation, outputs, _, step = carry
    # dL/dw_r = a_r / sqrt(m) sum_i (u_i - y_i) 1{w_r.x_i >= 0} x_i, all r at once.
    weighted = (outputs - y)[:, None] * (pre_activation >= 0) * (signs * scale)[None, :]
    w = w - eta * (x.T @ weighted)
    pre_activation, outputs = _outputs(w, signs, x)
    return w, pre_activation, outputs, residual_sq(outputs), step + 1

  pre_activation, outputs = _outputs(w, signs, x)
  carry = (w, pre_activation, outputs, residual_sq(outputs), start_step)
  w, _, _, res_sq, step = jax.lax.while_loop(keep_going, one_step, carry)
  return w, res_sq, step


# Neurons per block of `_descend_blocks`: a (n, 2048) float64 block of pre-activations
# (3.3 MB at n = 200) stays in cache between its two matmuls, which are still big enough
# for XLA to run on every core. Measured at m = 65536 on the idle 2-core machine (with
# three matmuls a block, before the mask was kept): 8.5-10.3 steps/s with blocks of 2048
# or 4096, 6.7 with 256 (one core per matmul), 7.0-7.5 for the full width; keeping the
# mask: 9.8-12.0 against 8.3-9.9 in one A/B.
NEURON_BLOCK = 2048


# XLA:CPU hands matmuls, and by default also elementwise ops and reductions, to the
# YNNPACK library. For this loop only its matmuls pay: as a YNNPACK fusion the
# per-block output sum materialised two (n, block) broadcasts and ran slower than XLA's
# own loop. m = 65536, 2-core EPYC, three in-process A/Bs: 16.0-19.7 steps/s by
# default, 21.8-27.0 with matmuls only (NumPy: 10.5).
_CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


@functools.partial(jax.jit, static_argnames="block", compiler_options=_CPU_COMPILER_OPTIONS)
def _descend_blocks(w, signs, x, y, eta, stop_step, start_step, tol_sq, blowup_sq, *,
                    block=NEURON_BLOCK):
  """`_descend_full`, one block of neurons at a time (the same steps, to rounding).

  A GD step is separable over neurons given the current outputs: each block's gradient
  needs only its own pre-activations and the residual u - y, and the new outputs are a
  sum over blocks. Taking the blocks in turn keeps the (n, m) pre-activations out of
  memory: at m = 65536 the full form reads and writes 105 MB arrays several times a step
  and is bound by memory, not by its matmuls (the NumPy peer is too). Each block's
  pre-activations after its update give its outputs and, kept as the (n, block) ReLU mask
  (bytes, not float64), the next step's gradient: two matmuls per block and step.
  """
  d, m = w.shape
  n_blocks = -(-m // block)
  pad = n_blocks * block - m
  # Padding neurons have a = 0: no output and no gradient, so they stay where they are.
  w_b = jnp.pad(w, ((0, 0), (0, pad))).reshape(d, n_blocks, block).transpose(1, 0, 2)
  a_b = (jnp.pad(signs, (0, pad)) / jnp.sqrt(m)).reshape(n_blocks, block)

  def block_forward(w_i, a_i):
    pre = x @ w_i
    return jnp.sum(jax.nn.relu(pre) * a_i, axis=1), pre >= 0

  def keep_going(carry):
    _, _, _, res_sq, step = carry
    return (step < stop_step) & (res_sq > tol_sq) & (res_sq < blowup_sq)

  def one_step(carry):
    w_b, active_b, u, _, step = carry
    residual = u - y

    def update_block(i, c):
      w_b, active_b, u_new = c
      w_i = w_b[i] - eta * (x.T @ (residual[:, None] * active_b[i] * a_b[i][None, :]))
      u_i, active_i = block_forward(w_i, a_b[i])
      return w_b.at[i].set(w_i), active_b.at[i].set(active_i), u_new + u_i

    w_b, active_b, u = jax.lax.fori_loop(0, n_blocks, update_block,
                                         (w_b, active_b, jnp.zeros_like(y)))
    return w_b, active_b, u, jnp.sum((u - y) ** 2), step + 1

  def init_block(i, c):
    active_b, u = c
    u_i, active_i = block_forward(w_b[i], a_b[i])
    return active_b.at[i].set(active_i), u + u_i

  active_b, u = jax.lax.fori_loop(
      0, n_blocks, init_block,
      (jnp.zeros((n_blocks, x.shape[0], block), jnp.bool_), jnp.zeros_like(y)))
  w_b, _, _, res_sq, step = jax.lax.while_loop(
      keep_going, one_step, (w_b, active_b, u, jnp.sum((u - y) ** 2), start_step))
  return w_b.transpose(1, 0, 2).reshape(d, n_blocks * block)[:, :m], res_sq, step


def _descend(*args):
  """GD steps: by neuron blocks on CPU (memory-bound there), the whole width at once on
  accelerators (a sequential block loop would idle them)."""
  if jax.default_backend() == "cpu":
    return _descend_blocks(*args)
  return _descend_full(*args)


def log_record_steps(max_steps: int, per_decade: int = 8) -> np.ndarray:
  """Returns 0 and about `per_decade` log-spaced step counts per decade up to max_steps."""
  if max_steps <= 0:
    return np.array([0])
  grid = np.unique(np.round(np.logspace(0, math.log10(max_steps),
                                        1 + int(per_decade * math.log10(max_steps) + 1))))
  return np.concatenate([[0], grid.astype(np.int64)])


def outputs_at(network: Network, w: np.ndarray, x: np.ndarray) -> np.ndarray:
  """Returns u = f_W(X) for weights w, in float64."""
  with jax.enable_x64(True):
    return np.asarray(_forward(jnp.asarray(w), jnp.asarray(network.signs), jnp.asarray(x)))


def train(network: Network, w_start: np.ndarray, x: np.ndarray, y: np.ndarray, eta: float,
          tol: float, max_steps: int, record_steps: Sequence[int] | None = None) -> Trajectory:
  """Full-batch GD on W from `w_start` until ||u - y||_2 <= tol or `max_steps`.

  Args:
    network: supplies W(0) (for the distance record) and the signs a.
    w_start: starting weights (W(0) for pretraining and from-scratch, W(P) for fine-tuning).
    x: (n, d) inputs on the unit sphere.
    y: (n,) labels.
    eta: step size.
    tol: stop when the residual norm ||u - y||_2 reaches it.
    max_steps: step cap.
    record_steps: steps at which to record; default `log_record_steps(max_steps)`.

  Returns:
    The trajectory.

  Raises:
    DivergenceError: the residual became non-finite or grew by 1e6; the message suggests
      a step size.
  """
  if record_steps is None:
    record_steps = log_record_steps(max_steps)
  record_steps = sorted({int(s) for s in record_steps if 0 <= s <= max_steps} | {0})
  with jax.enable_x64(True):
    signs = jnp.asarray(network.signs)
    x_j = jnp.asarray(x, dtype=jnp.float64)
    y_j = jnp.asarray(y, dtype=jnp.float64)
    w = jnp.asarray(w_start, dtype=jnp.float64)
    w_init = jnp.asarray(network.w_init)
    start_res_sq = float(jnp.sum((_forward(w, signs, x_j) - y_j) ** 2))
    blowup_sq = _BLOWUP_FACTOR * max(start_res_sq, 1.0)
    tol_sq = tol**2
    steps, residuals, distances = [], [], []
    step, res_sq = 0, start_res_sq
    for target in record_steps + [max_steps]:
      if target > step:
        w, res_sq_j, step_j = _descend(w, signs, x_j, y_j, eta, target, step, tol_sq, blowup_sq)
        res_sq, step = float(res_sq_j), int(step_j)
      if not (math.isfinite(res_sq) and res_sq < blowup_sq):
        raise DivergenceError(
            f"gradient descent diverged at step {step} with eta={eta:.4g}: residual^2 "
            f"{res_sq:.3e} from {start_res_sq:.3e}. Use a smaller step, e.g. "
            f"eta = 1/lambda_max(H_inf) (the default) or half of the current one ({eta / 2:.4g}).")
      if not steps or steps[-1] != step:
        steps.append(step)
        residuals.append(res_sq)
        distances.append(float(jnp.max(jnp.linalg.norm(w - w_init, axis=0))))
      if res_sq <= tol_sq:
        break
    return Trajectory(steps=np.asarray(steps), residual_sq=np.asarray(residuals),
                      max_neuron_distance=np.asarray(distances), w_final=np.asarray(w),
                      num_steps=step, converged=res_sq <= tol_sq, eta=float(eta))


def activation_gram(w_left: np.ndarray, x_left: np.ndarray, w_right: np.ndarray,
                    x_right: np.ndarray) -> np.ndarray:
  """Returns Z_left^T Z_right = (x_i.x_j) (1/m) sum_r 1{w_left_r.x_i >= 0} 1{w_right_r.x_j >= 0}.

  With w_left = W(0) on P and w_right = W(P) on Q this is H_PQ(P) of Lemma 3 (a_r^2 = 1).
  """
  with jax.enable_x64(True):
    active_left = (jnp.asarray(x_left) @ jnp.asarray(w_left) >= 0).astype(jnp.float64)
    active_right = (jnp.asarray(x_right) @ jnp.asarray(w_right) >= 0).astype(jnp.float64)
    both = active_left @ active_right.T / w_left.shape[1]
    return np.asarray(both) * (np.asarray(x_left) @ np.asarray(x_right).T)
