"""Data layer: IDX files, MNIST / Fashion-MNIST, datasets, DataLoader and batch-wise transforms.

Depends on NumPy only; DataLoader imports ``numcnn.autograd.tensor`` lazily to wrap the batches it yields.
"""

from numcnn.data import transforms
from numcnn.data.base import ArrayDataset, Dataset, NpzDataset, Subset, TensorDataset, random_split
from numcnn.data.datasets import MNIST, FashionMNIST, user_cache_dir
from numcnn.data.idx import read_idx, write_idx
from numcnn.data.image_folder import ImageFolder
from numcnn.data.loader import DataLoader
from numcnn.data.transforms import (
    Compose,
    Lambda,
    Normalize,
    Pad,
    RandomCrop,
    RandomHorizontalFlip,
    ToTensor,
    Transform,
)

__all__ = [
    "ArrayDataset",
    "Compose",
    "DataLoader",
    "Dataset",
    "FashionMNIST",
    "ImageFolder",
    "Lambda",
    "MNIST",
    "Normalize",
    "NpzDataset",
    "Pad",
    "RandomCrop",
    "RandomHorizontalFlip",
    "Subset",
    "TensorDataset",
    "ToTensor",
    "Transform",
    "random_split",
    "read_idx",
    "transforms",
    "user_cache_dir",
    "write_idx",
]
