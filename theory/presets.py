"""Config of experiments/verify_theory.py: `--config=configs/theory.py:<preset>`.

Presets: `smoke` (seconds; tests and end-to-end reproduce job), `quick` (CPU, under
5 minutes on 2 cores), `full` (larger n and m, meant for a GPU or a long CPU run).
"""

import ml_collections


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
  """Returns the preset named by `arg` (smoke, quick or full)."""
  if arg not in ("smoke", "quick", "full"):
    raise ValueError(f"unknown theory preset {arg!r}; choose smoke, quick or full.")
  config = ml_collections.ConfigDict()
  config.preset = arg
  # Width sweep (log2 m) and seeds of W(0), a for the main synthetic task.
  config.log2_widths = (8, 10, 12, 14, 16)
  config.seeds = (0, 1, 2)
  # W(0) ~ N(0, kappa^2 I). u(0) = O(kappa) biases the predictions, while pattern changes
  # shrink like 1 / (kappa sqrt(m)); 0.02 keeps both small over m = 2^8 .. 2^17.
  config.kappa = 0.02
  config.eta = 0.0  # <= 0: 1 / lambda_max(H_inf) of the set being trained on.
  config.tol = 1e-3  # Stop when ||u - y||_2 <= tol ("converged").
  config.max_steps = 20000
  config.strict_inputs = False  # True: refuse off-sphere inputs instead of normalising.
  config.memory_limit_gib = 8.0  # Refuse widths whose estimated peak memory exceeds it.
  config.relative_tolerance = 0.1  # Equality checks "hold" below this relative error.
  config.rank_threshold = 0.7  # Similarity ordering "holds" at Spearman rho >= this.

  config.synthetic = ml_collections.ConfigDict({
      "seed": 0, "dim": 10, "n_source": 30, "n_target": 30, "spread": 0.5,
      "sharpness": 3.0, "angle_deg": 22.5, "label_mix": 0.75})
  config.similarity = ml_collections.ConfigDict({
      "angles_deg": (0.0, 90.0, 180.0), "label_mixes": (1.0, 0.5, 0.0),
      "log2_width": 14, "seeds": (0, 1)})
  config.real = ml_collections.ConfigDict({
      "kinds": ("digits_relabel",), "seed": 0, "dim": 20, "n_source": 40, "n_target": 40,
      "log2_widths": (10, 12, 14), "seeds": (0, 1),
      "data_dir": ""})  # "" -> env TRANSJAX_DATA_DIR (only the MNIST/USPS kinds need it).

  if arg == "smoke":
    config.log2_widths = (6, 8, 10)
    config.seeds = (0,)
    config.max_steps = 3000
    config.synthetic.n_source = config.synthetic.n_target = 12
    config.synthetic.dim = 6
    config.similarity.angles_deg = (0.0, 180.0)
    config.similarity.label_mixes = (1.0, 0.0)
    config.similarity.log2_width = 8
    config.similarity.seeds = (0,)
    config.real.n_source = config.real.n_target = 12
    config.real.dim = 8
    config.real.log2_widths = (8,)
    config.real.seeds = (0,)
  elif arg == "full":
    config.log2_widths = (8, 9, 10, 11, 12, 13, 14, 15, 16, 17)
    config.seeds = (0, 1, 2, 3, 4)
    config.max_steps = 200000
    config.memory_limit_gib = 64.0
    config.synthetic.dim = 50
    config.synthetic.n_source = config.synthetic.n_target = 200
    config.similarity.angles_deg = (0.0, 45.0, 90.0, 135.0, 180.0)
    config.similarity.label_mixes = (1.0, 0.75, 0.5, 0.25, 0.0)
    config.similarity.log2_width = 16
    config.similarity.seeds = (0, 1, 2)
    config.real.kinds = ("digits_same", "digits_relabel", "mnist_usps", "mnist_fashion")
    config.real.dim = 50
    config.real.n_source = config.real.n_target = 200
    config.real.log2_widths = (10, 12, 14, 16)
    config.real.seeds = (0, 1, 2)
  return config
