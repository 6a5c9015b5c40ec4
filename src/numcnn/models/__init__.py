"""The model zoo: textbook CNNs for (N, C, 28, 28) images, built from ``numcnn.nn`` only.

    >>> import numcnn.models
    >>> numcnn.models.names()
    ['convnet', 'inception', 'lenet5', 'resnet', 'shallow', 'simplecnn']
    >>> model = numcnn.models.get("lenet5", in_channels=1, num_classes=10, batchnorm=True)
    >>> numcnn.models.recipe("lenet5")["optimizer"]
    'adam'

Every model returns (N, num_classes) float32 (logits; ``shallow`` returns sigmoid outputs for its L2 loss).
"""

from .classic import ConvNet, LeNet5, ShallowNet, SimpleCNN
from .inception import BasicConv2d, Inception, InceptionNet
from .registry import RECIPE_KEYS, describe, get, names, options, recipe
from .resnet import BasicBlock, Bottleneck, ResNet

__all__ = [
    "RECIPE_KEYS", "BasicBlock", "BasicConv2d", "Bottleneck", "ConvNet", "Inception", "InceptionNet", "LeNet5",
    "ResNet", "ShallowNet", "SimpleCNN", "describe", "get", "names", "options", "recipe",
]
