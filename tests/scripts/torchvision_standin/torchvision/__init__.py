"""A test-local stand-in for the few torchvision pieces the scripts in tests/scripts use (PyTorch side only).

torchvision's wheel here is CUDA-only and does not import, so the PyTorch figures written in
tests/scripts/test_scripts.py were measured with real torch and this package first on ``sys.path``. Each piece
follows torchvision 0.2x's documented behaviour for PIL images, in numpy + torch, as simply as possible:

- ``datasets``: MNIST / FashionMNIST (torchvision's ``root/<ClassName>/raw`` IDX files), CIFAR10 (the Python
  version's pickled batches), ImageFolder. No downloads and no MD5 checks (the tests write their own files).
- ``transforms``: Compose, ToTensor, Normalize, Resize, CenterCrop, RandomRotation, RandomHorizontalFlip.
- ``utils``: make_grid, save_image.

Under ``numcnn run`` this package is never used: ``import torchvision`` resolves to ``numcnn.vision`` there.
"""

from . import datasets, transforms, utils

__version__ = "0.0-standin"
__all__ = ["datasets", "transforms", "utils"]
