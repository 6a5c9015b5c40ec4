"""Samplers: which dataset indices a DataLoader reads, and in what order (torch.utils.data's samplers).

A sampler is an iterable of indices with a length; a batch sampler is an iterable of lists of indices. Random
samplers draw from ``generator`` (a ``numpy.random.Generator``) when one is given, else from numcnn's global
generator (``numcnn.manual_seed``), looked up each time iteration starts. The same seed gives the same indices;
the streams are NumPy's, so the indices are not torch's for the same seed (the sets and counts are).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import Any

import numpy as np

from numcnn._config import default_generator, numpy_generator

__all__ = [
    "BatchSampler", "RandomSampler", "Sampler", "SequentialSampler", "SubsetRandomSampler",
    "WeightedRandomSampler",
]


def _positive_int(who: str, name: str, value: Any) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{who}: {name} should be a positive integer value, but got {name}={value!r}")
    return int(value)


class Sampler:
    """Base class: subclasses define ``__iter__`` (indices) and, usually, ``__len__``. ``Sampler[int]`` is
    accepted in class statements, as torch's generic Sampler."""

    def __class_getitem__(cls, item: Any) -> type:
        return cls

    def __init__(self, data_source: Sized | None = None) -> None:
        pass

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """Random indices of ``data_source``: a permutation (``generator.permutation(n)``), or with ``replacement``
    ``num_samples`` draws of ``generator.integers(0, n)``. Without replacement, ``num_samples`` larger than n
    takes whole permutations then the start of one more (as torch)."""

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: int | None = None,
                 generator: Any = None) -> None:
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement should be a boolean value, but got replacement={replacement}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = None if num_samples is None else _positive_int("RandomSampler", "num_samples",
                                                                           num_samples)
        self.generator = numpy_generator("RandomSampler", generator)

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n, k = len(self.data_source), self.num_samples
        g = self.generator if self.generator is not None else default_generator()
        if self.replacement:
            return iter(g.integers(0, n, size=k).tolist())
        if k == n:
            return iter(g.permutation(n).tolist())
        parts = [g.permutation(n) for _ in range(k // n)]
        parts.append(g.permutation(n)[: k % n])
        return iter(np.concatenate(parts).tolist())

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given ``indices`` in a random order: ``indices[p]`` for ``p`` in ``generator.permutation(len)``."""

    def __init__(self, indices: Sequence[int], generator: Any = None) -> None:
        self.indices = indices
        self.generator = numpy_generator("SubsetRandomSampler", generator)

    def __iter__(self) -> Iterator[int]:
        g = self.generator if self.generator is not None else default_generator()
        return (self.indices[int(p)] for p in g.permutation(len(self.indices)))

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices in ``[0, len(weights))`` drawn with probabilities proportional to ``weights``
    (``generator.choice(n, num_samples, replace=replacement, p=weights / sum)``)."""

    def __init__(self, weights: Sequence[float], num_samples: int, replacement: bool = True,
                 generator: Any = None) -> None:
        self.num_samples = _positive_int("WeightedRandomSampler", "num_samples", num_samples)
        if not isinstance(replacement, bool):
            raise ValueError(f"WeightedRandomSampler: replacement should be a boolean value, but got "
                             f"replacement={replacement}")
        w = np.asarray(weights.numpy() if hasattr(weights, "numpy") else weights, dtype=np.float64)
        if w.ndim != 1 or w.size == 0:
            raise ValueError(f"WeightedRandomSampler: weights should be a non-empty 1-D sequence, got shape {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be finite, non-negative and not all zero")
        if not replacement and self.num_samples > np.count_nonzero(w):
            raise ValueError(f"WeightedRandomSampler: cannot draw {self.num_samples} samples without replacement "
                             f"from {np.count_nonzero(w)} non-zero weights")
        self.weights = w
        self.replacement = replacement
        self.generator = numpy_generator("WeightedRandomSampler", generator)

    def __iter__(self) -> Iterator[int]:
        g = self.generator if self.generator is not None else default_generator()
        p = self.weights / self.weights.sum()
        return iter(g.choice(len(p), size=self.num_samples, replace=self.replacement, p=p).tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of ``batch_size`` indices from ``sampler``; the last, shorter list is dropped with ``drop_last``."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        self.batch_size = _positive_int("BatchSampler", "batch_size", batch_size)
        if not isinstance(drop_last, bool):
            raise ValueError(f"BatchSampler: drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for idx in self.sampler:
            batch.append(int(idx))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
