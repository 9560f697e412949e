"""Numerical verification of the transferability theory (Section 6 / Appendix C).

A standalone package (imports nothing from transjax). All numerics are float64: the
linear algebra in numpy/scipy, the gradient descent in JAX under `jax.enable_x64(True)`,
so the global dtype setting of the process is left alone.
"""

from theory import errors, gram, tasks, theorems, twolayer
from theory.errors import (ConfigError, DivergenceError, LabelRangeError, MemoryBudgetError,
                           MissingDataError, OffSphereError, SingularGramError,
                           TheoryInputError)

__all__ = ["errors", "gram", "tasks", "theorems", "twolayer", "ConfigError", "DivergenceError",
           "LabelRangeError", "MemoryBudgetError", "MissingDataError", "OffSphereError",
           "SingularGramError", "TheoryInputError"]
