"""Softmax and log-softmax along one axis, forward and backward, in the input's dtype; and, compiled, softmax
cross-entropy against class indices (the loss of a classifier's training step), a part of rows at a time in cache.

All subtract the maximum along the axis first, so logits of any magnitude give finite, exact results.
"""

from __future__ import annotations

import numpy as np

from . import jit, parallel
from .jit import kernel


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) along ``axis``; same shape and dtype as x."""
    e = x - x.max(axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def softmax_backward(dy: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Gradient through softmax from its output y: y * (dy - sum(dy * y, axis))."""
    dx = dy * y
    s = dx.sum(axis=axis, keepdims=True)
    np.subtract(dy, s, out=dx)  # the dy * y buffer is free once its sum is taken
    dx *= y
    return dx


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """x - max - log(sum(exp(x - max))) along ``axis``; same shape and dtype as x."""
    shifted = x - x.max(axis=axis, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    shifted -= lse
    return shifted


def log_softmax_backward(dy: np.ndarray, y_log: np.ndarray, axis: int = -1) -> np.ndarray:
    """Gradient through log_softmax from its output: dy - exp(y_log) * sum(dy, axis)."""
    dx = np.exp(y_log)
    dx *= dy.sum(axis=axis, keepdims=True)
    np.subtract(dy, dx, out=dx)
    return dx


# ---------------------------------------------------------------------------------------------------
# Softmax cross-entropy against class indices, compiled (backend "numba"). A part of rows (about _ROWS_PART logits,
# so that it stays in L2) makes four passes: NumPy's row maximum, a compiled z = x - max(x) (in x's dtype, as
# log_softmax does), NumPy's exp turning z into e in place, and a compiled pass that sums each row (float64,
# _LANES partial sums added in order), writes the softmax p = e / sum for the backward and the sample's loss
# -weight * (z[target] - log(sum)). The backward is one pass over p. exp stays NumPy's: without Intel's SVML
# Numba calls exp per element (4x slower), and a compiled polynomial exp (Cody-Waite, degree 7-13 in float64)
# still took 2.5x NumPy's vectorised float32 exp, which made the whole loss no faster than NumPy's.
# Rows are independent and the parts are cut by the shape only: the same bits for any thread count.
# ---------------------------------------------------------------------------------------------------

_LANES = 64  # a row's sum in this many lanes (lane j takes columns j, j + 64, ...), added in order
_ROWS_PART = 1 << 17  # about this many logits per part of rows shared out over the kernel threads
_COMPILED_MIN = 1 << 14  # fewer logits: the NumPy loss (see cross_entropy_index_supported)


@kernel
def _shift_rows(x, z, row_max, i0, i1):
    """z[i] = x[i] - row_max[i] for rows i0..i1, in x's dtype."""
    n = x.shape[1]
    for i in range(i0, i1):
        row, out = x[i], z[i]
        m = row_max[i]
        for c in range(n):
            out[c] = row[c] - m


@kernel
def _normalise_rows(x, e, row_max, target, weight, per, i0, i1):
    """e[i] (exp of the shifted row) divided by its sum, in place, and per[i] = -weight[i] * log_softmax(x)[i,
    target[i]] (0 where target[i] < 0: an ignored sample)."""
    n = x.shape[1]
    lanes = np.empty(_LANES)
    for i in range(i0, i1):
        row = e[i]
        lanes[:] = 0.0
        for c0 in range(0, n, _LANES):
            part = row[c0:c0 + _LANES]
            for j in range(part.shape[0]):
                lanes[j] += part[j]
        s = 0.0
        for j in range(_LANES):
            s += lanes[j]
        inv = 1.0 / s
        for c in range(n):
            row[c] = row[c] * inv
        t = target[i]
        if t < 0:
            per[i] = 0.0
        else:
            shifted = x[i, t] - row_max[i]  # in x's dtype, the value z held
            per[i] = -weight[i] * (shifted - np.log(s))


@kernel
def _cross_entropy_backward_rows(p, target, grad_weight, dx, i0, i1):
    """dx[i] = grad_weight[i] * (p[i] - onehot(target[i])), and 0 * p[i] for an ignored row (target < 0)."""
    n = p.shape[1]
    for i in range(i0, i1):
        g = np.float64(grad_weight[i])
        prow, out = p[i], dx[i]
        for c in range(n):
            out[c] = np.float64(prow[c]) * g
        t = target[i]
        if t >= 0:
            out[t] = (np.float64(prow[t]) - 1.0) * g


def _row_parts(m: int, c: int) -> list[tuple[int, int]]:
    rows = max(1, _ROWS_PART // max(1, c))
    return [(i, min(m, i + rows)) for i in range(0, m, rows)]


def cross_entropy_index_supported(x: np.ndarray) -> bool:
    """Whether the compiled cross-entropy covers x: (M, C) float32 or float64 with at least _COMPILED_MIN logits
    (below, the NumPy loss is as fast: batch 100 x 10 classes took 0.085 ms either way), backend "numba"."""
    return (x.ndim == 2 and x.size >= _COMPILED_MIN and x.dtype in (np.float32, np.float64)
            and jit.use_compiled())


def cross_entropy_index_forward(x: np.ndarray, target: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, ...]:
    """Softmax cross-entropy of logits x (M, C) against class indices, compiled.

    target: (M,) int64 class indices in [0, C), or -1 for an ignored sample; weight: (M,) the weight of each
    sample's class (its class weight, or 1). Returns ``(p, per)``: p = softmax(x) (M, C) for the backward and the
    per-sample losses per = -weight * log_softmax(x)[i, target] (0 for ignored samples), both in x's dtype.
    """
    x = np.ascontiguousarray(x)
    m, c = x.shape
    p = np.empty((m, c), dtype=x.dtype)
    per = np.empty(m, dtype=x.dtype)
    target = np.ascontiguousarray(target, dtype=np.int64)
    weight = np.ascontiguousarray(weight, dtype=np.float64)

    row_max = np.empty(m, dtype=x.dtype)

    def part(bounds):
        i0, i1 = bounds
        np.max(x[i0:i1], axis=1, out=row_max[i0:i1])  # NaN wins, as in log_softmax
        _shift_rows(x, p, row_max, i0, i1)
        np.exp(p[i0:i1], out=p[i0:i1])
        _normalise_rows(x, p, row_max, target, weight, per, i0, i1)

    parallel.run(part, _row_parts(m, c), blas=False)
    return p, per


def cross_entropy_index_backward(p: np.ndarray, target: np.ndarray, grad_weight: np.ndarray) -> np.ndarray:
    """dx (M, C) in p's dtype: grad_weight[i] * (p[i] - onehot(target[i])), for p and target of
    :func:`cross_entropy_index_forward` and grad_weight (M,): each sample's weight times its loss's gradient."""
    m, c = p.shape
    dx = np.empty((m, c), dtype=p.dtype)
    grad_weight = np.ascontiguousarray(grad_weight, dtype=np.float64)
    parallel.run(lambda b: _cross_entropy_backward_rows(p, target, grad_weight, dx, *b), _row_parts(m, c),
                 blas=False)
    return dx
