r"""Training throughput of LeNet, a tiny ResNet and EfficientNet-Lite0, against the
machine's matmul ceiling.

    python -m experiments.benchmark_train --output=runs/benchmark_train.json

For each model: images/s of the jit-compiled training step (the one `transjax.train`
uses), its compile time, its FLOPs per step from XLA's cost analysis, and the achieved
FLOP/s as a fraction of a large float32 matmul's FLOP/s measured in the same run (the
practical ceiling of this machine). For LeNet and EfficientNet-Lite0 the same step in
PyTorch (the same weights and BatchNorm statistics copied into an `nn.Module`, train
mode, SGD with momentum and coupled weight decay, the same random batch; at the faster of
1 and 2 threads) is timed in the same run when torch is installed (`--peers`), the two
steps taking turns in `--rounds` rounds, and the ratio of the best rounds recorded;
without torch the peer is recorded as not measured. Prints a table and writes JSON.

EfficientNet-Lite0 runs at 64 px batch 32 (the `imagenet` preset's size: its total stride
of 32 leaves a 2x2 final feature map) and 96 px batch 64 (3x3; a CIFAR-10 linear probe:
0.66 at 96 px, 0.56 at 64 px); a step there costs a fifth of the native 224 px one or less.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags

from transjax import cli, functional, optim, results, train
from transjax.config import training_defaults
from transjax.models import build_model

_FLAGS = cli.BinaryFlags(lambda: dict(
    output=flags.DEFINE_string("output", "runs/benchmark_train.json",
                               "Where to write the JSON."),
    batch_size=flags.DEFINE_integer("batch_size", 64, "Training batch size of a model given "
                                    "without one."),
    steps=flags.DEFINE_integer("steps", 30, "Timed steps per model and round (after 3 warm-up "
                               "steps)."),
    rounds=flags.DEFINE_integer("rounds", 5, "Timing rounds; in each, transjax's and "
                                "PyTorch's steps take turns. The best round of each is "
                                "reported."),
    matmul_size=flags.DEFINE_integer("matmul_size", 2048, "Side of the square matmul "
                                     "baseline."),
    models=flags.DEFINE_list("models", ["lenet:28:1", "resnet_tiny:32:3",
                                        "efficientnet_lite0:64:3:32",
                                        "efficientnet_lite0:96:3:64"],
                             "Models as name:input_size:channels[:batch_size] (resnet18/"
                             "resnet50 work too; without a batch size, --batch_size)."),
    peers=flags.DEFINE_bool("peers", True, "Time PyTorch's LeNet and EfficientNet-Lite0 steps "
                            "too (needs torch).")))
TORCH_PEERS = ("lenet", "efficientnet_lite0")


def _time(fn, repeats: int) -> float:
  """Best-of-3 mean seconds per call of `fn` (which must block)."""
  return min(_rounds({"fn": fn}, repeats, 3)["fn"])


def _rounds(fns: dict, repeats: int, rounds: int) -> dict[str, list[float]]:
  """Mean seconds per call of each of `fns` (which must block) in `rounds` rounds, the
  functions taking turns within each round, so all see the same machine."""
  out = {name: [] for name in fns}
  for _ in range(rounds):
    for name, fn in fns.items():
      t = time.perf_counter()
      for _ in range(repeats):
        fn()
      out[name].append((time.perf_counter() - t) / repeats)
  return out


def matmul_flops_per_s(n: int) -> float:
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  mm = jax.jit(lambda x: x @ x)
  mm(a).block_until_ready()
  return 2 * n**3 / _time(lambda: mm(a).block_until_ready(), 5)


def compiled_step(name: str, size: int, channels: int, batch_size: int):
  """(one, flops, compile seconds, (params, state, batch)): a blocking call of transjax's
  compiled training step on one random batch (warmed up), its FLOPs per step from XLA's
  cost analysis, and the weights and batch it starts from (for the peer)."""
  model = build_model(name, 10, in_channels=channels, input_size=size)
  graphdef, params, state = functional.split(model)
  config: ml_collections.ConfigDict = training_defaults()
  tx = optim.make_optimizer(config, 1000, jax.tree.map(lambda _: True, params))
  step = train.jit_train_step(train.make_train_step(functional.make_loss_fn(graphdef), tx,
                                                   jax.tree.map(lambda _: True, state)))
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.normal(size=(batch_size, size, size, channels)), jnp.float32),
           "label": jnp.asarray(rng.integers(0, 10, batch_size), jnp.int32)}
  ts = {"step": jnp.zeros((), jnp.int32), "params": params, "state": state,
        "opt_state": tx.init(params), "nonfinite_step": jnp.full((), -1, jnp.int32)}
  start = time.perf_counter()
  compiled = step.lower(ts, batch).compile()
  compile_s = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", 0.0)) if cost else 0.0
  start_weights = jax.tree.map(np.array, (params, state))  # before the donated steps
  holder = {"ts": ts}
  for _ in range(3):
    holder["ts"], m = compiled(holder["ts"], batch)
  jax.block_until_ready(m)

  def one():
    holder["ts"], metrics = compiled(holder["ts"], batch)
    jax.block_until_ready(metrics)

  return one, flops, compile_s, (*start_weights, batch)


def torch_peer_step(name: str, size: int, channels: int, start, steps: int):
  """(PyTorch's step of the same model from the same weights, or None; what the JSON
  records of the peer)."""
  if not _FLAGS.peers:
    return None, {"measured": False, "reason": "--nopeers"}
  import importlib.util  # pylint: disable=import-outside-toplevel
  if importlib.util.find_spec("torch") is None:
    return None, {"measured": False, "peer": "PyTorch", "reason": "torch is not installed"}
  from experiments import peers  # pylint: disable=import-outside-toplevel
  params, state, batch = start
  if name == "lenet":
    model = peers.lenet_from_transjax(params, size, channels)
  else:
    model = peers.torch_efficientnet_from_transjax(params, state)
  x, y = peers.torch_batch(batch)
  o = training_defaults().optim
  step, threads = peers.torch_train_step(model, x, y, o.lr, o.momentum, o.weight_decay,
                                         trial_steps=steps)
  import torch  # pylint: disable=import-outside-toplevel
  return step, {"measured": True, "threads": threads, "torch": torch.__version__}


def step_throughput(name: str, size: int, channels: int, batch_size: int, steps: int) -> dict:
  """transjax's step, and for the TORCH_PEERS PyTorch's, timed in `--rounds` interleaved
  rounds of `steps` steps; the best round of each."""
  one, flops, compile_s, start = compiled_step(name, size, channels, batch_size)
  fns = {"transjax": one}
  torch_step, torch_row = (torch_peer_step(name, size, channels, start, steps)
                           if name in TORCH_PEERS else (None, None))
  if torch_step is not None:
    fns["torch"] = torch_step
  times = _rounds(fns, steps, _FLAGS.rounds)
  seconds = min(times["transjax"])
  row = {"model": name, "input": f"{size}x{size}x{channels}", "batch_size": batch_size,
         "step_ms": 1e3 * seconds, "images_per_s": batch_size / seconds,
         "compile_s": compile_s,
         "flops_per_step": flops, "flops_per_s": flops / seconds,
         "rounds_ms": [1e3 * t for t in times["transjax"]]}
  if torch_row is not None:
    if torch_step is not None:
      best = min(times["torch"])
      torch_row.update(step_ms=1e3 * best, images_per_s=batch_size / best,
                       rounds_ms=[1e3 * t for t in times["torch"]])
    row["torch"] = torch_row
    row["ratio_vs_torch"] = (row["images_per_s"] / torch_row["images_per_s"]
                             if torch_row.get("measured") else None)
  return row


def main(argv):
  del argv
  cli.setup_logging()
  ceiling = matmul_flops_per_s(_FLAGS.matmul_size)
  rows = []
  for spec in _FLAGS.models:
    parts = spec.split(":")
    if len(parts) not in (3, 4):
      raise ValueError(f"--models entry {spec!r} is not name:input_size:channels[:batch_size].")
    name, size, channels = parts[0], int(parts[1]), int(parts[2])
    batch_size = int(parts[3]) if len(parts) == 4 else _FLAGS.batch_size
    row = step_throughput(name, size, channels, batch_size, _FLAGS.steps)
    row["fraction_of_matmul"] = row["flops_per_s"] / ceiling
    rows.append(row)
  for r in rows:
    if "torch" in r:
      t = r["torch"]
      print(f"{r['model']} {r['input']} batch {r['batch_size']}: PyTorch " + (f"{t['images_per_s']:.0f} images/s ({t['threads']} threads)"
            f" -> transjax/PyTorch {r['ratio_vs_torch']:.2f}x (goal >= 1x)" if t.get("measured")
            else f"not measured ({t['reason']})"))
  print(f"matmul {_FLAGS.matmul_size}^2 float32 baseline: {ceiling / 1e9:.1f} GFLOP/s "
        f"on {jax.devices()[0].platform} x{jax.device_count()}")
  print(f"{'model':<20}{'input':<10}{'batch':>6}{'compile s':>10}{'ms/step':>10}{'images/s':>11}"
        f"{'GFLOP/step':>12}{'GFLOP/s':>10}{'of matmul':>11}")
  for r in rows:
    print(f"{r['model']:<20}{r['input']:<10}{r['batch_size']:>6}{r['compile_s']:>10.1f}"
          f"{r['step_ms']:>10.2f}"
          f"{r['images_per_s']:>11.0f}{r['flops_per_step'] / 1e9:>12.3f}"
          f"{r['flops_per_s'] / 1e9:>10.2f}{100 * r['fraction_of_matmul']:>10.1f}%")
  out = {"matmul_size": _FLAGS.matmul_size, "matmul_flops_per_s": ceiling, "models": rows,
         **results.run_metadata()}
  import os  # pylint: disable=import-outside-toplevel
  os.makedirs(os.path.dirname(os.path.abspath(_FLAGS.output)), exist_ok=True)
  results.write_json(_FLAGS.output, out)
  print(f"-> {_FLAGS.output}")


if __name__ == "__main__":
  _FLAGS.define()
  app.run(lambda argv: cli.run_or_exit(main, argv), flags_parser=cli.parse_flags)
