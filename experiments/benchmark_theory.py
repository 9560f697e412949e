"""Benchmarks theory's float64 gradient descent: steps/s and peak memory against width m.

Compares the jitted JAX GD (theory.twolayer) with a plain NumPy GD step at the same m
(experiments.peers.numpy_gd_step: two matmuls and the ReLU mask), measured in the same run,
and times the quick preset of verify_theory. The defaults are the issue's workload
(n = 200, d = 50; the table's row is m = 65536). Goal: >= 2x NumPy. Prints a table and
writes JSON to --output.

Usage:
  python -m experiments.benchmark_theory --max_log2_m=15 --output=/tmp/bench_theory.json
"""

import os
import resource
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from theory import presets as theory_config
from theory import sweep, twolayer
from transjax import cli, results

_FLAGS = cli.BinaryFlags(lambda: dict(
    min_log2_m=flags.DEFINE_integer("min_log2_m", 10, "Smallest width, as log2 m."),
    max_log2_m=flags.DEFINE_integer("max_log2_m", 16, "Largest width, as log2 m (<= 17 fits "
                                    "in memory with the defaults)."),
    dim=flags.DEFINE_integer("dim", 50, "Input dimension d of the benchmark problem."),
    num_samples=flags.DEFINE_integer("num_samples", 200, "Number of training points n."),
    steps=flags.DEFINE_integer("steps", 50, "GD steps timed per width and round (after a "
                               "warm-up)."),
    numpy_steps=flags.DEFINE_integer("numpy_steps", 5, "Numpy baseline steps timed per width "
                                     "and round."),
    rounds=flags.DEFINE_integer("rounds", 3, "Interleaved timing rounds per width (JAX, then "
                                "NumPy); the best of each is reported."),
    time_quick_preset=flags.DEFINE_bool("time_quick_preset", True, "Also time the quick "
                                        "preset end to end (into a fresh temporary workdir)."),
    output=flags.DEFINE_string("output", "runs/benchmark_theory.json",
                               "Where to write the JSON.")))


def _peak_rss_bytes() -> int:
  # ru_maxrss is in KiB on Linux; it is the process high-water mark so far.
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _numpy_step(w, signs, x, y, eta):
  from experiments import peers  # pylint: disable=import-outside-toplevel
  return peers.numpy_gd_step(w, signs, x, y, eta)


def _bench_width(width: int, x: np.ndarray, y: np.ndarray) -> dict:
  """Both GD loops timed in `--rounds` interleaved rounds (JAX `--steps`, NumPy
  `--numpy_steps` steps each), so both see the same machine; the best round of each."""
  network = twolayer.init_network(0, width, x.shape[1], 0.02)
  # tol = 0 so GD runs exactly the requested number of steps.
  twolayer.train(network, network.w_init, x, y, 0.1, 0.0, 2, record_steps=[2])  # compile
  w = _numpy_step(network.w_init.copy(), network.signs, x, y, 0.1)  # first-touch of the buffers
  jax_rates, numpy_rates = [], []
  for _ in range(_FLAGS.rounds):
    start = time.perf_counter()
    twolayer.train(network, network.w_init, x, y, 0.1, 0.0, _FLAGS.steps,
                   record_steps=[_FLAGS.steps])
    jax_rates.append(_FLAGS.steps / (time.perf_counter() - start))
    start = time.perf_counter()
    for _ in range(_FLAGS.numpy_steps):
      w = _numpy_step(w, network.signs, x, y, 0.1)
    numpy_rates.append(_FLAGS.numpy_steps / (time.perf_counter() - start))
  jax_rate, numpy_rate = max(jax_rates), max(numpy_rates)
  return {"m": width, "jax_steps_per_s": jax_rate, "numpy_steps_per_s": numpy_rate,
          "speedup": jax_rate / numpy_rate, "rounds": {"jax": jax_rates, "numpy": numpy_rates},
          "peak_rss_gib": _peak_rss_bytes() / 2**30,
          "estimated_gib": twolayer.estimate_bytes(width, x.shape[1], x.shape[0]) / 2**30}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  rng = np.random.default_rng(0)
  x = rng.standard_normal((_FLAGS.num_samples, _FLAGS.dim))
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  y = np.tanh(2 * x[:, 0])
  rows = []
  for log2_width in range(_FLAGS.min_log2_m, _FLAGS.max_log2_m + 1):
    rows.append(_bench_width(2**log2_width, x, y))
    logging.info("m=2^%d done: %.1f steps/s", log2_width, rows[-1]["jax_steps_per_s"])
  print(f"GD on n={_FLAGS.num_samples}, d={_FLAGS.dim}, float64")
  print(f"{'m':>8} {'jax steps/s':>12} {'numpy steps/s':>14} {'speedup':>8} "
        f"{'peak RSS GiB':>13} {'estimate GiB':>13}")
  for row in rows:
    print(f"{row['m']:>8} {row['jax_steps_per_s']:>12.1f} {row['numpy_steps_per_s']:>14.1f} "
          f"{row['speedup']:>8.2f} {row['peak_rss_gib']:>13.3f} {row['estimated_gib']:>13.3f}")
  result = {"n": _FLAGS.num_samples, "d": _FLAGS.dim, "widths": rows}
  if _FLAGS.time_quick_preset:
    with tempfile.TemporaryDirectory() as workdir:
      start = time.perf_counter()
      sweep.run(theory_config.get_config("quick"), workdir)
      result["quick_preset_wall_s"] = time.perf_counter() - start
    print(f"quick preset wall time: {result['quick_preset_wall_s']:.1f} s")
  os.makedirs(os.path.dirname(os.path.abspath(_FLAGS.output)), exist_ok=True)
  results.write_json(_FLAGS.output, {**result, **results.run_metadata()})
  print(f"wrote {_FLAGS.output}")


if __name__ == "__main__":
  _FLAGS.define()
  app.run(lambda argv: cli.run_or_exit(main, argv), flags_parser=cli.parse_flags)
