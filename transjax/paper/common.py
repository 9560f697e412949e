"""What the paper experiments share: claims with computed verdicts, shared source runs.

A `Claim` pairs a statement of the paper (and its numbers) with ours and the sub-checks
(`Check`) of the parts its sentence states; its verdict is computed from the checks, which
the experiment's `claims()` function computes from our numbers, never written in. The
comparison helpers (`greater`, `less`, `similar`, `compare`) apply one rule against seed
noise, `NOISE_RULE`, which the REPORT prints.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import shutil
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from transjax import results as results_lib
from transjax import train
from transjax import train_callbacks

REPRODUCED = "reproduced"
PARTLY = "partly reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, INCONCLUSIVE)

ALPHA = 0.05
POWER = 0.8   # the power at which a Welch check states its detectable difference
NOISE_RULE = (
    "Noise rule: where a check compares conditions measured over seeds, a difference counts "
    f"only when a one-sided Welch t-test over the seeds gives p < {ALPHA} "
    "(scipy.stats.ttest_ind, equal_var=False); \"~\" (the paper's \"similar\", \"barely\") "
    f"holds when the two-sided Welch test gives p ≥ {ALPHA}, and \"no improvement\" holds "
    "unless the improvement is significant, so a tie within noise counts as \"~\" and as a "
    "failed \"greater than\". Zero spread in both groups: the means decide exactly. A single "
    "run on either side (n = 1), or a quantity measured once (eigenvalues, landscapes, "
    "gradients of one run, one pretraining curve): the values alone decide and the check "
    "says \"single run, no noise estimate\". Thresholds (e.g. train error ≤ 5%) apply to the "
    "mean over seeds. A rank correlation across targets must reach its threshold on the "
    "means and have the lower end of its one-sided 95% bootstrap interval over seeds "
    "(1000 resamples, fixed seed) above zero. Each Welch check also states the smallest "
    f"difference it could detect: the true difference its test would find with {POWER:.0%} "
    "power at its n if the standard deviations over seeds were the true ones, so a \"~\" "
    "or a failed \"greater than\" says little about smaller differences. ± is the "
    "standard deviation over seeds. "
    "A NaN or a missing number fails its check.")
SINGLE_RUN = "single run, no noise estimate"


@dataclasses.dataclass(frozen=True)
class Check:
  """One part of a claim's sentence, tested on our numbers."""
  name: str             # what the part says, e.g. "fine-tuning beats scratch on usps"
  passed: bool
  detail: str = ""      # the numbers that decided it: means ± std, n, p-value or "single run"

  def __post_init__(self):
    object.__setattr__(self, "passed", bool(self.passed))

  def to_dict(self) -> dict[str, Any]:
    return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclasses.dataclass(frozen=True)
class Claim:
  """One checked statement of the paper; its verdict is computed from its checks.

  `checks` are the parts the statement's sentence states (`Check`s); the verdict is
  `verdict_from_checks` over all of them. A claim that could not be checked (not run)
  carries one failing check that says so. `inconclusive` (e.g. "not at a minimum (random
  seed 0: training error 35% > 1%)"): the measurement cannot speak to the claim, so the
  verdict is INCONCLUSIVE whatever the checks give (they are still computed and shown).
  """
  element: str          # "Table 1", "Fig 8a", ...
  statement: str        # what the paper claims, in words
  paper: str            # the paper's numbers or description
  ours: str             # our numbers, formatted
  checks: tuple[Check, ...]
  why: str = ""         # e.g. "stand-in data (USPS for SVHN); LeNet instead of ResNet-50"
  verdict: str = ""     # computed from `checks` and `inconclusive`; never passed in
  inconclusive: str = ""  # why the checks cannot decide (the verdict is then INCONCLUSIVE)

  def __post_init__(self):
    if isinstance(self.checks, str):
      raise TypeError("Claim takes its checks (Check objects), not a verdict: verdicts are "
                      "computed from the checks.")
    checks = tuple(self.checks)
    if not checks or not all(isinstance(c, Check) for c in checks):
      raise ValueError(f"a Claim needs at least one Check, got {self.checks!r}")
    verdict = (INCONCLUSIVE if self.inconclusive
               else verdict_from_checks([c.passed for c in checks]))
    if self.verdict and self.verdict != verdict:
      raise ValueError(f"verdict {self.verdict!r} given, but the checks give {verdict!r}")
    object.__setattr__(self, "checks", checks)
    object.__setattr__(self, "verdict", verdict)

  def to_dict(self) -> dict[str, Any]:
    return {"element": self.element, "statement": self.statement, "paper": self.paper,
            "ours": self.ours, "verdict": self.verdict, "why": self.why,
            "inconclusive": self.inconclusive, "checks": [c.to_dict() for c in self.checks]}


def verdict_from_checks(checks: Sequence[bool]) -> str:
  """All checks hold: reproduced; some: partly; none: not reproduced."""
  checks = [bool(c) for c in checks]
  if checks and all(checks):
    return REPRODUCED
  if any(checks):
    return PARTLY
  return NOT_REPRODUCED


# ------------------------------------------------------------------ checks against noise


def _values(values: Any) -> np.ndarray:
  if values is None:
    return np.asarray([np.nan])
  return np.atleast_1d(np.asarray(values, dtype=np.float64)).ravel()


def welch_p(a: Any, b: Any, alternative: str) -> float | None:
  """p-value of Welch's t-test of a against b ("greater": mean a > mean b, "less",
  "two-sided"); None with fewer than 2 values on either side (no noise estimate).

  Zero spread in both groups makes the difference exact: p is 0 when the means differ in
  the tested direction and 1 otherwise (scipy would return NaN).
  """
  from scipy import stats  # pylint: disable=import-outside-toplevel
  a, b = _values(a), _values(b)
  if len(a) < 2 or len(b) < 2:
    return None
  if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
    return float("nan")
  if a.var() == 0 and b.var() == 0:
    d = a.mean() - b.mean()
    hit = {"greater": d > 0, "less": d < 0, "two-sided": d != 0}[alternative]
    return 0.0 if hit else 1.0
  return float(stats.ttest_ind(a, b, equal_var=False, alternative=alternative).pvalue)


def _read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
  for x in arrays:
    x.setflags(write=False)
  return arrays


# Above this many degrees of freedom every sample size shares one read-only pair of nodes.
_LARGE_DOF_NODES = _read_only(np.ones(1), np.ones(1))


def _variance_nodes(dof: int) -> tuple[np.ndarray, np.ndarray]:
  """Quadrature over a sample variance: nodes r = s^2 / sigma^2 ~ chi2(dof) / dof, weights."""
  if dof > 300:  # Gamma(dof/2) overflows in the weights; s^2 ~ sigma^2 to within ~8% here
    return _LARGE_DOF_NODES
  return _small_dof_nodes(int(dof))


# Cache lifetime: the nodes of each sample size are computed once per process and kept
# while it lives (a pure function of `dof`: at most the 300 sizes up to the cut above,
# 2 KB each); `_small_dof_nodes.cache_info()` shows them, `.cache_clear()` drops them. The
# arrays are read-only, as every caller shares them.
@functools.lru_cache(maxsize=300)
def _small_dof_nodes(dof: int) -> tuple[np.ndarray, np.ndarray]:
  from scipy import special  # pylint: disable=import-outside-toplevel
  u, w = special.roots_genlaguerre(128, dof / 2 - 1)  # chi2(dof) = 2 * Gamma(dof/2, 1)
  w = w / w.sum()
  keep = w > 1e-14  # the far tail's nodes carry nothing
  return _read_only(2 * u[keep] / dof, w[keep])


def detectable_difference(a: Any, b: Any, alternative: str,
                          power: float = POWER) -> float | None:
  """Smallest true difference of means the Welch test `welch_p(a, b, alternative)` (at
  ALPHA) would detect with probability `power`, taking a's and b's sample standard
  deviations (ddof=1) as the true ones; a magnitude in a's and b's units.

  For a true difference delta, with s_a, s_b, n_a, n_b the observed SDs and sizes and
  se = sqrt(s_a^2/n_a + s_b^2/n_b), the test's power is

    power(delta) = E[ Phi(delta/se - c) + (two-sided: Phi(-delta/se - c)) ],
    c = t_{1-alpha (/2 two-sided), df^}  *  se^/se,

  where se^ and df^ (Welch-Satterthwaite) are computed from sample variances
  s^_a^2 ~ s_a^2 chi2(n_a-1)/(n_a-1) and s^_b^2 likewise, as the test computes them, and
  E is over those two (Gauss-Laguerre quadrature, 128 nodes each); this returns the delta
  at which power(delta) = `power`. It tends to the textbook
  (t_{1-alpha(/2), df} + t_{power, df}) * se, with df from s_a and s_b, as n grows, but
  that one overstates the power at small n (at n = 2/2 and equal SDs its delta has 57%
  power one-sided, 44% two-sided; at 3/3, 75% and 68%) because the estimated df^ varies
  from sample to sample and is at most df.

  Returns None with fewer than 2 values on either side (no noise estimate), NaN when a
  value is not finite, and 0.0 when neither group has any spread (the means decide
  exactly, see `welch_p`).
  """
  from scipy import optimize, special  # pylint: disable=import-outside-toplevel
  a, b = _values(a), _values(b)
  if len(a) < 2 or len(b) < 2:
    return None
  if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
    return float("nan")
  va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)  # squared standard errors
  if va == 0 and vb == 0:
    return 0.0
  two_sided = {"greater": False, "less": False, "two-sided": True}[alternative]
  (ra, wa), (rb, wb) = _variance_nodes(len(a) - 1), _variance_nodes(len(b) - 1)
  va_hat, vb_hat = va * ra[:, None], vb * rb[None, :]
  weights = wa[:, None] * wb[None, :]
  df_hat = (va_hat + vb_hat)**2 / (va_hat**2 / (len(a) - 1) + vb_hat**2 / (len(b) - 1))
  se = np.sqrt(va + vb)
  c = (special.stdtrit(df_hat, 1 - ALPHA / 2 if two_sided else 1 - ALPHA)  # t quantile
       * np.sqrt(va_hat + vb_hat) / se)

  def shortfall(delta):  # power(delta * se) - power
    hit = special.ndtr(delta - c)  # the normal CDF
    if two_sided:
      hit = hit + special.ndtr(-delta - c)
    return float(np.sum(weights * hit)) - power

  high = 1.0
  while shortfall(high) < 0:
    high *= 2
  return float(optimize.brentq(shortfall, 0.0, high, xtol=1e-10) * se)


def _fmt(values: np.ndarray, scale: float, digits: int, unit: str) -> str:
  """`digits` decimals; numbers too small for them (e.g. 2e-4 at 4 decimals) in `digits`
  significant digits instead, so a small quantity never prints as 0.0000."""
  if len(values) == 0:
    return "(no values)"
  v = scale * values
  small = np.all(np.abs(v[np.isfinite(v)]) < 10.0 ** -(digits - 1)) and np.any(v != 0)
  f = (lambda x: f"{x:.{digits}g}") if small else (lambda x: f"{x:.{digits}f}")
  if len(values) == 1:
    return f"{f(v[0])}{unit}"
  return f"{f(v.mean())}±{f(v.std())}{unit}"


def _finite(*arrays) -> bool:
  return all(len(x) and np.all(np.isfinite(x)) for x in arrays)


RELATIONS = {  # relation -> (words, Welch alternative)
    ">": ("greater", "greater"), "<": ("less", "less"), "~": ("similar", "two-sided"),
    "not >": ("not greater", "greater"), "not <": ("not less", "less")}


def compare(name: str, a: Any, b: Any, relation: str, *, scale: float = 1.0, digits: int = 3,
            unit: str = "", what: str = "", tolerance: float = 0.0,
            margin: float = 0.0) -> Check:
  """Checks `a <relation> b` for two conditions measured over seeds (or once each).

  relation: ">" / "<" (a significantly greater / less than b), "~" (no significant
  difference, two-sided), "not >" / "not <" (no significant increase / decrease), by the
  rule in NOISE_RULE. With a single value on either side the values decide; `tolerance`
  is then the difference "~" allows (and "not >"/"not <" forgive). `what` prefixes the
  numbers in the detail (e.g. "accuracy"); `scale`, `digits`, `unit` format them.
  `margin` (">" and "<" only): a must exceed b by more than `margin` (a - margin is tested).
  """
  if relation not in RELATIONS:
    raise ValueError(f"relation must be one of {tuple(RELATIONS)}, got {relation!r}")
  if margin and relation not in (">", "<"):
    raise ValueError("margin applies to '>' and '<' only")
  a, b = _values(a), _values(b)
  numbers = (f"{what + ' ' if what else ''}{_fmt(a, scale, digits, unit)} vs "
             f"{_fmt(b, scale, digits, unit)}"
             + (f" (margin {scale * margin:g}{unit})" if margin else ""))
  if not _finite(a, b):
    return Check(name, False, f"{numbers}: a number is missing or not finite")
  a = a - margin if relation == ">" else a + margin
  alternative = RELATIONS[relation][1]
  p = welch_p(a, b, alternative)
  if p is None:
    d = float(a.mean() - b.mean())
    passed = {">": d > 0, "<": d < 0, "~": abs(d) <= tolerance, "not >": d <= tolerance,
              "not <": d >= -tolerance}[relation]
    tol = (f", tolerance {scale * tolerance:g}{unit}"
           if tolerance and relation not in (">", "<") else "")
    return Check(name, passed, f"{numbers} ({SINGLE_RUN}{tol})")
  if not np.isfinite(p):
    return Check(name, False, f"{numbers}: Welch test undefined (p={p})")
  significant = p < ALPHA
  passed = significant if relation in (">", "<") else not significant
  if a.var() == 0 and b.var() == 0:
    return Check(name, passed, f"{numbers}, no spread in either group (exact), "
                               f"n={len(a)}/{len(b)}")
  side = "two-sided" if alternative == "two-sided" else "one-sided"
  mde = detectable_difference(a, b, alternative)
  beyond = " beyond the margin" if margin else ""
  detectable = _fmt(np.asarray([mde]), scale, digits, unit)
  return Check(name, passed, f"{numbers}, Welch {side} p={p:.3g}, n={len(a)}/{len(b)}, "
                             f"detectable difference ≥ {detectable}{beyond} at {POWER:.0%} power")


def greater(name: str, a: Any, b: Any, **kw) -> Check:
  """a significantly greater than b (see `compare`)."""
  return compare(name, a, b, ">", **kw)


def less(name: str, a: Any, b: Any, **kw) -> Check:
  """a significantly less than b (see `compare`)."""
  return compare(name, a, b, "<", **kw)


def similar(name: str, a: Any, b: Any, **kw) -> Check:
  """a ~ b: no significant difference either way (see `compare`)."""
  return compare(name, a, b, "~", **kw)


def at_most(name: str, values: Any, threshold: float, *, scale: float = 1.0, digits: int = 3,
            unit: str = "", what: str = "") -> Check:
  """The mean over seeds is at most `threshold` (a threshold, not a comparison)."""
  v = _values(values)
  numbers = f"{what + ' ' if what else ''}{_fmt(v, scale, digits, unit)}"
  if not _finite(v):
    return Check(name, False, f"{numbers}: a number is missing or not finite")
  return Check(name, v.mean() <= threshold,
               f"{numbers} (mean ≤ {scale * threshold:g}{unit}, n={len(v)})")


def at_least(name: str, value: float, threshold: float, *, digits: int = 3,
             what: str = "") -> Check:
  """A single statistic is at least `threshold`."""
  if value is None or not np.isfinite(value):
    return Check(name, False, f"{what + ' ' if what else ''}{value}: not finite")
  text = f"{what + ' ' if what else ''}{value:.{digits}f}"
  return Check(name, value >= threshold, f"{text} (≥ {threshold:g})")


def _stand_ins(description: str) -> set[str]:
  """{"usps.h5 for SVHN", ...} from a provenance description "... (stand-in for X) from kind:path"."""
  found = set()
  for match in re.finditer(r"\(stand-in for ", description):
    depth, end = 1, match.end()
    while end < len(description) and depth:  # X may itself contain parentheses
      depth += {"(": 1, ")": -1}.get(description[end], 0)
      end += 1
    target = description[match.end():end - 1]
    source = re.match(r"\s*from (\w+):([^;\s]+)", description[end:])
    if source is None:
      name = "a stand-in"
    elif source.group(1) == "synthetic":
      name = "synthetic shapes"
    else:
      name = os.path.basename(source.group(2).rstrip(";,)"))
    found.add(f"{name} for {target}")
  return found


def stand_in_note(data_descriptions: Sequence[str]) -> str:
  """"stand-in data: usps.h5 for SVHN; ..." naming each stand-in once, else ""."""
  pairs = set().union(*(_stand_ins(d) for d in data_descriptions)) if data_descriptions else set()
  return ("stand-in data: " + "; ".join(sorted(pairs))) if pairs else ""


_MODEL_NAMES = {"lenet": "LeNet", "resnet_tiny": "a tiny ResNet", "resnet18": "ResNet-18",
                "resnet50": "ResNet-50"}


def model_description(run_config: ml_collections.ConfigDict) -> str:
  """What the scale notes call a training config's network: "LeNet", "ResNet-50", or
  "EfficientNet-Lite0 (ImageNet) at 64 px" (the imagenet preset's stand-in for ResNet-50)."""
  name = run_config.model.name
  if name.startswith("efficientnet_lite"):
    return (f"EfficientNet-Lite{name[-1]} (ImageNet) at {run_config.model.input_size} px")
  return _MODEL_NAMES.get(name, name)


def scale_note(results: dict[str, Any], text: str) -> str:
  """The scale part of a verdict's "why": "" at the paper's scale (the full preset), else
  `text` with {model} replaced by the network the results come from (`results["model"]`,
  LeNet in results written before it was recorded)."""
  if results.get("preset") == "full":
    return ""
  return text.format(model=results.get("model") or "LeNet")


def qualifiers(data_descriptions: Sequence[str], paper_setting: str, model: str = "LeNet") -> str:
  """The "why" of a verdict: stand-ins used, and the scale when it is not the paper's.

  Results computed without any TFDS data (every preset but full) are at CPU scale: `model`
  (e.g. "LeNet") on small offline subsets instead of `paper_setting` (e.g. "ImageNet
  ResNet-50").
  """
  notes = [stand_in_note(data_descriptions)]
  if not any("tfds:" in d for d in data_descriptions):
    notes.append(f"CPU scale: {model} on small offline subsets instead of {paper_setting}")
  return "; ".join(n for n in notes if n)


def use_compilation_cache(directory: str) -> None:
  """Turns on JAX's persistent compilation cache in `directory`, unless one is set already.

  Every run builds its jitted step afresh; with LeNet the compile takes longer than the
  training, and the runs of one experiment share shapes, so the persistent cache turns
  ~20 s per run into ~1 s. A jax without these options runs on without the cache (warned).
  """
  import jax  # pylint: disable=import-outside-toplevel
  try:
    if jax.config.jax_compilation_cache_dir:
      return
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  except (AttributeError, ValueError) as e:  # an older jax: run without it
    logging.warning("No persistent compilation cache: %s", e)


def train_run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (or resumes, or reuses a finished) run; returns its results.json."""
  if results_lib.finished_with(workdir, config):
    return results_lib.read_json(os.path.join(workdir, "results.json"))
  return train.train(config, workdir, train_callbacks.standard())


PARTIAL_DIR = "partial"


def partial_path(workdir: str, name: str) -> str:
  """Where a long computation of this binary keeps its progress while it runs
  (workdir/partial/name: a landscape grid's finished chunks, `landscape.loss_landscape`'s
  resume_path), so a killed binary run again on the same workdir resumes there.
  `write_results` removes the folder."""
  folder = os.path.join(workdir, PARTIAL_DIR)
  os.makedirs(folder, exist_ok=True)
  # Layer names hold "/" (ResNet's "layer3/0/conv1").
  return os.path.join(folder, re.sub(r"[^A-Za-z0-9_.-]", "_", name))


def write_results(workdir: str, results: dict[str, Any], claims: Sequence[Claim]) -> dict[str, Any]:
  """Writes results.json with the claims included (then drops the progress files of
  `partial_path`); returns what it wrote."""
  out = dict(results)
  out["claims"] = [c.to_dict() for c in claims]
  out["metadata"] = results_lib.run_metadata()
  results_lib.write_json(os.path.join(workdir, "results.json"), out)
  shutil.rmtree(os.path.join(workdir, PARTIAL_DIR), ignore_errors=True)
  return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  v = np.asarray(values, dtype=np.float64)
  return float(v.mean()), float(v.std(ddof=0))


def fmt_seeds(values: Sequence[float], digits: int = 4) -> str:
  """A number measured over seeds for a summary table: its mean in `digits` significant
  digits, ± the standard deviation in 2 where there are several values."""
  m = float(np.mean(values))
  return f"{m:.{digits}g}" if len(values) == 1 else f"{m:.{digits}g}±{float(np.std(values)):.2g}"


def fmt_pm(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
  m, s = mean_std([scale * x for x in values])
  return f"{m:.{digits}f}±{s:.{digits}f}"
