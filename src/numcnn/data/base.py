"""Dataset types: the generic protocol, array-backed datasets, subsets and random splits.

A dataset is anything with ``__len__`` and ``__getitem__(i) -> (image, label, ...)``. Array-backed
datasets (ArrayDataset and its subclasses, and Subsets of them) also expose their whole fields as
``arrays``, which lets DataLoader gather a batch with one fancy index instead of N Python calls.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from numcnn._config import default_generator, numpy_generator

__all__ = [
    "ArrayDataset", "ChainDataset", "ConcatDataset", "Dataset", "IterableDataset", "NpzDataset", "StackDataset",
    "Subset", "TensorDataset", "random_split",
]


def gather_equivalent(getitem: Callable) -> Callable:
    """Mark a ``__getitem__`` as equivalent to gathering ``arrays`` then applying the transforms.

    DataLoader only takes the vectorised path when the dataset's class still uses a marked
    ``__getitem__``: a subclass that overrides it is read item by item, as its author wrote it.
    """
    getitem._gather_equivalent = True
    return getitem


class Dataset:
    """Base class of map-style datasets: subclasses define ``__len__`` and ``__getitem__``.

    ``Dataset[T]`` is accepted in class statements (``class Pairs(Dataset[tuple])``), as torch's generic Dataset."""

    def __class_getitem__(cls, item: Any) -> type:
        return cls

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """Base class of iterable-style datasets: subclasses define ``__iter__`` (and may define ``__len__``).

    With DataLoader workers every worker iterates the same dataset; ``get_worker_info()`` inside ``__iter__``
    tells a worker which share to yield (as in torch)."""

    def __iter__(self):
        raise NotImplementedError

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} is an IterableDataset without a length (define __len__ for one)")

    def __getitem__(self, index: int) -> Any:
        raise TypeError(f"{type(self).__name__} is an IterableDataset: iterate over it instead of indexing it")

    def __add__(self, other: Any) -> ChainDataset:
        return ChainDataset([self, other])


class ConcatDataset(Dataset):
    """The items of several map-style datasets one after another; ``cumulative_sizes`` as in torch."""

    def __init__(self, datasets: Sequence[Any]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        if any(isinstance(d, IterableDataset) for d in self.datasets):
            raise TypeError("ConcatDataset does not support IterableDataset (use ChainDataset)")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"ConcatDataset: index {index} out of range for {n} items")
        index = index + n if index < 0 else index
        k = int(np.searchsorted(self.cumulative_sizes, index, side="right"))
        return self.datasets[k][index - (self.cumulative_sizes[k - 1] if k else 0)]


class ChainDataset(IterableDataset):
    """Several iterable datasets chained one after another."""

    def __init__(self, datasets: Sequence[Any]) -> None:
        self.datasets = list(datasets)

    def __iter__(self):
        for d in self.datasets:
            yield from d

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)


class StackDataset(Dataset):
    """Item i gathers item i of every dataset: a tuple (positional datasets) or a dict (keyword datasets)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if bool(args) == bool(kwargs):
            raise ValueError("StackDataset: pass datasets either as positional or as keyword arguments (not both)")
        self.datasets = args or kwargs
        lengths = {len(d) for d in (args or kwargs.values())}
        if len(lengths) != 1:
            raise ValueError(f"StackDataset: size mismatch between datasets, got lengths {sorted(lengths)}")
        self._length = lengths.pop()

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> Any:
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)


def _to_array(a: Any) -> np.ndarray:
    # Accept numcnn Tensors (or anything with .numpy()) without importing the autograd layer.
    return a.numpy() if hasattr(a, "numpy") and not isinstance(a, np.ndarray) else np.asarray(a)


class ArrayDataset(Dataset):
    """Dataset made of arrays sharing their first axis: item i is ``(arrays[0][i], arrays[1][i], ...)``.

    ``transform`` applies to the first field (the image), ``target_transform`` to the second (the label).
    """

    def __init__(
        self,
        *arrays: np.ndarray,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
    ) -> None:
        if not arrays:
            raise ValueError(f"{type(self).__name__}: needs at least one array")
        arrays = tuple(_to_array(a) for a in arrays)
        lengths = [a.shape[0] if a.ndim else None for a in arrays]
        if None in lengths or len(set(lengths)) != 1:
            shapes = ", ".join(str(a.shape) for a in arrays)
            raise ValueError(f"{type(self).__name__}: all arrays need the same first dimension, got shapes {shapes}")
        self._arrays = arrays
        self.transform = transform
        self.target_transform = target_transform

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        """The fields as whole arrays, first axis = items."""
        return self._arrays

    def __len__(self) -> int:
        return self.arrays[0].shape[0]

    @gather_equivalent
    def __getitem__(self, index: int) -> tuple:
        items = [a[index] for a in self.arrays]
        if self.transform is not None:
            items[0] = self.transform(items[0])
        if self.target_transform is not None and len(items) > 1:
            items[1] = self.target_transform(items[1])
        return tuple(items)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in self.arrays)
        return f"{type(self).__name__}({shapes})"


class TensorDataset(ArrayDataset):
    """Wrap arrays (or numcnn Tensors) of equal length: item i is ``(a[i] for a in arrays)``."""

    def __init__(self, *arrays: np.ndarray) -> None:
        super().__init__(*arrays)


class NpzDataset(ArrayDataset):
    """Images and labels from a ``.npz`` file (loaded into memory with ``allow_pickle=False``).

    ``images_key``: array (N, H, W) or (N, C, H, W); ``labels_key``: array (N,), or None for images only.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        images_key: str = "images",
        labels_key: str | None = "labels",
        transform: Callable | None = None,
        target_transform: Callable | None = None,
    ) -> None:
        keys = [images_key] if labels_key is None else [images_key, labels_key]
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = [k for k in keys if k not in npz.files]
                if missing:
                    raise KeyError(f"NpzDataset({path}): no array named {missing}; the file has {npz.files}")
                arrays = [npz[k] for k in keys]
        except ValueError as err:
            # np.load refuses object arrays rather than unpickle them: say which file.
            raise ValueError(f"NpzDataset({path}): {err}") from err
        self.path = path
        super().__init__(*arrays, transform=transform, target_transform=target_transform)


class Subset(Dataset):
    """The items of ``dataset`` at ``indices`` (ints in ``[-len, len)``), in that order."""

    def __init__(self, dataset: Any, indices: Sequence[int] | np.ndarray) -> None:
        idx = np.asarray(indices)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise ValueError(f"Subset: indices must be a 1-D sequence of ints, got {idx.dtype} of shape {idx.shape}")
        n = len(dataset)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"Subset: indices must lie in [-{n}, {n}) for a dataset of {n} items")
        self.dataset = dataset
        self.indices = np.where(idx < 0, idx + n, idx).astype(np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    @gather_equivalent
    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]


def random_split(
    dataset: Any,
    lengths: Sequence[int | float],
    generator: np.random.Generator | None = None,
    *,
    seed: int | None = None,
) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random Subsets of the given lengths.

    ``lengths``: ints summing to ``len(dataset)``, or fractions summing to 1; as in PyTorch each part
    gets ``floor(n * fraction)`` items and the leftover items go one each to the first parts.
    ``generator`` (PyTorch's third argument) is a ``numcnn.Generator`` or a ``numpy.random.Generator``.
    The permutation is ``generator.permutation(n)``, the generator being ``generator``,
    ``np.random.default_rng(seed)``, or numcnn's global one (``numcnn.manual_seed``) if neither is given.
    """
    if seed is not None and generator is not None:
        raise ValueError("random_split: pass seed or generator, not both")
    generator = numpy_generator("random_split", generator)
    n = len(dataset)
    lengths = list(lengths)
    if lengths and math.isclose(sum(lengths), 1.0) and sum(lengths) <= 1 and any(isinstance(v, float) for v in lengths):
        if any(not 0 <= v <= 1 for v in lengths):
            raise ValueError(f"random_split: fractions must lie in [0, 1], got {lengths}")
        counts = [math.floor(n * v) for v in lengths]
        for k in range(n - sum(counts)):
            counts[k % len(counts)] += 1
        lengths = counts
    if any(not isinstance(v, int | np.integer) or v < 0 for v in lengths) or sum(lengths) != n:
        raise ValueError(
            f"random_split: lengths must be non-negative ints summing to {n} (the dataset's length) "
            f"or fractions summing to 1, got {lengths}"
        )
    if generator is None:
        generator = default_generator() if seed is None else np.random.default_rng(seed)
    perm = generator.permutation(n)
    bounds = np.cumsum([0, *lengths])
    return [Subset(dataset, perm[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
