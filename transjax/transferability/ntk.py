"""Theory score (b): the paper's deviation and generalisation forms on the empirical NTK of
the last layers of the pretrained network, not only on its features.

The infinite-width ReLU kernel of `theory_score` treats the features as the input of a fresh
two-layer network. The network being fine-tuned has its own tangent kernel: with f(theta; x)
its outputs and theta the parameters of the layers fine-tuning moves most (the head, or
the last blocks plus the head), K = J J^T with J = d f / d theta on the target sample. In
the linearised (NTK) regime, fitting the residual R moves theta by sqrt(R^T K^-1 R): Theorem
2's deviation for this network. Multi-output: K_ij = 1/C sum_c <d f_c(x_i), d f_c(x_j)>, the
kernel per output, averaged (for a linear head it is exactly x_i.x_j + 1 for every output).
Regularisation, labels and y_P->Q: as in `theory_score`.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from transjax import functional
from transjax import params as params_lib
from transjax.analysis.similarity import KERNEL_RIDGE
from transjax.transferability import theory_score

ApplyFn = Callable[[Any, jax.Array], jax.Array]


def model_apply_fn(graphdef: Any, params: Any, state: Any,
                   layers: Any) -> tuple[ApplyFn, list[jax.Array]]:
  """A transjax model as (apply_fn, params_subset) for `empirical_ntk`: the last layers free.

  apply_fn(subset, images) runs the whole model in evaluation mode (BatchNorm's stored
  statistics, so the kernel is a function of the parameters alone) with the parameters of
  `layers` taken from `subset` and every other parameter fixed at `params`.

  Args:
    graphdef: the model's graph (`functional.split`).
    params: all its parameters.
    state: its BatchNorm statistics.
    layers: layer names (`params.mask_for`), e.g. "head" or ["fc2", "head"].

  Returns:
    (apply_fn, the list of the selected parameter arrays).
  """
  apply = functional.make_apply_fn(graphdef)
  leaves, treedef = jax.tree.flatten(params)
  chosen = jax.tree.leaves(params_lib.mask_for(params, layers))
  subset = [leaf for leaf, keep in zip(leaves, chosen) if keep]

  def apply_fn(sub, images):
    it = iter(sub)
    full = [next(it) if keep else leaf for leaf, keep in zip(leaves, chosen)]
    logits, _ = apply(jax.tree.unflatten(treedef, full), state, images, False)
    return logits

  return apply_fn, subset


def jacobian_rows(apply_fn: ApplyFn, params: Any, inputs: jax.Array) -> jax.Array:
  """(B, C * P) Jacobian of each sample's C outputs with respect to every parameter.

  Args:
    apply_fn: apply_fn(params, inputs (B, ...)) -> outputs (B, C) (or (B,) for one output).
    params: pytree of the parameters to differentiate (the rest closed over by apply_fn).
    inputs: (B, ...) inputs.

  Returns:
    (B, C * P) float64 rows, P the number of parameters.
  """

  def one(p, x):
    out = apply_fn(p, x[None])
    return jnp.reshape(out, (-1,))

  jac = jax.vmap(jax.jacrev(one), in_axes=(None, 0))(params, inputs)
  leaves = jax.tree.leaves(jac)
  b = inputs.shape[0]
  c = leaves[0].shape[1]
  return jnp.concatenate([jnp.reshape(leaf, (b, c, -1)) for leaf in leaves],
                         axis=2).reshape(b, -1).astype(jnp.float64)


JACOBIAN_BUDGET_BYTES = 1 << 30   # the Jacobian rows held at once


def empirical_ntk(apply_fn: ApplyFn, params: Any, inputs: Any, *, batch_size: int = 256,
                  budget_bytes: int = JACOBIAN_BUDGET_BYTES) -> np.ndarray:
  """K_ij = 1/C sum_c <d f_c(x_i)/d params, d f_c(x_j)/d params>: the empirical NTK, (N, N).

  Jacobians are taken with jax.jacrev per sample (vmapped), in the parameters' own dtype,
  as many samples at a time as `batch_size` and `budget_bytes` allow (one sample's Jacobian
  is C x P numbers); the products accumulate in float64.

  Args:
    apply_fn: apply_fn(params, inputs) -> (B, C) outputs (logits) or (B,).
    params: the parameters of the last layers (a pytree).
    inputs: (N, ...) what apply_fn reads (images, or penultimate features for a head).
    batch_size: at most this many samples per Jacobian batch.
    budget_bytes: memory for the Jacobian rows of one batch.

  Returns:
    (N, N) float64 kernel.

  Raises:
    ValueError: one sample's Jacobian alone exceeds the budget (fewer or smaller layers,
      or a head with fewer outputs, fit).
  """
  with jax.enable_x64(True):
    inputs = jnp.asarray(inputs)
    outputs = int(np.prod(jax.eval_shape(apply_fn, params, inputs[:1]).shape))
    num_params = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params))
    per_sample = outputs * num_params * 8
    if per_sample > budget_bytes:
      raise ValueError(f"one sample's Jacobian is {outputs} outputs x {num_params} parameters "
                       f"= {per_sample / 2**30:.1f} GiB, over the {budget_bytes / 2**30:.1f} GiB "
                       "budget: choose fewer or smaller layers.")
    step = max(1, min(batch_size, budget_bytes // per_sample))
    rows = jnp.concatenate([jacobian_rows(apply_fn, params, inputs[i:i + step])
                            for i in range(0, inputs.shape[0], step)])
    return np.asarray(rows @ rows.T / outputs)


def ntk_deviation(apply_fn: ApplyFn, params: Any, inputs: Any, labels: Any,
                  source_probs: Any | None = None, *, ridge: float = KERNEL_RIDGE) -> float:
  """Theory score (b), deviation form: -sqrt(R^T (K + lam I)^-1 R), K the empirical NTK of
  `params` on the target sample (module docstring; R, lam as in `theory_score`).

  Higher = better transfer. In the network's own weight units (Theorem 2's ||W - W(0)||), so
  it is comparable across candidates whose `params` are the corresponding layers.

  Args:
    apply_fn: apply_fn(params, inputs) -> (B, C) outputs.
    params: the last layers' parameters.
    inputs: (N, ...) target inputs for apply_fn.
    labels: (N,) integer target labels.
    source_probs: (N, C_s) the pretrained network's softmax on the target sample (maps its
      prediction to the target classes as LEEP does), or None.
    ridge: relative ridge.

  Returns:
    The score.
  """
  kernel = empirical_ntk(apply_fn, params, inputs)
  return theory_score.deviation_score(kernel, labels, source_probs, ridge=ridge)


def ntk_generalisation(apply_fn: ApplyFn, params: Any, inputs: Any, labels: Any,
                       source_probs: Any | None = None, *,
                       ridge: float = KERNEL_RIDGE) -> float:
  """Theory score (b), generalisation form: -sqrt(2 R^T (K + lam I)^-1 R / n) on the
  empirical NTK (`ntk_deviation`'s arguments).

  Args:
    apply_fn: apply_fn(params, inputs) -> (B, C) outputs.
    params: the last layers' parameters.
    inputs: (N, ...) target inputs for apply_fn.
    labels: (N,) integer target labels.
    source_probs: (N, C_s) the pretrained network's softmax, or None.
    ridge: relative ridge.

  Returns:
    The score.
  """
  kernel = empirical_ntk(apply_fn, params, inputs)
  return theory_score.generalisation_score(kernel, labels, source_probs, ridge=ridge)
