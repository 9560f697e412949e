r"""Bring your own model, loss and data: the instruments on a Flax NNX CNN of one's own.

    python -m experiments.example_own_model --data_dir=../shared/data

The model is a plain `nnx.Module` called as `model(x)`: three convolutions with
GroupNorm, no `train` or `taps` keyword (transjax passes those only where a model has
them). The batch is an `(images, labels)` pair. It is trained for `--train_steps` SGD
steps with plain optax, then measured twice, through the two ways a model of one's own
reaches the instruments (docs/own_model.md):

1. `functional.make_loss_fn(graphdef)`: transjax's cross-entropy around the model;
2. `functional.loss_from(loss)`: any `loss(params, batch) -> scalar` of one's own.

Both must give the same top-k Hessian eigenvalues (Lanczos), Hutchinson trace and
filter-normalised 2-D landscape; the binary stops with an error if they differ, prints
the numbers and writes them to `--output`. `--ops_conv` builds the convolutions as
`transjax.ops.Conv` (the CPU formulations, `nnx.Conv`'s arguments) instead of `nnx.Conv`.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags
from flax import nnx

from transjax import cli, functional, ops, results
from transjax.analysis import hessian, landscape

_FLAGS = cli.BinaryFlags(lambda: dict(
    data_dir=flags.DEFINE_string("data_dir", None, "Folder holding mnist/ (default: "
                                 "$TRANSJAX_DATA_DIR, then ../shared/data beside the "
                                 "repository)."),
    num_samples=flags.DEFINE_integer("num_samples", 256, "MNIST test images the instruments "
                                     "measure on."),
    train_steps=flags.DEFINE_integer("train_steps", 100, "SGD steps (batch 64, lr 0.05) on "
                                     "MNIST's training images before measuring."),
    top_k=flags.DEFINE_integer("top_k", 3, "Number of top Hessian eigenvalues."),
    trace_probes=flags.DEFINE_integer("trace_probes", 20, "Hutchinson probes of the trace."),
    resolution=flags.DEFINE_integer("resolution", 11, "Landscape grid side."),
    ops_conv=flags.DEFINE_bool("ops_conv", True, "Build the convolutions as transjax.ops.Conv "
                               "(CPU formulations) instead of nnx.Conv."),
    output=flags.DEFINE_string("output", "runs/example_own_model.json",
                               "Where to write the JSON.")))

# The two losses are the same function computed in the same order, up to XLA's fusion
# choices: float32 rounding, far below any real difference.
AGREE_RTOL = 1e-3


class OwnCNN(nnx.Module):
  """A CNN of one's own: three 3x3 convolutions with GroupNorm, global average pooling and
  a linear head, called as `model(x)` on (B, H, W, C) images."""

  def __init__(self, num_classes: int = 10, *, in_channels: int = 1, ops_conv: bool = True,
               rngs: nnx.Rngs):
    conv = ops.Conv if ops_conv else nnx.Conv
    self.conv1 = conv(in_channels, 8, (3, 3), rngs=rngs)
    self.norm1 = nnx.GroupNorm(8, num_groups=2, rngs=rngs)
    self.conv2 = conv(8, 16, (3, 3), strides=(2, 2), rngs=rngs)
    self.norm2 = nnx.GroupNorm(16, num_groups=4, rngs=rngs)
    self.conv3 = conv(16, 16, (3, 3), strides=(2, 2), rngs=rngs)
    self.head = nnx.Linear(16, num_classes, rngs=rngs)

  def __call__(self, x):
    x = jax.nn.relu(self.norm1(self.conv1(x)))
    x = jax.nn.relu(self.norm2(self.conv2(x)))
    x = jax.nn.relu(self.conv3(x))
    return self.head(x.mean(axis=(1, 2)))


def mnist_pair(split: str, n: int, data_dir: str | None) -> tuple[jax.Array, jax.Array]:
  """The first n MNIST images of a split on the [0, 1] scale, as an (images, labels) pair."""
  from transjax import data  # pylint: disable=import-outside-toplevel
  from transjax.data import transforms  # pylint: disable=import-outside-toplevel
  ds = data.load("mnist", split, data_dir=data.find_data_dir(data_dir))
  return (jnp.asarray(transforms.to_unit_float(ds.images[:n]), jnp.float32),
          jnp.asarray(ds.labels[:n]))


def run(*, data_dir: str | None, num_samples: int, train_steps: int, top_k: int,
        trace_probes: int, resolution: int, ops_conv: bool) -> dict:
  """Trains the CNN briefly and measures it through both losses (module docstring)."""
  model = OwnCNN(ops_conv=ops_conv, rngs=nnx.Rngs(0))
  graphdef, params, state = functional.split(model)   # state: empty (GroupNorm keeps none)

  def my_loss(params, batch):   # a loss of one's own: plain params and a batch mapping
    logits = nnx.merge(graphdef, params, state, copy=True)(batch["image"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()

  x_train, y_train = mnist_pair("train", max(train_steps, 1) * 64, data_dir)
  tx = optax.sgd(0.05, momentum=0.9)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y):
    loss, grads = jax.value_and_grad(my_loss)(params, {"image": x, "label": y})
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  loss = jnp.nan
  for i in range(train_steps):
    sl = slice(i * 64, (i + 1) * 64)
    params, opt_state, loss = step(params, opt_state, x_train[sl], y_train[sl])

  batch = mnist_pair("test", num_samples, data_dir)   # an (images, labels) pair
  out = {"model": "OwnCNN (3 convs, GroupNorm)", "conv": "ops.Conv" if ops_conv else "nnx.Conv",
         "num_params": int(sum(np.size(p) for p in jax.tree.leaves(params))),
         "train_steps": train_steps, "final_train_loss": float(loss), "num_samples": num_samples}
  losses = {"make_loss_fn": functional.make_loss_fn(graphdef),
            "loss_from": functional.loss_from(my_loss)}
  for name, loss_fn in losses.items():
    t = time.perf_counter()
    op = hessian.HessianOperator(loss_fn, params, state, batch)
    eig = hessian.lanczos_top_k(op, top_k, tol=1e-4)
    trace = hessian.hutchinson_trace(op, trace_probes)
    land = landscape.landscape_2d(loss_fn, params, state, batch, resolution=resolution,
                                  eta=0.05)
    out[name] = {"eigenvalues": eig.eigenvalues.tolist(), "converged": eig.converged,
                 "hvps": eig.hvp_count, "trace": float(trace.trace),
                 "landscape_center": float(land.center_loss),
                 "landscape_min": float(np.nanmin(land.losses)),
                 "landscape_max": float(np.nanmax(land.losses)),
                 "seconds": time.perf_counter() - t}
  a, b = out["make_loss_fn"], out["loss_from"]
  for key in ("eigenvalues", "trace", "landscape_min", "landscape_max"):
    if not np.allclose(a[key], b[key], rtol=AGREE_RTOL):
      raise RuntimeError(f"the two losses disagree on {key}: {a[key]} against {b[key]}.")
  out["agree"] = True
  return out


def main(argv):
  del argv
  cli.setup_logging()
  out = run(**{name: value for name, value in _FLAGS.values().items() if name != "output"})
  print(f"{out['model']}, {out['num_params']} parameters ({out['conv']}), trained "
        f"{out['train_steps']} steps (loss {out['final_train_loss']:.3f}), "
        f"{out['num_samples']} MNIST test images as an (images, labels) pair:")
  for name in ("make_loss_fn", "loss_from"):
    r = out[name]
    print(f"  {name:13s} top-{len(r['eigenvalues'])} {np.round(r['eigenvalues'], 4).tolist()} "
          f"({r['hvps']} HVPs), trace {r['trace']:.3f}, landscape "
          f"{r['landscape_min']:.3f}..{r['landscape_max']:.3f}, {r['seconds']:.1f} s")
  print("  the two losses agree.")
  output = _FLAGS.output
  results.write_json(output, out)
  print(f"-> {output}")


if __name__ == "__main__":
  _FLAGS.define()
  app.run(lambda argv: cli.run_or_exit(main, argv), flags_parser=cli.parse_flags)
