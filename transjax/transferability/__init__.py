"""Transferability scores: which pretrained model to fine-tune, before fine-tuning any.

Every score is a pure function of frozen features (N x D) of the target sample, its integer
labels (N,) and, for LEEP and NCE, the source head's softmax (N x C_s), returns a float and is
higher = better transfer (lower-is-better quantities are negated, which their docstrings
state). The maths runs in JAX in float64.

    from transjax import transferability as tr
    tr.score("logme", features, labels)
    tr.score("leep", features, labels, source_probs=probs)
    {name: tr.score(name, features, labels, probs) for name in tr.SCORES}

Scores: logme, leep, nce, hscore, shrinkage_hscore, sfda, nleep, gbc, transrate, parc,
knn (the control), theory_deviation and theory_generalisation (the paper's theory on the
ReLU kernel of the features). The empirical-NTK theory scores need the network itself:
`ntk.ntk_deviation` / `ntk.ntk_generalisation`. `ranking` evaluates a score against
measured accuracies (weighted / plain Kendall tau, top-1 regret). `candidates` (imported on
its own: it loads models) ranks pretrained candidates on a target dataset
(`experiments/rank_models.py`).
"""

from __future__ import annotations

from typing import Any, Callable

from transjax.transferability import (gbc, hscore, knn, leep, logme, nleep, ntk, parc, ranking,
                                      sfda, theory_score, transrate)

# name -> fn(features, labels, source_probs) -> float.
ScoreFn = Callable[[Any, Any, Any], float]

SCORES: dict[str, ScoreFn] = {
    "logme": lambda f, y, p: logme.logme(f, y),
    "leep": lambda f, y, p: leep.leep(p, y),
    "nce": lambda f, y, p: leep.nce(p, y),
    "hscore": lambda f, y, p: hscore.hscore(f, y),
    "shrinkage_hscore": lambda f, y, p: hscore.shrinkage_hscore(f, y),
    "sfda": lambda f, y, p: sfda.sfda(f, y),
    "nleep": lambda f, y, p: nleep.nleep(f, y),
    "gbc": lambda f, y, p: gbc.gbc(f, y),
    "transrate": lambda f, y, p: transrate.transrate(f, y),
    "parc": lambda f, y, p: parc.parc(f, y),
    "knn": lambda f, y, p: knn.knn_accuracy(f, y),
    "theory_deviation": theory_score.theory_deviation,
    "theory_generalisation": theory_score.theory_generalisation,
}

# Scores that read the source head's probabilities; the theory scores use them if given.
NEEDS_SOURCE = frozenset({"leep", "nce"})


def score(name: str, features: Any, labels: Any, source_probs: Any | None = None) -> float:
  """The score `name` of a candidate (higher = better transfer).

  Args:
    name: a key of SCORES.
    features: (N, D) the candidate's features of the target sample.
    labels: (N,) integer target labels.
    source_probs: (N, C_s) the candidate's source-head softmax, needed by NEEDS_SOURCE.

  Returns:
    The score.

  Raises:
    KeyError: unknown name.
    ValueError: a source-head score without source_probs.
  """
  if name not in SCORES:
    raise KeyError(f"unknown score {name!r}; known: {', '.join(SCORES)}.")
  if name in NEEDS_SOURCE and source_probs is None:
    raise ValueError(f"{name} needs the source head's probabilities (source_probs).")
  return SCORES[name](features, labels, source_probs)


__all__ = ["SCORES", "NEEDS_SOURCE", "score", "gbc", "hscore", "knn", "leep", "logme", "nleep",
           "ntk", "parc", "ranking", "sfda", "theory_score", "transrate"]
