"""numcnn.utils.data: torch.utils.data's names over numcnn.data.

    from numcnn.utils.data import DataLoader, Dataset, TensorDataset, random_split
    from numcnn.utils.data.sampler import SubsetRandomSampler

Batches follow torch's ``default_collate`` (a list of Tensors for tuple items); ``generator=`` takes a
``numpy.random.Generator``. numcnn.data keeps numcnn's own image-batch convention for the same classes.
"""

from numcnn.data.collate import default_collate, default_convert
from numcnn.data.workers import WorkerInfo, get_worker_info
from numcnn.utils.data.dataloader import DataLoader
from numcnn.utils.data.dataset import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    StackDataset,
    Subset,
    TensorDataset,
    random_split,
)
from numcnn.utils.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

__all__ = [
    "BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset", "IterableDataset", "RandomSampler",
    "Sampler", "SequentialSampler", "StackDataset", "Subset", "SubsetRandomSampler", "TensorDataset",
    "WeightedRandomSampler", "WorkerInfo", "default_collate", "default_convert", "get_worker_info", "random_split",
]
