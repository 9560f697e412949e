"""The errors theory raises on bad input: all ValueError subclasses with one clear message."""


class TheoryInputError(ValueError):
  """Base class of every bad-input error raised by theory."""


class OffSphereError(TheoryInputError):
  """Inputs are not on the unit sphere and strict mode forbids normalising them."""


class LabelRangeError(TheoryInputError):
  """Some |y| > 1, outside the theorems' assumption."""


class SingularGramError(TheoryInputError):
  """H_inf is singular (duplicate or parallel inputs)."""


class DivergenceError(TheoryInputError):
  """Gradient descent diverged with the given step size."""


class MemoryBudgetError(TheoryInputError):
  """The requested widths or sizes would not fit in the memory budget."""


class ConfigError(TheoryInputError):
  """The config has unknown keys or bad values."""


class MissingDataError(TheoryInputError):
  """Real data files were requested but are not in the data directory."""
