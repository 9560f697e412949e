"""The kernels: every op transjax computes in more than one way, behind one interface.

Models import only this interface and read like their Flax or torchvision counterparts:

    ops.Conv(...)                  nnx.Conv, computed by `conv_general_dilated`
    ops.BatchNorm(...)             nnx.BatchNorm, its row sums as matmuls (`batchnorm`)
    ops.conv_general_dilated(...)  lax.conv_general_dilated, same arguments
    ops.relu_max_pool_2x2(x)       relu(max_pool(x, 2x2, stride 2))
    ops.conv_relu_pool(conv, x)    relu_max_pool_2x2(conv(x)), LeNet's block

On CPU they take formulations that XLA:CPU runs faster than `lax`'s own (`conv`:
Toeplitz and im2col matmuls, shifted depthwise convolutions whose kernel gradient is a
matmul, looped per-point kernels; `batchnorm`: per-channel sums and broadcasts as matmuls;
`pool`: strided slices with a reshaped max's derivative; `conv_pool`: a landscape grid's
conv -> pool laid out for the pool). Values and derivatives are `lax`'s: gradients,
forward-over-reverse HVPs, vmap and per-example gradients are unchanged.

**The switch** (`transjax.ops.switch`): `TRANSJAX_CPU_KERNELS=0`, `set_cpu_kernels(False)`
or `with cpu_kernels(False):` turns every formulation off (plain `lax`); on an accelerator
they are off whatever the switch says. It is read at trace time.

**The landscape's hook** (`transjax.ops.affine`): a loss-landscape grid moves each
parameter to w + sum_i c_i d_i. `moved_params(params, directions, c, moving,
structured_paths(graphdef, params, state))` passes the kernels of `ops.Conv` modules as
`AffineKernel(w, basis, c)` values, which the convolution computes from 1 + r
convolutions where its input is shared by the grid's points.
"""

from transjax.ops.affine import AffineKernel, moved_params, structured_paths
from transjax.ops.batchnorm import BatchNorm
from transjax.ops.conv import conv_general_dilated
from transjax.ops.conv_pool import conv_relu_pool
from transjax.ops.layers import Conv
from transjax.ops.pool import relu_max_pool_2x2
from transjax.ops.switch import active, cpu_kernels, cpu_kernels_enabled, set_cpu_kernels

__all__ = ["AffineKernel", "BatchNorm", "Conv", "active", "conv_general_dilated",
           "conv_relu_pool", "cpu_kernels", "cpu_kernels_enabled", "moved_params", "relu_max_pool_2x2",
           "set_cpu_kernels", "structured_paths"]
