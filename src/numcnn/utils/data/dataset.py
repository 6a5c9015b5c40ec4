"""torch.utils.data.dataset: the dataset types, items as numcnn Tensors where torch's are tensors."""

from __future__ import annotations

from typing import Any

import numpy as np

from numcnn.autograd.tensor import Tensor
from numcnn.data import base
from numcnn.data.base import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    StackDataset,
    Subset,
    gather_equivalent,
    random_split,
)

__all__ = [
    "ChainDataset", "ConcatDataset", "Dataset", "IterableDataset", "StackDataset", "Subset", "TensorDataset",
    "random_split",
]


class TensorDataset(base.TensorDataset):
    """Tensors (or arrays) of equal first dimension; item i is ``tuple(t[i] for t in tensors)``, as Tensors."""

    def __init__(self, *tensors: Any) -> None:
        sizes = [t.shape[0] if len(t.shape) else None for t in tensors]
        if not tensors or None in sizes or len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset: size mismatch between tensors, got first dimensions {sizes}")
        super().__init__(*tensors)

    @property
    def tensors(self) -> tuple[Tensor, ...]:
        return tuple(Tensor(a) for a in self.arrays)

    @gather_equivalent
    def __getitem__(self, index: int) -> tuple:
        return tuple(Tensor(a[index]) for a in self.arrays)

    def can_collate_batch(self) -> bool:
        return True

    def collated_batch(self, indices: np.ndarray) -> list[Tensor]:
        """What ``default_collate([self[i] for i in indices])`` gives, with one fancy index per tensor."""
        return [Tensor(a[indices]) for a in self.arrays]
