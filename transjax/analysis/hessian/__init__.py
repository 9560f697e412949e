"""Hessian of the loss: Hessian-vector products, top-k eigenvalues, trace, spectral density.

Everything here is a pure function of the one `loss_fn` (transjax.functional) evaluated
with train=False, in the BatchNorm mode `bn_mode` (`transjax.analysis.batchnorm`: batch
statistics, statistics recalibrated on the sample set, or the stored running statistics;
"running", the default, is the behaviour before the mode existed), so the loss (and its
Hessian) is a deterministic function of the parameters.

    op = HessianOperator(loss_fn, params, state, batch, mask=params_lib.mask_for(p, "fc"))
    top = lanczos_top_k(op, k=20)           # the paper's Fig 3 (top-20 eigenvalues)
    tr = hutchinson_trace(op, num_probes=100)

The solvers (`lanczos_top_k`, `power_iteration_top_k`, `hutchinson_trace`, `slq_density`)
take any operator with `dim`, `dtype`, `matvec` and `matmat` (see `DenseOperator`), so
they are tested against dense matrices and used unchanged on ResNet-50.

One module an idea; every public name is re-exported here, so `hessian.lanczos_top_k`
is the way to call it:

operator  Hessian-vector products, `HessianOperator`, `DenseOperator`
basis     the basis the eigensolvers keep: its size (`lanczos_steps`), its memory check,
          Gram-Schmidt against it
lanczos   `lanczos_top_k`, `layer_top_k` (one layer's spectrum), `EigenResult`
power     `power_iteration_top_k` (PyHessian's method, for comparison)
trace     `hutchinson_trace`, `TraceResult`
density   `slq_density` (stochastic Lanczos quadrature), `DensityResult`

Names with a leading underscore are shared between these modules but private to the
package; a test that reaches one (or patches a name a solver looks up) names the module
that defines it, e.g. `hessian.operator.residual_budget_bytes`.
"""

from transjax.analysis.hessian.basis import (BASIS_MEMORY_FRACTION, DGKS_ETA,
                                             BasisTooLargeError, check_basis_fits,
                                             lanczos_steps)
from transjax.analysis.hessian.density import DensityResult, slq_density
from transjax.analysis.hessian.lanczos import EigenResult, lanczos_top_k, layer_top_k
from transjax.analysis.hessian.operator import (DenseOperator, HessianOperator, hvp,
                                                make_hvp, residual_budget_bytes)
from transjax.analysis.hessian.power import power_iteration_top_k
from transjax.analysis.hessian.trace import TraceResult, hutchinson_trace

__all__ = [
    "BASIS_MEMORY_FRACTION", "BasisTooLargeError", "DGKS_ETA", "DenseOperator",
    "DensityResult", "EigenResult", "HessianOperator", "TraceResult", "check_basis_fits",
    "hutchinson_trace", "hvp", "lanczos_steps", "lanczos_top_k", "layer_top_k", "make_hvp",
    "power_iteration_top_k", "residual_budget_bytes", "slq_density",
]
