"""A batch-norm input as per-channel rows: the (A, C, B) fold, cache-sized channel blocks, per-channel sums.

Batch norm keeps one axis (the channel axis, C) and reduces over all the others. Folding the axes before it into
A and those after it into B turns every input shape, (N, C), (N, C, L) or (N, C, H, W), into one (A, C, B)
array, so that every kernel of ``batch.py`` is written once. A channel-major input (a conv output) is folded
into (1, C, N*H*W) instead, along its memory rows.
"""

from __future__ import annotations

import numpy as np

from .. import parallel
from ..layout import is_channel_major

__all__ = ["as_acb", "channel_blocks", "channel_dot", "channel_sum", "channel_views"]


def as_acb(x_shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, int, int]:
    """Fold a batch-norm input shape into (A, C, B): A = reduced axes before the channel axis, B = after.

    Exactly one axis may be kept (the channel axis); ``axes`` lists all the others.
    """
    ndim = len(x_shape)
    reduced = sorted({a % ndim for a in axes})
    kept = [a for a in range(ndim) if a not in reduced]
    if len(kept) != 1 or len(reduced) != len(axes):
        raise ValueError(
            f"batch_norm: axes must name every axis but one (the channel axis) once, got axes={tuple(axes)} "
            f"for an input of shape {tuple(x_shape)}"
        )
    c_axis = kept[0]
    a = int(np.prod(x_shape[:c_axis], dtype=np.int64))
    b = int(np.prod(x_shape[c_axis + 1 :], dtype=np.int64))
    return a, x_shape[c_axis], b


def channel_views(x_shape: tuple[int, ...], axes: tuple[int, ...], *arrays: np.ndarray):
    """The arrays as (A, C, B) and the function that turns an (A, C, B) result back into x_shape.

    When the first array's memory is channel-major (a conv output: a (C, N, H, W) buffer seen as NCHW), all
    are viewed as (1, C, N*H*W) instead: per-channel reductions then run along contiguous rows, about 15%
    faster, and results keep that memory order. Arrays in another layout are copied to match.
    """
    shape3 = as_acb(x_shape, axes)
    reduced = {a % len(x_shape) for a in axes}
    c_axis = next(i for i in range(len(x_shape)) if i not in reduced)
    if is_channel_major(arrays[0], c_axis):
        rows_shape = np.moveaxis(arrays[0], c_axis, 0).shape
        views = [np.moveaxis(a, c_axis, 0).reshape(1, shape3[1], -1) for a in arrays]
        return views, lambda r: np.moveaxis(r.reshape(rows_shape), 0, c_axis)
    return [a.reshape(shape3) for a in arrays], lambda r: r.reshape(x_shape)


def channel_blocks(x3: np.ndarray) -> list[tuple[int, int]]:
    """Channel ranges of an (A, C, B) view of about ``parallel.CACHE_BLOCK_BYTES`` each (at least one channel).

    A block stays in a core's L2 cache through the four to seven passes a batch-norm kernel makes over it,
    instead of each pass streaming from memory. The ranges depend on the shape only: the same bits whatever the
    thread count.
    """
    a, c, b = x3.shape
    return parallel.cache_blocks(c, a * b * x3.itemsize)


def channel_sum(v3: np.ndarray) -> np.ndarray:
    """Sum of an (A, C, B) array over A and B -> (C,)."""
    return v3.sum(axis=(0, 2))


def channel_dot(u3: np.ndarray, v3: np.ndarray) -> np.ndarray:
    """sum(u * v) over A and B of two (A, C, B) arrays -> (C,), without a full-size product temporary."""
    return np.einsum("acb,acb->c", u3, v3)
