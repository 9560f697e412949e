"""Gradient measurements: loss variation along the gradient (Fig 6, 11), gradient
statistics of a layer (Fig 7 a-c) and the gradient scale per layer (Fig 7 d).

All losses use train=False in the BatchNorm mode `bn_mode` (`transjax.analysis.batchnorm`;
"batch", the loss SGD sees, is the paper's analogue; "running", the default, is the
behaviour before the mode existed), so they are deterministic functions of the parameters.

Variation along the gradient (Appendix A): at theta take g = grad L(theta) and evaluate
L_k = L(theta - k s g), k = 0..K (K = 100). Two protocols:
  "gradient": s = lr, so each step moves lr * ||g|| (proportional to the gradient);
  "fixed":    s = step_length / ||g||, so each step moves exactly step_length.
Reported: max_change = max_k L_k - min_k L_k, max_abs_change = max_k |L_k - L_0|,
max_rise = max_k (L_k - min_{j <= k} L_j), the largest climb along the path (0 for a
monotone descent, which max_change counts as variation), descent = L_0 - min_k L_k, and
(Santurkar et al. 2018) gradient predictiveness ||grad L(theta - s g) - g|| and effective
beta-smoothness max_k ||grad L(theta - k s g) - g|| / ||k s g||.
"""

from __future__ import annotations

import functools

from collections.abc import Mapping
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from transjax import params as params_lib
from transjax.analysis import batchnorm
from transjax.analysis.subset import partition, resolve_mask, restricted_loss
from transjax.models.taps import TapRecorder

PROTOCOLS = ("gradient", "fixed")


def _tree_norm(tree) -> jax.Array:
  return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def loss_gradient(loss_fn: Callable, params: Any, state: Any, batch: Mapping[str, Any],
                  mask: Any = None, bn_mode: str = "running"
                  ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """(loss, gradient on the masked leaves as {path: array}), train=False in `bn_mode`."""
  loss_fn, state = batchnorm.prepare(loss_fn, params, state, batch, bn_mode)
  sub = partition(params, mask)
  return _value_and_grad_fn(loss_fn)(sub, params, state, batch)


# The weights and the batch are arguments of the compiled functions, never captured by them:
# a closed-over array becomes a constant of the program (ResNet-50's weights are 100 MB, the
# paper's 256-image batch at 224x224 150 MB), compiled into it on every call.


@functools.lru_cache(maxsize=32)
def _value_and_grad_fn(loss_fn):
  def run(sub, params, state, batch):
    return jax.value_and_grad(restricted_loss(loss_fn, params, state, batch))(sub)
  return jax.jit(run)


@functools.lru_cache(maxsize=32)
def _taps_grad_fn(loss_fn):
  def run(taps, params, state, batch):
    return jax.grad(lambda t: loss_fn(params, state, {**batch, "taps": t}, False)[0])(taps)
  return jax.jit(run)


@functools.lru_cache(maxsize=32)
def _variation_fn(loss_fn, num_steps: int, protocols: tuple[str, ...], with_gradients: bool):
  """One compiled path evaluation per (loss_fn, settings): a training callback that
  measures every few steps must not recompile each time. All protocols share one gradient."""

  def run(sub, params, state, batch, scales):
    f = restricted_loss(loss_fn, params, state, batch)
    loss0, g = jax.value_and_grad(f)(sub)
    gnorm = _tree_norm(g)
    steps = jnp.stack([scale if p == "gradient" else scale / jnp.maximum(gnorm, 1e-30)
                       for p, scale in zip(protocols, scales)])

    def at(c):
      moved = jax.tree.map(lambda w, gi: w - c.astype(w.dtype) * gi, sub, g)
      if not with_gradients:
        return f(moved), jnp.zeros((), loss0.dtype)
      loss_k, g_k = jax.value_and_grad(f)(moved)
      return loss_k, _tree_norm(jax.tree.map(jnp.subtract, g_k, g))

    ks = jnp.arange(1, num_steps + 1, dtype=loss0.dtype)
    coeffs = (steps[:, None] * ks[None, :]).reshape(-1)
    losses, diffs = jax.lax.map(at, coeffs)
    shape = (len(protocols), num_steps)
    return loss0, losses.reshape(shape), diffs.reshape(shape), gnorm, steps

  return jax.jit(run)


def max_rise(path: np.ndarray) -> float:
  """max_k (L_k - min_{j <= k} L_j) over the finite losses of a path: how far the loss climbs
  back up after its lowest point so far (0 for a monotone descent); NaN without any."""
  losses = np.asarray(path, np.float64)
  losses = losses[np.isfinite(losses)]
  if not len(losses):
    return float("nan")
  return float(np.max(losses - np.minimum.accumulate(losses)))


def _check_protocols(protocols) -> tuple[str, ...]:
  protocols = (protocols,) if isinstance(protocols, str) else tuple(protocols)
  bad = [p for p in protocols if p not in PROTOCOLS]
  if bad or not protocols:
    raise ValueError(f"protocols must be among {PROTOCOLS}, got {protocols!r}.")
  return protocols


def gradient_variations(loss_fn: Callable, params: Any, state: Any, batch: Mapping[str, Any],
                        *, protocols: str | tuple[str, ...] = PROTOCOLS, lr: float = 0.01,
                        step_length: float = 0.01, num_steps: int = 100, mask: Any = None,
                        with_gradients: bool = True,
                        bn_mode: str = "running") -> dict[str, dict[str, Any]]:
  """`gradient_variation` for several protocols from one gradient: {protocol: result}."""
  protocols = _check_protocols(protocols)
  loss_fn, state = batchnorm.prepare(loss_fn, params, state, batch, bn_mode)
  sub = partition(params, mask)
  dtype = jax.tree.leaves(sub)[0].dtype
  scales = jnp.asarray([lr if p == "gradient" else step_length for p in protocols], dtype)
  fn = _variation_fn(loss_fn, num_steps, protocols, with_gradients)
  loss0, losses, diffs, gnorm, steps = jax.device_get(fn(sub, params, state, batch, scales))
  out = {}
  for i, protocol in enumerate(protocols):
    path = np.concatenate([[float(loss0)], np.asarray(losses[i], np.float64)])
    finite = np.isfinite(path)
    path = np.where(finite, path, np.nan)
    res = {"protocol": protocol, "losses": path.tolist(), "num_nonfinite": int((~finite).sum()),
           "max_change": float(np.nanmax(path) - np.nanmin(path)) if finite.any() else np.nan,
           "max_abs_change": float(np.nanmax(np.abs(path - path[0]))) if finite[1:].any()
                             and finite[0] else np.nan,
           "max_rise": max_rise(path), "descent": float(path[0] - np.nanmin(path))
                       if finite[0] else np.nan,
           "grad_norm": float(gnorm), "step": float(steps[i])}
    if with_gradients:
      d = np.asarray(diffs[i], np.float64)
      moved = np.arange(1, num_steps + 1) * float(steps[i]) * float(gnorm)
      res["grad_predictiveness"] = float(d[0])
      res["beta_smoothness"] = float(np.nanmax(d / np.maximum(moved, 1e-30)))
    out[protocol] = res
  return out


def gradient_variation(loss_fn: Callable, params: Any, state: Any, batch: Mapping[str, Any], *,
                       protocol: str = "gradient", lr: float = 0.01, step_length: float = 0.01,
                       num_steps: int = 100, mask: Any = None,
                       with_gradients: bool = True, bn_mode: str = "running") -> dict[str, Any]:
  """Loss (and gradient) along theta - k s g, k = 0..num_steps (see the module docstring).

  Args:
    protocol: "gradient" (s = lr) or "fixed" (s = step_length / ||g||).
    mask: restrict theta and g to these parameters (None: all).
    with_gradients: also compute gradient predictiveness and beta-smoothness (one
      gradient per step instead of one loss).
    bn_mode: "batch", "recalibrated" or "running" (`transjax.analysis.batchnorm`).

  Returns:
    dict with "losses" (num_steps + 1 floats, L_0 first; NaN where not finite),
    "num_nonfinite", "max_change", "max_abs_change", "max_rise", "descent" (over the
    finite losses),
    "grad_norm", "step" (s), and with gradients "grad_predictiveness", "beta_smoothness".
  """
  if not isinstance(protocol, str):
    raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
  return gradient_variations(loss_fn, params, state, batch, protocols=protocol, lr=lr,
                             step_length=step_length, num_steps=num_steps, mask=mask,
                             with_gradients=with_gradients, bn_mode=bn_mode)[protocol]


class GradientVariationCallback:
  """Training callback: `gradient_variations` at step 1 and every `every_n_steps` steps.

  A `transjax.train.StepCallback`: the trainer calls `cb(step, params, state)` where
  `cb.should_run(step)` and logs the record it returns.
  The loss function is given here or bound later with `bind(loss_fn)` (the trainer builds
  the model). Output keys, per protocol: f"{prefix}{protocol}/max_change", ".../max_abs_change",
  ".../max_rise", ".../descent", ".../grad_norm", and with gradients
  ".../grad_predictiveness", ".../beta_smoothness";
  and f"{prefix}loss", the loss at the current parameters.
  """

  KEYS = ("max_change", "max_abs_change", "max_rise", "descent", "grad_norm",
          "grad_predictiveness", "beta_smoothness")

  def __init__(self, every_n_steps: int, batch: Mapping[str, Any],
               protocols: str | tuple[str, ...] = "gradient", *,
               loss_fn: Callable | None = None, lr: float = 0.01, step_length: float = 0.01,
               num_steps: int = 100, mask: Any = None, with_gradients: bool = True,
               prefix: str = "gradvar_", bn_mode: str = "running"):
    if every_n_steps < 1:
      raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}.")
    self.protocols = _check_protocols(protocols)
    self.every_n_steps, self.batch = every_n_steps, batch
    self.loss_fn, self.lr, self.step_length = loss_fn, lr, step_length
    self.num_steps, self.mask, self.with_gradients = num_steps, mask, with_gradients
    self.prefix = prefix
    self.bn_mode = batchnorm.check_mode(bn_mode)

  def bind(self, loss_fn: Callable) -> "GradientVariationCallback":
    self.loss_fn = loss_fn
    return self

  def should_run(self, step: int) -> bool:
    return int(step) == 1 or int(step) % self.every_n_steps == 0

  def __call__(self, step: int, params: Any, state: Any) -> dict[str, float]:
    del step
    if self.loss_fn is None:
      raise RuntimeError("GradientVariationCallback has no loss_fn: pass loss_fn= or bind().")
    out = gradient_variations(self.loss_fn, params, state, self.batch,
                              protocols=self.protocols, lr=self.lr,
                              step_length=self.step_length, num_steps=self.num_steps,
                              mask=self.mask, with_gradients=self.with_gradients,
                              bn_mode=self.bn_mode)
    metrics = {f"{self.prefix}{p}/{k}": res[k] for p, res in out.items()
               for k in self.KEYS if k in res}
    metrics[f"{self.prefix}loss"] = next(iter(out.values()))["losses"][0]
    return metrics


# --------------------------------------------------------------------------------------
# Fig 7: gradient statistics.


def kernel_path(params: Any, layer: str) -> str:
  """The path of `layer`'s kernel (UnknownLayerError lists valid layers)."""
  params_lib.mask_for(params, layer)
  name = params_lib.normalize_name(layer)
  path = name if name.endswith("/kernel") else name + "/kernel"
  paths = [p for p, _ in params_lib.named_leaves(params)]
  if path not in paths:
    raise params_lib.UnknownLayerError(
        f"Layer {layer!r} has no kernel. Layers with kernels: "
        + ", ".join(params_lib.weight_layer_names(params)))
  return path


def gradient_histogram(grads: Mapping[str, Any], path: str, bins: int = 100) -> dict[str, Any]:
  """Histogram of the gradient entries of one parameter (Fig 7a)."""
  values = np.asarray(grads[path], np.float64).ravel()
  counts, edges = np.histogram(values, bins=bins)
  return {"path": path, "counts": counts.tolist(), "edges": edges.tolist(),
          "mean_abs": float(np.mean(np.abs(values))), "max_abs": float(np.max(np.abs(values))),
          "std": float(np.std(values))}


def as_matrix(kernel: Any) -> np.ndarray:
  """A kernel as an out x in matrix: conv HWIO -> out x (in kh kw); dense (in, out) -> out x in."""
  k = np.asarray(kernel, np.float64)
  if k.ndim == 2:
    return k.T
  if k.ndim == 4:
    return np.transpose(k, (3, 2, 0, 1)).reshape(k.shape[3], -1)
  raise ValueError(f"Expected a dense (2-D) or conv HWIO (4-D) kernel, got shape {k.shape}.")


def gradient_svd_projection(grad_kernel: Any, weight_kernel: Any) -> dict[str, Any]:
  """SVD of a layer's gradient G = U S V^T and |u_i^T W v_i| per singular direction (Fig 7b,c).

  Both kernels are reshaped by `as_matrix` (out x in).
  """
  g, w = as_matrix(grad_kernel), as_matrix(weight_kernel)
  u, s, vt = np.linalg.svd(g, full_matrices=False)
  proj = np.abs(np.sum(u * (w @ vt.T), axis=0))
  return {"singular_values": s.tolist(), "projection": proj.tolist()}


def layer_gradient_scale(loss_fn: Callable, params: Any, state: Any,
                         batch: Mapping[str, Any], bn_mode: str = "running") -> dict[str, Any]:
  """||dL/dx_l||_F for the input x_l of every tapped layer, from the output layer down (Fig 7d).

  Uses the taps mechanism (transjax.models.taps): a TapRecorder under `jax.eval_shape`
  gives the shapes, then the gradient w.r.t. zero taps is the gradient w.r.t. each layer's
  input activations. train=False in `bn_mode`.
  """
  loss_fn, state = batchnorm.prepare(loss_fn, params, state, batch, bn_mode)
  recorder = TapRecorder()
  jax.eval_shape(lambda p: loss_fn(p, state, {**batch, "taps": recorder}, False)[0], params)
  if not recorder:
    raise ValueError("The model records no taps; it cannot report per-layer gradient scale.")
  zeros = {name: jnp.zeros(sd.shape, sd.dtype) for name, sd in recorder.items()}
  grads = _taps_grad_fn(loss_fn)(zeros, params, state, batch)
  names = list(recorder)[::-1]
  return {"layers": names, "norms": [float(_tree_norm(grads[n])) for n in names]}


def gradient_stats(loss_fn: Callable, params: Any, state: Any, batch: Mapping[str, Any],
                   layer: str, *, bins: int = 100, bn_mode: str = "running") -> dict[str, Any]:
  """Fig 7 a-d for one layer: gradient histogram, SVD projection, per-layer scale."""
  path = kernel_path(params, layer)
  loss_fn, state = batchnorm.prepare(loss_fn, params, state, batch, bn_mode)
  loss, grads = loss_gradient(loss_fn, params, state, batch, resolve_mask(params, None))
  weights = dict(params_lib.named_leaves(params))
  return {"layer": layer, "loss": float(loss),
          "histogram": gradient_histogram(grads, path, bins),
          "svd": gradient_svd_projection(grads[path], weights[path]),
          "scale": layer_gradient_scale(loss_fn, params, state, batch)}
