"""Data layer: IDX files, MNIST / Fashion-MNIST / CIFAR, datasets, samplers, DataLoader and batch-wise transforms.

``numcnn.utils.data`` gives these torch.utils.data's names and conventions; ``numcnn.vision`` gives torchvision's.
"""

from numcnn.data import transforms
from numcnn.data.base import (
    ArrayDataset,
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    NpzDataset,
    StackDataset,
    Subset,
    TensorDataset,
    random_split,
)
from numcnn.data.cifar import CIFAR10, CIFAR100
from numcnn.data.collate import default_collate, default_convert
from numcnn.data.datasets import MNIST, FashionMNIST, user_cache_dir
from numcnn.data.idx import read_idx, write_idx
from numcnn.data.image_folder import ImageFolder
from numcnn.data.loader import DataLoader
from numcnn.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
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
from numcnn.data.workers import WorkerInfo, get_worker_info

__all__ = [
    "ArrayDataset", "BatchSampler", "CIFAR10", "CIFAR100", "ChainDataset", "Compose", "ConcatDataset", "DataLoader",
    "Dataset", "FashionMNIST", "ImageFolder", "IterableDataset", "Lambda", "MNIST", "Normalize", "NpzDataset", "Pad",
    "RandomCrop", "RandomHorizontalFlip", "RandomSampler", "Sampler", "SequentialSampler", "StackDataset", "Subset",
    "SubsetRandomSampler", "TensorDataset", "ToTensor", "Transform", "WeightedRandomSampler", "WorkerInfo",
    "default_collate", "default_convert", "get_worker_info", "random_split", "read_idx", "transforms",
    "user_cache_dir", "write_idx",
]
