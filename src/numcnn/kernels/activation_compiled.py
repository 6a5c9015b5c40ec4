"""Compiled tanh and sigmoid backward (backend "numba"): one pass over float32 arrays, from the saved output.

The backward is NumPy's expression in float32, the same operations in the same order (dy * (1 - y*y) and
dy * (1 - y) * y, no FMA contraction): bit-equal to the NumPy kernels, in one pass instead of three. When dy's
planes lie in the other memory order than y's (NCHW against channel-major: the gradient an average pooling's
backward hands back in dy's layout), the kernel reads dy's planes where they are instead of copying them first.
Elementwise: any cut of the work gives the same bits, so 1, 2 or 3 threads agree.

The forwards stay NumPy's (np.tanh, and ``activation.sigmoid``): a compiled forward cannot call tanhf/expf per
element (the call stops LLVM's vectoriser; Numba has no vector math library without SVML), and an exp written as
vectorisable float64 arithmetic (expm1 by Taylor series at t / 2**9, then nine doublings u * (u + 2), then
tanh = U / (U + 2)) was correctly rounded on 1M float32 inputs but 5x slower than np.tanh's SIMD loop on
(100, 6, 28, 28) (0.91 vs 0.17 ms, 2 threads) and slower than the five-pass NumPy sigmoid (0.89 vs 0.51 ms).
"""

from __future__ import annotations

import numpy as np

from . import parallel
from .jit import kernel

__all__ = ["backward", "supported"]

_ONE = np.float32(1)  # float32 arrays only: a Python 1 would promote the float32 arithmetic to float64
_PART = 1 << 21  # elements per part: memory-bound, one thread beat two halves of 0.47M (0.10 vs 0.15-0.76 ms)


@kernel
def _tanh_backward_rows(dy, y, dx, rows_b, swap, r0, r1):
    """dx = dy * (1 - y*y) over rows [r0, r1) of y's (R, L) rows; dy's row of y's row r = a*rows_b + b is r itself,
    or (swap) b*A + a: dy's planes in the transposed order."""
    rows_a = y.shape[0] // rows_b
    for r in range(r0, r1):
        q = (r % rows_b) * rows_a + r // rows_b if swap else r
        g, yr, d = dy[q], y[r], dx[r]
        for j in range(yr.shape[0]):
            v = yr[j]
            d[j] = g[j] * (_ONE - v * v)


@kernel
def _sigmoid_backward_rows(dy, y, dx, rows_b, swap, r0, r1):
    """dx = dy * (1 - y) * y, rows as in ``_tanh_backward_rows``."""
    rows_a = y.shape[0] // rows_b
    for r in range(r0, r1):
        q = (r % rows_b) * rows_a + r // rows_b if swap else r
        g, yr, d = dy[q], y[r], dx[r]
        for j in range(yr.shape[0]):
            v = yr[j]
            d[j] = g[j] * (_ONE - v) * v


_BACKWARD = {"tanh": _tanh_backward_rows, "sigmoid": _sigmoid_backward_rows}


def _dense_order(a: np.ndarray) -> tuple[int, ...] | None:
    """The axis order in which ``a`` is C-contiguous, or None."""
    if a.flags.c_contiguous:
        return tuple(range(a.ndim))
    order = tuple(sorted(range(a.ndim), key=lambda i: -a.strides[i]))
    return order if a.transpose(order).flags.c_contiguous else None


def supported(min_size: int, x: np.ndarray, *others: np.ndarray) -> bool:
    """float32 arrays of one shape, at least ``min_size`` elements (float64 keeps NumPy's loops)."""
    return (x.dtype == np.float32 and x.size >= min_size
            and all(o.dtype == np.float32 and o.shape == x.shape for o in others))


def _parts(n: int) -> list[tuple[int, int]]:
    return [(i, min(n, i + _PART)) for i in range(0, n, _PART)]


def backward(name: str, dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The gradient from dy and the forward's output y, laid out like y."""
    order = _dense_order(y)
    if order is None:
        y, order = np.ascontiguousarray(y), tuple(range(y.ndim))
    yt = y.transpose(order)
    dyt = dy.transpose(order)
    rows_b, swap = 1, False
    if dyt.flags.c_contiguous:
        rows, length = 1, yt.size
    elif y.ndim == 4 and order[2:] == (2, 3) and dy.transpose(order[1], order[0], 2, 3).flags.c_contiguous:
        # planes of (H, W) in the other order: y's (A, B) planes, dy's (B, A)
        rows, length, rows_b, swap = yt.shape[0] * yt.shape[1], yt.shape[2] * yt.shape[3], yt.shape[1], True
        dyt = dy.transpose(order[1], order[0], 2, 3)
    else:
        dyt, rows, length = np.ascontiguousarray(dyt), 1, yt.size
    y2 = yt.reshape(rows, length) if rows > 1 else yt.reshape(-1)
    d2 = dyt.reshape(rows, length) if rows > 1 else dyt.reshape(-1)
    out = np.empty(yt.shape, dtype=y.dtype)
    o2 = out.reshape(y2.shape)
    fn = _BACKWARD[name]
    if rows == 1:  # one long row: cut it into parts (as 1-row 2-D views of each part)
        parts = _parts(length)
        parallel.run(lambda b: fn(d2[None, b[0]:b[1]], y2[None, b[0]:b[1]], o2[None, b[0]:b[1]], 1, False, 0, 1),
                     parts, blas=False)
    else:
        per = max(1, _PART // length)
        parallel.run(lambda b: fn(d2, y2, o2, rows_b, swap, *b),
                     [(r, min(rows, r + per)) for r in range(0, rows, per)], blas=False)
    return out.transpose(np.argsort(order))
