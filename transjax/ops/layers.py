"""`Conv`: `nnx.Conv` computed by `transjax.ops.conv_general_dilated`.

The same module, arguments and parameters as `nnx.Conv` (a model reads like its Flax or
torchvision counterpart with `ops.Conv` for `nnx.Conv`); its kernel may be a landscape's
`AffineKernel`, which it passes to the convolution as it is (`promote_dtype` below).
"""

from __future__ import annotations

from flax import nnx
from flax.nnx.nn import dtypes

from transjax.ops import affine
from transjax.ops.conv import conv_general_dilated


def promote_dtype(args, /, *, dtype=None, inexact=True):
  """Flax's `promote_dtype` for (inputs, kernel, bias), an `AffineKernel` kept as it is
  (its parts already have the parameters' dtype) unless a compute dtype is asked for."""
  if dtype is not None:
    args = tuple(affine.as_array(a) for a in args)
  if not any(isinstance(a, affine.AffineKernel) for a in args):
    return dtypes.promote_dtype(args, dtype=dtype, inexact=inexact)
  plain = tuple(None if isinstance(a, affine.AffineKernel) else a for a in args)
  promoted = dtypes.promote_dtype(plain, dtype=dtype, inexact=inexact)
  return tuple(a if isinstance(a, affine.AffineKernel) else p for a, p in zip(args, promoted))


class Conv(nnx.Conv):
  """`nnx.Conv` (same arguments) with `transjax.ops`' convolution."""

  def __init__(self, *args, **kwargs):
    for name in ("conv_general_dilated", "promote_dtype"):
      if name in kwargs:
        raise TypeError(f"transjax.ops.Conv sets {name} itself; use nnx.Conv for your own.")
    super().__init__(*args, conv_general_dilated=conv_general_dilated,
                     promote_dtype=promote_dtype, **kwargs)
