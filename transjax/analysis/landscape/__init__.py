"""Loss landscapes: filter-normalised random directions and 1-D / 2-D loss grids.

Paper, Appendix A "Visualization of loss landscapes": the value L(theta + eta (p a + q b))
with a, b random Gaussian directions filter-normalised as in Li et al. 2018, p, q in
-100..99 (a 200 x 200 grid), eta = 0.001, on 256 fixed samples. Restricting the
directions to one layer (a mask) gives the per-layer landscapes of Fig 5, the other layers
held fixed.

The loss is `loss_fn(..., train=False)` in the BatchNorm mode `bn_mode`
(`transjax.analysis.batchnorm`; "recalibrated" is the paper's analogue, "running" the
default and the behaviour before the mode existed), so the surface is a deterministic
function of the parameters. Grid points are evaluated with
`vmap` in chunks sized to a memory budget, sharded over a 1-D 'data' mesh when there are
several devices.

One module an idea; every public name is re-exported here, so `landscape.loss_landscape`
is the way to call it:

directions  filter-normalised random directions, `layer_mask`
grid        `loss_landscape`, `landscape_2d` / `landscape_1d`, `evaluate_points`, the
            paper's axis, `sequential_landscape` (the one-point-a-call reference)
points      the loss at a grid point and a chunk's compiled evaluation (`CPU_VMAP_WIDTH`)
chunks      the memory a point needs and the chunk plan (`plan_chunks`, `CPU_MAX_CHUNK`)
resume      a grid's finished points saved after every chunk (`resume_path`)
stats       `grid_stats`, `quadratic_fit`: flatness and smoothness of a 2-D grid

Names with a leading underscore are shared between these modules but private to the
package; a test that reaches one (or patches a name the grid looks up) names the module
that defines it, e.g. `landscape.points._batched_point_fn`.
"""

from transjax.analysis.landscape.chunks import (CHUNK_WORK_BYTES, CPU_MAX_CHUNK,
                                                DEFAULT_BUDGET_BYTES, ChunkPlan,
                                                GridTooLargeError, estimate_bytes_per_point,
                                                plan_chunks, points_in_memory)
from transjax.analysis.landscape.directions import (filter_normalize, layer_mask,
                                                    orthogonalize, random_direction,
                                                    random_directions)
from transjax.analysis.landscape.grid import (PAPER_ETA, PAPER_NUM_SAMPLES,
                                              PAPER_RESOLUTION, LandscapeResult,
                                              evaluate_points, landscape_1d, landscape_2d,
                                              loss_landscape, paper_axis,
                                              sequential_landscape)
from transjax.analysis.landscape.points import CPU_VMAP_WIDTH, moving_leaves
from transjax.analysis.landscape.stats import grid_stats, quadratic_fit

__all__ = [
    "CHUNK_WORK_BYTES", "CPU_MAX_CHUNK", "CPU_VMAP_WIDTH", "ChunkPlan", "DEFAULT_BUDGET_BYTES",
    "GridTooLargeError", "LandscapeResult", "PAPER_ETA", "PAPER_NUM_SAMPLES",
    "PAPER_RESOLUTION", "estimate_bytes_per_point", "evaluate_points", "filter_normalize",
    "grid_stats", "landscape_1d", "landscape_2d", "layer_mask", "loss_landscape",
    "moving_leaves", "orthogonalize", "paper_axis", "plan_chunks", "points_in_memory",
    "quadratic_fit", "random_direction", "random_directions", "sequential_landscape",
]
