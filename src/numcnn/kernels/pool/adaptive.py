"""Adaptive average pooling: the output size is given and the bins follow from it, PyTorch's way.

Bin i of oh along H covers rows ``floor(i*H/oh)`` to ``ceil((i+1)*H/oh)`` (exclusive): bins may overlap and
differ in length. Their sums are two matrix products with 0/1 membership matrices, one per axis; the global
(1, 1) case is a plain mean.
"""

from __future__ import annotations

import numpy as np

from ..parallel import matmul
from .geometry import IntPair, check_4d

__all__ = ["adaptive_avg_pool2d_backward", "adaptive_avg_pool2d_forward"]


def _adaptive_bins(n: int, out: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """0/1 membership matrix (out, n) of PyTorch's adaptive bins and the bin lengths (out,)."""
    i = np.arange(out)
    start = (i * n) // out
    end = -((-(i + 1) * n) // out)  # ceil((i + 1) * n / out)
    pos = np.arange(n)
    member = (pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])
    return member.astype(dtype), (end - start)


def _adaptive_out(x_shape: tuple[int, ...], output_size: tuple[int | None, int | None]) -> IntPair:
    h, w = x_shape[-2:]
    oh = h if output_size[0] is None else output_size[0]
    ow = w if output_size[1] is None else output_size[1]
    if oh < 1 or ow < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {tuple(output_size)}")
    return oh, ow


def adaptive_avg_pool2d_forward(x: np.ndarray, output_size: tuple[int | None, int | None]) -> np.ndarray:
    """Adaptive average pooling. x: (N, C, H, W) -> (N, C, oh, ow), same dtype.

    Bin i along H covers rows ``floor(i*H/oh)`` to ``ceil((i+1)*H/oh)`` (exclusive), as in PyTorch; a
    ``None`` entry of output_size keeps that input size.
    """
    check_4d(x.shape, "adaptive_avg_pool2d")
    n, c, h, w = x.shape
    oh, ow = _adaptive_out(x.shape, output_size)
    if (oh, ow) == (1, 1):
        return (x.reshape(n, c, h * w).sum(axis=2) / x.dtype.type(h * w)).reshape(n, c, 1, 1)
    bins_h, len_h = _adaptive_bins(h, oh, x.dtype)
    bins_w, len_w = _adaptive_bins(w, ow, x.dtype)
    # Bin sums as two GEMMs with 0/1 matrices: (N*C*H, W) @ (W, ow), then (oh, H) @ (N*C, H, ow); small ones on
    # one thread (``parallel.matmul``: OpenBLAS's threads would spin beside numcnn's).
    cols = matmul(x.reshape(n * c * h, w), bins_w.T).reshape(n * c, h, ow)
    y = matmul(bins_h, cols).reshape(n, c, oh, ow)
    y /= (len_h[:, None] * len_w[None, :]).astype(x.dtype)
    return y


def adaptive_avg_pool2d_backward(dy: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """Gradient of ``adaptive_avg_pool2d_forward``. dy: (N, C, oh, ow) -> dx with shape x_shape."""
    check_4d(x_shape, "adaptive_avg_pool2d_backward")
    n, c, h, w = x_shape
    oh, ow = dy.shape[-2:]
    if (oh, ow) == (1, 1):
        g = dy.reshape(n, c, 1, 1) / dy.dtype.type(h * w)
        return np.broadcast_to(g, x_shape).copy()
    bins_h, len_h = _adaptive_bins(h, oh, dy.dtype)
    bins_w, len_w = _adaptive_bins(w, ow, dy.dtype)
    g = dy / (len_h[:, None] * len_w[None, :]).astype(dy.dtype)
    cols = matmul(g.reshape(n * c * oh, ow), bins_w).reshape(n * c, oh, w)
    return matmul(bins_h.T, cols).reshape(x_shape)
