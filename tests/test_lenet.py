"""LeNet's CPU formulations (pooling by strided slices with the reshaped max's derivative,
the convolutions' im2col / lax tangents) compute the textbook network: reduce_window max
pooling and `lax.conv_general_dilated`, in value, gradient, HVP and per-example
gradients (float64, so any difference is a real one)."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from transjax import functional
from transjax.models import build_model
from transjax.ops import relu_max_pool_2x2

DN = ("NHWC", "HWIO", "NHWC")


def _reference_pool(x):
  return lax.reduce_window(jax.nn.relu(x), -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1),
                           "VALID")


def _reference_lenet(p, x):
  """The same LeNet as plain lax: the parameters of `build_model("lenet")`."""
  def conv(h, layer, pad):
    return lax.conv_general_dilated(h, layer["kernel"], (1, 1), pad,
                                    dimension_numbers=DN) + layer["bias"]
  h = _reference_pool(conv(x, p["conv1"], ((2, 2), (2, 2))))
  h = _reference_pool(conv(h, p["conv2"], ((0, 0), (0, 0))))
  h = h.reshape(h.shape[0], -1)
  for name in ("fc1", "fc2"):
    h = jax.nn.relu(h @ p[name]["kernel"] + p[name]["bias"])
  return h @ p["fc"]["kernel"] + p["fc"]["bias"]


def _close(got, want):
  jax.tree.map(lambda g, e: np.testing.assert_allclose(np.asarray(g), np.asarray(e),
                                                       rtol=1e-10, atol=1e-10), got, want)


def test_pool_matches_reduce_window_under_every_transformation():
  with jax.enable_x64(True):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 9, 8, 4)))  # odd rows cropped
    t = 0.5 * x[::-1]
    f = lambda a: jnp.sum(jnp.sin(relu_max_pool_2x2(a)))
    g = lambda a: jnp.sum(jnp.sin(_reference_pool(a)))
    _close(relu_max_pool_2x2(x), _reference_pool(x))
    _close(jax.grad(f)(x), jax.grad(g)(x))
    _close(jax.jvp(jax.grad(f), (x,), (t,))[1], jax.jvp(jax.grad(g), (x,), (t,))[1])
    _close(jax.vmap(jax.grad(f))(jnp.stack([x, -x])), jax.vmap(jax.grad(g))(jnp.stack([x, -x])))


def test_lenet_gradient_hvp_and_per_example_grads_match_plain_lax():
  with jax.enable_x64(True):
    model = build_model("lenet", 10, in_channels=1, input_size=28)
    graphdef, params, state = functional.split(model)
    apply = functional.make_apply_fn(graphdef)
    p = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), nnx.to_pure_dict(params))
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(4, 28, 28, 1)))
    y = jnp.asarray(rng.integers(0, 10, 4))

    def loss(apply):
      def f(q, images=x, labels=y):
        logits = apply(q, images)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits),
                                             labels[:, None], axis=1))
      return f

    def ours(q, images):
      leaves = jax.tree.leaves(q)  # the pure dict, back into the model's State
      return apply(jax.tree.unflatten(jax.tree.structure(params), leaves), state, images,
                   False)[0]

    ours_loss, ref_loss = loss(ours), loss(_reference_lenet)
    _close(ours_loss(p), ref_loss(p))
    _close(jax.grad(ours_loss)(p), jax.grad(ref_loss)(p))
    v = jax.tree.map(lambda a: 0.1 * jnp.cos(a), p)
    _close(jax.jvp(jax.grad(ours_loss), (p,), (v,))[1],
           jax.jvp(jax.grad(ref_loss), (p,), (v,))[1])
    per_example = lambda f: jax.vmap(lambda a, b: jax.grad(f)(p, a[None], b[None]))(x, y)
    _close(per_example(ours_loss), per_example(ref_loss))
