"""Reusable scratch memory for the kernels, and the memory budget that decides when a kernel works in chunks.

Why: a fresh multi-megabyte array is mapped page by page on first touch; on this class of machine that costs
as much as the convolution itself (a 5x5 conv forward went from 11 ms to 3 ms once its column buffer was
reused). Kernels therefore ``take`` their scratch arrays (im2col columns, col2im partial sums) from a pool and
``give`` them back when done.

Rules that keep reuse from ever changing a result:

- An array taken from the pool belongs to the taker alone until it is given back.
- No kernel returns pooled memory to its caller, with one documented exception: the column matrices (a
  ``conv.Columns``) that ``conv2d_forward(..., return_cols=True)`` lends for backward. The caller gives them back
  (``cols.release()``; nn.functional.conv2d does it when the autograd graph frees its saved values) after the
  backward that reads them, or simply drops them (they are then freed, never reused).
- Kernels take and give from several threads at once (parallel.py): both hold a lock.
- ``give`` only files the array for a later ``take`` of the same shape and dtype; the pool holds at most
  ``pool_limit()`` bytes and forgets the oldest arrays beyond that.

The budget (``set_memory_budget``) bounds one kernel's scratch array: above it a convolution runs over the
batch in chunks whose size depends only on the shapes and the budget, so equal settings give equal bits.
The default is small on purpose: a chunk of columns that stays in cache between being written and being
read by the GEMM made a 64->64 3x3 convolution on 32x32 at batch 100 faster at 8 MiB chunks (57 ms forward,
54 ms grad-weight) than in one 236 MB piece (87 and 79 ms), and it bounds the memory of any layer.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import numpy as np

from .parallel import split

__all__ = [
    "batch_chunks",
    "chunk_size",
    "clear",
    "get_memory_budget",
    "give",
    "pool_limit",
    "pooled_bytes",
    "set_memory_budget",
    "take",
]


def _env_budget() -> int:
    value = os.environ.get("NUMCNN_MEMORY_BUDGET_MB")
    if value is None:
        return 8 << 20
    budget = int(float(value) * (1 << 20))
    if budget <= 0:
        raise ValueError(f"NUMCNN_MEMORY_BUDGET_MB must be positive, got {value!r}")
    return budget


_state = {"budget": _env_budget()}
# (shape, dtype) -> list of free arrays; an OrderedDict so the least recently filed key is evicted first.
_free: OrderedDict[tuple, list[np.ndarray]] = OrderedDict()
_pooled = [0]
_lock = threading.Lock()  # kernels take and give from several threads at once (see parallel.py)
# Work at least this large is cut into at least two parts even when it fits the budget, so that two threads can
# share it (see parallel.py). Like the budget, it depends on nothing but the shapes: the same bits on any machine.
SPLIT_BYTES = 4 << 20


def set_memory_budget(nbytes: int) -> None:
    """Largest scratch array (bytes) one kernel call may use; larger work is split over the batch.

    Default 8 MiB, or ``NUMCNN_MEMORY_BUDGET_MB`` from the environment. Changing it changes chunk sizes and so
    possibly the last bits of results (sums are grouped differently); it never changes them beyond rounding.
    """
    if not isinstance(nbytes, (int, np.integer)) or isinstance(nbytes, bool) or nbytes <= 0:
        raise ValueError(f"set_memory_budget: expected a positive number of bytes, got {nbytes!r}")
    _state["budget"] = int(nbytes)
    clear()


def get_memory_budget() -> int:
    """The current per-kernel scratch budget in bytes."""
    return _state["budget"]


def pool_limit() -> int:
    """Most bytes the pool keeps between calls: room for a few budget-sized arrays."""
    return 4 * _state["budget"]


def pooled_bytes() -> int:
    """Bytes currently held by the pool (free arrays waiting for reuse)."""
    return _pooled[0]


def chunk_size(n: int, bytes_per_item: int) -> int:
    """How many of ``n`` batch items fit in the budget at ``bytes_per_item`` each (at least 1).

    A pure function of its arguments and the budget: the same settings give the same chunks.
    """
    if bytes_per_item <= 0:
        return n
    return int(max(1, min(n, _state["budget"] // bytes_per_item)))


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


def take(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A C-contiguous array of ``shape`` and ``dtype`` with arbitrary contents, owned by the caller."""
    key = (tuple(shape), np.dtype(dtype))
    with _lock:
        arrays = _free.get(key)
        if arrays:
            arr = arrays.pop()
            _pooled[0] -= arr.nbytes
            if not arrays:
                del _free[key]
            return arr
    return np.empty(key[0], dtype=key[1])


def give(arr: np.ndarray | None) -> None:
    """Return an array obtained from ``take`` (None is ignored). The caller must not touch it afterwards."""
    if arr is None or arr.nbytes > pool_limit():
        return
    key = (arr.shape, arr.dtype)
    with _lock:
        arrays = _free.setdefault(key, [])
        if any(a is arr for a in arrays):  # given twice: filing it again would hand it to two takers
            return
        arrays.append(arr)
        _free.move_to_end(key)
        _pooled[0] += arr.nbytes
        while _pooled[0] > pool_limit() and _free:
            old_key = next(iter(_free))
            arrays = _free[old_key]
            _pooled[0] -= arrays.pop(0).nbytes
            if not arrays:
                del _free[old_key]


def clear() -> None:
    """Drop every pooled array (their memory goes back to the allocator)."""
    with _lock:
        _free.clear()
        _pooled[0] = 0
