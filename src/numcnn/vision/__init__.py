"""numcnn.vision: torchvision's shape over numcnn: ``datasets``, ``transforms``, ``utils`` and ``models``.

    from numcnn.vision import datasets, transforms
    from numcnn.vision.utils import make_grid, save_image
    train = datasets.FashionMNIST(root, train=True, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]))
"""

from numcnn.vision import datasets, models, transforms, utils

__all__ = ["datasets", "models", "transforms", "utils"]
