"""Scratch memory for the kernels: ``take`` an array from the runtime's pool, ``give`` it back, and cut a batch into
chunks that fit the memory budget (see ``runtime.py`` for the pool's rules and the budget).

No kernel returns pooled memory to its caller, with one documented exception: the column matrices (a
``conv.Columns``) that ``conv2d_forward(..., return_cols=True)`` lends for backward; the caller gives them back
(``cols.release()``) after the backward that reads them, or simply drops them (they are then freed, never reused).

Why chunks: a chunk of columns that stays in cache between being written and being read by the GEMM runs faster
than one batch-sized piece, and it bounds the memory of any layer (figures in docs/performance.md).
"""

from __future__ import annotations

import numpy as np

from .parallel import split
from .runtime import runtime

__all__ = ["SPLIT_BYTES", "batch_chunks", "chunk_size", "give", "take"]

# Work at least this large is cut into at least two parts even when it fits the budget, so that two threads can
# share it (see parallel.py). Like the budget, it depends on nothing but the shapes: the same bits on any machine.
SPLIT_BYTES = 4 << 20


def take(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A C-contiguous array of ``shape`` and ``dtype`` with arbitrary contents, owned by the caller."""
    return runtime.pool.take(shape, dtype)


def give(arr: np.ndarray | None) -> None:
    """Return an array obtained from ``take`` (None is ignored). The caller must not touch it afterwards."""
    runtime.pool.give(arr)


def chunk_size(n: int, bytes_per_item: int) -> int:
    """How many of ``n`` batch items fit in the budget at ``bytes_per_item`` each (at least 1).

    A pure function of its arguments and the budget: the same settings give the same chunks.
    """
    if bytes_per_item <= 0:
        return n
    return int(max(1, min(n, runtime.memory_budget // bytes_per_item)))


def batch_chunks(n: int, bytes_per_item: int) -> list[tuple[int, int]]:
    """The batch ranges [n0, n1) a kernel works in: as few as the budget allows (``chunk_size``), at least two once
    the work exceeds ``SPLIT_BYTES``, an even number when more than one, of near-equal sizes. A pure function of its
    arguments and the budget."""
    parts = -(-n // chunk_size(n, bytes_per_item))
    if n * bytes_per_item >= SPLIT_BYTES:
        parts = max(parts, 2)
    if parts > 1 and parts % 2:
        parts += 1  # an even count: two threads finish together (3 chunks keep one thread idle a third of the time)
    return split(n, parts)


def keepable(nbytes: int) -> bool:
    """Whether scratch of ``nbytes`` may be kept from a forward to its backward: up to the pool's size (31 MB of
    columns for the convnet's 16->32 5x5 layer at batch 100, never the 236 MB of a 64->64 3x3 layer on 32x32)."""
    return nbytes <= runtime.pool_limit()
