"""The paper's measurements, each a pure function of `loss_fn` (transjax.functional).

deviation   ||W - W0||_F / sqrt(n) per layer, last layer, sum
hessian     Hessian-vector products, Lanczos / power-iteration top-k, Hutchinson trace, SLQ
landscape   filter-normalised directions, 1-D / 2-D loss grids (vmap, chunked, sharded)
gradients   loss variation along the gradient, gradient SVD / projection, per-layer scale
embedding   pairwise weight distances, t-SNE
batchnorm   which statistics BatchNorm uses in an analysis (batch, recalibrated, running)
subset      the analysed parameters: a mask, the masked leaves, the loss on them
similarity  BatchNorm-statistics distance of a target to a pretrained network's source

Every analysis evaluates the loss with train=False in a BatchNorm mode (`bn_mode`: batch
statistics, statistics recalibrated on the analysed data, or the stored running
statistics), so the loss is a deterministic function of the parameters. Import submodules directly, e.g.
`from transjax.analysis import hessian`.
"""
