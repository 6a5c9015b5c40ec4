"""torchvision.models' place for numcnn's model zoo (the models of ``numcnn.models`` under this name)."""

from numcnn.models import (
    RECIPE_KEYS,
    BasicBlock,
    BasicConv2d,
    Bottleneck,
    ConvNet,
    Inception,
    InceptionNet,
    LeNet5,
    ResNet,
    ShallowNet,
    SimpleCNN,
    describe,
    get,
    names,
    options,
    recipe,
)

__all__ = [
    "RECIPE_KEYS", "BasicBlock", "BasicConv2d", "Bottleneck", "ConvNet", "Inception", "InceptionNet", "LeNet5",
    "ResNet", "ShallowNet", "SimpleCNN", "describe", "get", "names", "options", "recipe",
]
