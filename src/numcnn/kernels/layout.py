"""Memory layout: the one rule for arrays laid out channel-major.

A convolution's GEMM produces its output as a (K, N*Ho*Wo) matrix, so ``conv2d_forward`` returns y (N, K, Ho, Wo)
as a transposed *view* of a (K, N, Ho, Wo) buffer rather than paying for a copy into NCHW order. The kernels that
read such an array next (batch norm, pooling, the ReLU between, the next convolution's im2col, and the backward
passes reading a gradient of that shape) work along its memory rows when they recognise it, and give their own
results the same layout. This module is where that layout is recognised and made.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["channel_major_empty", "channel_rows", "is_channel_major"]


def is_channel_major(x: np.ndarray, axis: int = 1) -> bool:
    """Whether x (..., C, ...) with the channel at ``axis`` is a view of channel-first memory: moving the channel
    axis to the front gives a C-contiguous array. False when there is only one channel or one item before it
    (then both layouts are the same memory)."""
    return (math.prod(x.shape[:axis]) > 1 and x.shape[axis] > 1
            and np.moveaxis(x, axis, 0).flags.c_contiguous)


def channel_major_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised (N, C, ...) array whose memory is (C, N, ...)."""
    n, c, *rest = shape
    return np.empty((c, n, *rest), dtype=dtype).swapaxes(0, 1)


def channel_rows(a: np.ndarray, take=None) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, K, H, W) -> the (K, N*H*W) matrix of its channels' rows, and the buffer it was copied into (None when it
    is a free view: ``a`` is channel-major). ``take(shape, dtype)`` provides the buffer (default: a fresh array)."""
    n, k, h, w = a.shape
    rows = a.transpose(1, 0, 2, 3)
    if rows.flags.c_contiguous:
        return rows.reshape(k, n * h * w), None
    buf = (take or np.empty)((k, n, h, w), a.dtype)
    np.copyto(buf, rows)
    return buf.reshape(k, n * h * w), buf
