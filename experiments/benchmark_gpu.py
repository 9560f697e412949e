r"""Every benchmark at the paper's size in one command, into one JSON (for an accelerator).

    python -m experiments.benchmark_gpu --output=runs/benchmark_gpu.json
    python -m experiments.benchmark_gpu --smoke --output=/tmp/benchmark_gpu.json   # CPU, tiny

Runs, each as its own process (their absl flags overlap) with a JSON into a temporary
folder, then merges them with the device description:
- benchmark_train: ResNet-50 at 224 px (and LeNet) training images/s, against the float32
  matmul ceiling measured in the same process;
- benchmark_analysis: the 51 x 51 LeNet landscape, top-20 Hessian eigenvalues and a
  per-layer spectrum; then the paper's 200 x 200 landscape (landscape only matters there);
- benchmark_theory: float64 GD widths 2^10 .. 2^18.
The PyTorch peers are CPU tools, so on an accelerator they are off (--peers to force them).
`--smoke` shrinks every size so the whole script runs on a CPU in about a minute (the test
runs it); the numbers it writes are then only a check that everything runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from transjax import cli

_FLAGS = cli.BinaryFlags(lambda: dict(
    output=flags.DEFINE_string("output", "runs/benchmark_gpu.json", "Where to write the JSON."),
    smoke=flags.DEFINE_bool("smoke", False, "Tiny sizes: checks the script runs (CPU, ~1 min)."),
    peers=flags.DEFINE_bool("peers", False, "Also time the PyTorch CPU peers."),
    data_dir=flags.DEFINE_string("data_dir", None, "MNIST folder for the analysis benchmark."),
    train_batch_size=flags.DEFINE_integer("train_batch_size", 128,
                                          "ResNet-50 training batch size.")))

PAPER = {
    "train": ["--models=resnet50:224:3,lenet:28:1", "--steps=30", "--matmul_size=8192"],
    # Lite0's section is the CPU comparison with PyTorch's Lite0 (benchmark_analysis --lite0).
    "analysis_51": ["--resolution=51", "--num_samples=256", "--top_k=20", "--layer=conv2",
                    "--nolite0"],
    "analysis_200": ["--resolution=200", "--num_samples=256", "--top_k=1", "--layer=",
                     "--nolite0"],
    "theory": ["--min_log2_m=10", "--max_log2_m=18", "--steps=50", "--numpy_steps=2",
               "--notime_quick_preset"],
}
SMOKE = {
    "train": ["--models=resnet_tiny:32:3,lenet:28:1", "--steps=2", "--matmul_size=256",
              "--batch_size=8"],
    "analysis_51": ["--resolution=3", "--num_samples=8", "--top_k=2", "--layer=fc", "--nolite0",
                    "--train_steps=5"],
    "theory": ["--min_log2_m=6", "--max_log2_m=7", "--steps=2", "--numpy_steps=1",
               "--dim=5", "--num_samples=10", "--notime_quick_preset"],
}
MODULES = {"train": "benchmark_train", "analysis_51": "benchmark_analysis",
           "analysis_200": "benchmark_analysis", "theory": "benchmark_theory"}


def device_description() -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  d = jax.devices()[0]
  return {"backend": jax.default_backend(), "device_count": jax.device_count(),
          "device_kind": getattr(d, "device_kind", str(d)), "jax": jax.__version__,
          "load_average": os.getloadavg()}


def run_all(output: str, smoke: bool, peers: bool, data_dir: str | None,
            train_batch: int) -> dict:
  plan = SMOKE if smoke else PAPER
  out = {"smoke": smoke, "device": device_description(), "benchmarks": {}}
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with tempfile.TemporaryDirectory() as tmp:
    for name, args in plan.items():
      path = os.path.join(tmp, name + ".json")
      cmd = [sys.executable, "-m", f"experiments.{MODULES[name]}", f"--output={path}", *args]
      if name == "train" and not smoke:
        cmd.append(f"--batch_size={train_batch}")
      if name != "theory":
        cmd.append("--peers" if peers else "--nopeers")
      if name.startswith("analysis") and data_dir:
        cmd.append(f"--data_dir={data_dir}")
      start = time.perf_counter()
      proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
      entry = {"command": " ".join(cmd[1:]), "returncode": proc.returncode,
               "wall_s": time.perf_counter() - start, "stdout": proc.stdout[-4000:]}
      if proc.returncode == 0 and os.path.exists(path):
        with open(path) as fh:
          entry["result"] = json.load(fh)
      else:
        entry["stderr"] = proc.stderr[-4000:]
      out["benchmarks"][name] = entry
      print(f"{name}: rc {proc.returncode}, {entry['wall_s']:.0f} s")
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, "w") as fh:
    json.dump(out, fh, indent=1)
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  out = run_all(_FLAGS.output, _FLAGS.smoke, _FLAGS.peers, _FLAGS.data_dir,
                _FLAGS.train_batch_size)
  failed = [n for n, e in out["benchmarks"].items() if e["returncode"] != 0]
  print(f"-> {_FLAGS.output}" + (f"; failed: {', '.join(failed)}" if failed else ""))
  if failed:
    sys.exit(1)


if __name__ == "__main__":
  _FLAGS.define()
  app.run(lambda argv: cli.run_or_exit(main, argv), flags_parser=cli.parse_flags)
