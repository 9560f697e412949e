"""A model's weights from anywhere: fresh, a run folder, a weights file, an ImageNet name.

    graphdef, params, state, note = weights.initial_weights(config, num_classes)
    config, graphdef, params, state = weights.restore_run_weights("runs/pretrain", "final")

One idea a module, each importing only those listed before it (no cycle):

    state_dict          reading torch state dicts (.pth/.npz/.safetensors, checksums) and
                        loading one strictly; WeightMismatchError, WeightsChecksumError
    torchvision_resnet  torchvision's ResNet layout <-> transjax.models.resnet
    efficientnet_pytorch  EfficientNet-PyTorch's layout <-> transjax.models.efficientnet
    named               pip-installed ImageNet weights by `imagenet:` name
    build               the model a config names (build_from_config, param_count)
    run_folder          weights of transjax's own runs (restore_run_weights, transfer_weights)
    initial             the dispatch on config.init_from (initial_weights)
"""

from transjax.weights import build
from transjax.weights import efficientnet_pytorch
from transjax.weights import initial
from transjax.weights import named
from transjax.weights import run_folder
from transjax.weights import state_dict
from transjax.weights import torchvision_resnet
from transjax.weights.build import build_from_config
from transjax.weights.build import param_count
from transjax.weights.initial import initial_weights
from transjax.weights.run_folder import restore_run_weights
from transjax.weights.run_folder import transfer_weights
from transjax.weights.state_dict import WeightMismatchError
from transjax.weights.state_dict import WeightsChecksumError

__all__ = [
    "WeightMismatchError", "WeightsChecksumError", "build", "build_from_config",
    "efficientnet_pytorch", "initial", "initial_weights", "named", "param_count",
    "restore_run_weights", "run_folder", "state_dict", "torchvision_resnet",
    "transfer_weights",
]
