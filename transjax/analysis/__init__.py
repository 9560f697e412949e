"""The paper's measurements, each a pure function of `loss_fn` (transjax.functional).

deviation   ||W - W0||_F / sqrt(n) per layer, last layer, sum
hessian     Hessian-vector products, Lanczos / power-iteration top-k, Hutchinson trace, SLQ
landscape   filter-normalised directions, 1-D / 2-D loss grids (vmap, chunked, sharded)
gradients   loss variation along the gradient, gradient SVD / projection, per-layer scale
embedding   pairwise weight distances, t-SNE

Every analysis evaluates the loss with train=False (BatchNorm running statistics), so the
loss is a deterministic function of the parameters. Import submodules directly, e.g.
`from transjax.analysis import hessian`.
"""
