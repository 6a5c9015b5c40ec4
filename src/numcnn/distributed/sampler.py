"""DistributedSampler: each rank's share of a dataset, disjoint, reshuffled every epoch, padded as PyTorch's."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from .comm import get_comm


class DistributedSampler:
    """The indices of ``dataset`` that rank ``rank`` of ``num_replicas`` reads this epoch (PyTorch's rules).

    Epoch e's order is ``numpy.random.default_rng([seed, e]).permutation(len(dataset))`` (or ``arange`` without
    ``shuffle``): the same on every rank, a function of (seed, epoch) only, so no rank has to send it and a run
    resumed at epoch e on any number of ranks sees the same order. Call :meth:`set_epoch` before each epoch
    (:class:`~numcnn.distributed.DistributedTraining` does it inside ``fit``).

    The order is cut into ``num_replicas`` interleaved shards: rank r gets positions r, r + N, r + 2N, ... . Each
    shard has ``ceil(len / N)`` indices: the order is padded by repeating its first indices, as PyTorch does, so
    every rank runs the same number of batches. ``drop_last``: drop the tail instead (``floor(len / N)`` each).
    ``pad=False`` (not in PyTorch; for evaluation): no index repeated or dropped, shards differ in length by at
    most one, so every image counts exactly once.

    With a per-rank batch B, step k of every rank together reads positions ``k*N*B .. (k+1)*N*B - 1`` of the
    epoch's order: the batch one process would read with batch N*B. That is why N ranks with batch B compute
    the same gradients as one process with batch N*B.
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False, *, pad: bool = True):
        comm = get_comm() if num_replicas is None or rank is None else None
        num_replicas = comm.size if num_replicas is None else num_replicas
        rank = comm.rank if rank is None else rank
        if not isinstance(num_replicas, int | np.integer) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive int, got {num_replicas!r}")
        if not isinstance(rank, int | np.integer) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank!r}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        if not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"DistributedSampler: seed must be a non-negative int, got {seed!r}")
        if drop_last and not pad:
            raise ValueError("DistributedSampler: pad=False keeps every index once; it cannot drop_last")
        self.dataset = dataset
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last, self.pad = shuffle, int(seed), drop_last, pad
        self.epoch = 0
        n = len(dataset)
        if not pad:
            self.num_samples = len(range(self.rank, n, self.num_replicas))
        elif drop_last and n % self.num_replicas != 0:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas if pad else n

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order :meth:`indices` returns (0-based, as in a PyTorch loop)."""
        self.epoch = int(epoch)

    def order(self) -> np.ndarray:
        """The epoch's order of the whole dataset, int64 (len(dataset),), the same on every rank."""
        n = len(self.dataset)
        if self.shuffle:
            return np.random.default_rng([self.seed, self.epoch]).permutation(n).astype(np.int64, copy=False)
        return np.arange(n, dtype=np.int64)

    def indices(self) -> np.ndarray:
        """This rank's indices for the epoch, int64 (num_samples,)."""
        order = self.order()
        if not self.pad:
            return order[self.rank :: self.num_replicas]
        if self.drop_last:
            order = order[: self.total_size]
        elif self.total_size > len(order) and len(order) > 0:
            order = np.resize(order, self.total_size)  # repeats the order from its start, as PyTorch pads
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"DistributedSampler({len(self.dataset)} items, rank {self.rank} of {self.num_replicas}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, epoch={self.epoch})")
