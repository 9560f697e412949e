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

from transjax.analysis.similarity import KERNEL_RIDGE
from transjax.transferability import theory_score

ApplyFn = Callable[[Any, jax.Array], jax.Array]


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


def empirical_ntk(apply_fn: ApplyFn, params: Any, inputs: Any, *,
                  batch_size: int = 256) -> np.ndarray:
  """K_ij = 1/C sum_c <d f_c(x_i)/d params, d f_c(x_j)/d params>: the empirical NTK, (N, N).

  Jacobians are taken with jax.jacrev per sample (vmapped), `batch_size` samples at a time,
  in the parameters' own dtype; the products accumulate in float64.

  Args:
    apply_fn: apply_fn(params, inputs) -> (B, C) outputs (logits) or (B,).
    params: the parameters of the last layers (a pytree).
    inputs: (N, ...) what apply_fn reads (images, or penultimate features for a head).
    batch_size: samples per Jacobian batch.

  Returns:
    (N, N) float64 kernel.
  """
  with jax.enable_x64(True):
    inputs = jnp.asarray(inputs)
    rows = jnp.concatenate([jacobian_rows(apply_fn, params, inputs[i:i + batch_size])
                            for i in range(0, inputs.shape[0], batch_size)])
    outputs = jnp.reshape(apply_fn(params, inputs[:1]), (-1,)).shape[0]
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
