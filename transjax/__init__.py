"""transjax: the measurements of "Towards Understanding the Transferability of Deep
Representations" (Liu, Long, Wang, Jordan) in JAX/Flax.

Subpackages: `models` (LeNet, ResNet, heads), `data` (datasets, transforms, batching),
`functional` (the one pure loss), `train`, `checkpoint`, `analysis`, `plotting`.
"""

__version__ = "0.1.0"
