"""transjax.ops.BatchNorm and the depthwise convolution's kernel tangent: the values and
derivatives of nnx.BatchNorm and lax's grouped convolution (float64, so any difference is
a real one) under gradients, forward-over-reverse HVPs, vmap and per-example gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from transjax import ops
from transjax.ops import batchnorm
from transjax.ops.conv import depthwise_conv

TOL = 1e-10


def _close(a, b, tol=TOL):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


def _models(channels=5):
  """(flax, ops) BatchNorm with the same random scale, bias and running statistics."""
  rng = np.random.default_rng(0)
  values = {"scale": rng.normal(size=channels), "bias": rng.normal(size=channels),
            "mean": rng.normal(size=channels), "var": rng.uniform(0.5, 2.0, size=channels)}
  out = []
  for cls in (nnx.BatchNorm, ops.BatchNorm):
    bn = cls(channels, momentum=0.9, epsilon=1e-3, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    for name, v in values.items():
      getattr(bn, name).set_value(jnp.asarray(v, jnp.float64))
    out.append(nnx.split(bn, nnx.Param, ...))
  return out


def _loss(graphdef, state, train):
  def loss(params, x):
    bn = nnx.merge(graphdef, params, state, copy=True)
    y = bn(x, use_running_average=not train)
    return jnp.sum(jnp.sin(y) * jnp.arange(y.size).reshape(y.shape) / y.size), (
        nnx.state(bn, nnx.BatchStat))
  return loss


@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_matches_flax(train):
  with jax.enable_x64(True):
    (g0, p0, s0), (g1, p1, s1) = _models()
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 4, 4, 5)) * 2 + 1)
    ref, new = _loss(g0, s0, train), _loss(g1, s1, train)
    (v0, st0), (v1, st1) = ref(p0, x), new(p1, x)
    _close(v0, v1)
    _close(st0, st1)  # the running statistics' update
    grad = lambda f, p: jax.grad(lambda p, x: f(p, x)[0], (0, 1))(p, x)
    _close(grad(ref, p0), grad(new, p1))
    # Forward-over-reverse HVP in the parameters and in the input.
    tp = jax.tree.map(lambda a: jnp.cos(jnp.arange(a.size, dtype=a.dtype)).reshape(a.shape), p0)
    hvp = lambda f, p: jax.jvp(lambda p, x: jax.grad(lambda p, x: f(p, x)[0], (0, 1))(p, x),
                               (p, x), (tp, jnp.cos(x)))[1]
    _close(hvp(ref, p0), hvp(new, p1))
    # Per-example gradients (vmap of grad over single examples) and vmap over batches.
    per_example = lambda f, p: jax.vmap(
        jax.grad(lambda p, xi: f(p, xi[None])[0]), (None, 0))(p, x)
    _close(per_example(ref, p0), per_example(new, p1))
    batched = lambda f, p: jax.vmap(lambda xb: f(p, xb)[0])(jnp.stack([x, 2 * x]))
    _close(batched(ref, p0), batched(new, p1))


def test_batchnorm_switch_off_is_flax():
  with jax.enable_x64(True):
    (_, _, _), (g1, p1, s1) = _models()
    with ops.cpu_kernels(False):
      text = jax.jit(lambda p, x: _loss(g1, s1, True)(p, x)[0]).lower(
          p1, jnp.ones((2, 3, 3, 5), jnp.float64)).as_text()
  assert "dot_general" not in text


def test_rows_sum_and_broadcast_are_matmuls():
  x = jnp.arange(12.0).reshape(4, 3)
  np.testing.assert_allclose(batchnorm.rows_sum(x), x.sum(0))
  np.testing.assert_allclose(batchnorm.rows_broadcast(jnp.arange(3.0), 4),
                             jnp.broadcast_to(jnp.arange(3.0), (4, 3)))
  _, pullback = jax.vjp(lambda v: batchnorm.rows_broadcast(v, 4), jnp.arange(3.0))
  np.testing.assert_allclose(pullback(x)[0], x.sum(0))
  text = jax.jit(jax.grad(lambda v: jnp.sum(jnp.sin(batchnorm.rows_broadcast(v, 4))))).lower(
      jnp.arange(3.0)).as_text()
  assert "dot_general" in text


@pytest.mark.parametrize("stride,padding", [((1, 1), ((2, 2), (2, 2))),
                                            ((2, 2), ((1, 2), (2, 1)))])
def test_depthwise_kernel_tangent(stride, padding):
  """The custom_jvp's kernel term (a rank-1 matmul broadcast of the taps): jvp in the
  kernel alone, gradients, HVPs and per-example kernel gradients equal lax's."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(3, 9, 8, 4)))
    w = jnp.asarray(rng.normal(size=(5, 5, 1, 4)))
    ref = lambda x, w: lax.conv_general_dilated(x, w, stride, padding, dimension_numbers=(
        "NHWC", "HWIO", "NHWC"), feature_group_count=4)
    new = lambda x, w: depthwise_conv(x, w, stride, padding)
    _close(ref(x, w), new(x, w))
    _close(jax.jvp(lambda w: ref(x, w), (w,), (jnp.cos(w),)),
           jax.jvp(lambda w: new(x, w), (w,), (jnp.cos(w),)))
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))
    _close(jax.grad(loss(ref), (0, 1))(x, w), jax.grad(loss(new), (0, 1))(x, w))
    hvp = lambda f: jax.jvp(jax.grad(loss(f), (0, 1)), (x, w), (jnp.cos(x), jnp.cos(w)))[1]
    _close(hvp(ref), hvp(new))
    per_example = lambda f: jax.vmap(jax.grad(lambda w, xi: loss(f)(xi[None], w)),
                                     (None, 0))(w, x)
    _close(per_example(ref), per_example(new))


def test_depthwise_input_cotangent_is_materialised_once():
  """The input path's tangent goes through `ops.conv.materialised`: XLA keeps the
  conditional in the compiled gradient (else the cotangent's producer is fused into each
  of the k*k shifted terms), and a NaN kernel gives NaN, not a wrong finite gradient."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(2, 8, 8, 4)).astype(np.float32))
  w = jnp.asarray(rng.normal(size=(3, 3, 1, 4)).astype(np.float32))
  loss = lambda x, w: jnp.sum(jnp.tanh(depthwise_conv(jnp.tanh(x), w, (1, 1),
                                                      ((1, 1), (1, 1)))) ** 2)
  grad = jax.jit(jax.grad(loss, (0, 1)))
  assert "conditional(" in grad.lower(x, w).compile().as_text()
  assert np.all(np.isfinite(np.asarray(grad(x, w)[0])))
  assert np.all(np.isnan(np.asarray(grad(x, w.at[0, 0, 0, 0].set(jnp.nan))[0])))
