"""Batch normalization compiled: per channel, the statistics then the normalisation forward (mean, centred sum of
squares, output: three sweeps over a block that stays in L2) and two passes backward (the two sums, then dx),
instead of one NumPy pass over memory per elementwise step.

Blocks of channels are shared out over numcnn's kernel threads (``parallel.run``; the GIL is released inside the
compiled code), and each channel reduces its (A, B) values in a fixed order into float64 accumulators (``LANES``
partial sums, or one per position b for short rows, added up in order at the end, so that the loops vectorise):
the thread count never changes a bit, and the sums are more accurate than the float32 NumPy path (the two backends
agree to float32 rounding, not to the bit). Per element, the output is computed in float64 and rounded once to x's
dtype. Inputs come as (A, C, B) views (``channels.channel_views``); outputs are written in the same layout.

The backward can read the gradient through a ReLU that followed the batch norm (``r3``, the ReLU's output): 0 where
r3 <= 0, else dy, the values of ``activation.relu_backward``, selected in both passes, so the engine's fused
Conv-BN-ReLU backward makes no gradient array for the ReLU and saves its pass over memory.

Measured on (100, 32, 28, 28) float32 in a conv output's channel-major layout, 2 threads: forward 1.7 vs 3.3 ms and
backward 1.9 vs 3.3 ms for the earlier kernels, whose backward sums (one scalar accumulator each) ran as a chain
of dependent adds, ten times slower than the vectorised lanes.
"""

from __future__ import annotations

import numpy as np

from .. import parallel
from ..jit import kernel
from .channels import channel_blocks

__all__ = ["backward", "train_forward"]


# Each channel's values are summed into LANES float64 accumulators, value b of a row into lane b % LANES, and the
# lanes are added up in lane order at the end: a fixed order that depends on the shape only. The loop over the
# lanes is elementwise over two arrays, which LLVM's loop vectoriser turns into packed adds (a single scalar
# accumulator is a chain of dependent adds, about ten times slower; the loop vectoriser does not reorder sums).
LANES = 128


@kernel
def _train_forward(x3, gamma, beta, eps, y3, mean, var, invstd, c0, c1):
    na, nc, nb = x3.shape
    n = na * nb
    acc = np.empty(LANES)
    for c in range(c0, c1):
        acc[:] = 0.0
        for a in range(na):
            row = x3[a, c]
            for b0 in range(0, nb, LANES):
                row_part = row[b0:b0 + LANES]
                for j in range(row_part.shape[0]):
                    acc[j] += row_part[j]
        total = 0.0
        for j in range(LANES):
            total += acc[j]
        m = total / n
        acc[:] = 0.0
        for a in range(na):
            row = x3[a, c]
            for b0 in range(0, nb, LANES):
                row_part = row[b0:b0 + LANES]
                for j in range(row_part.shape[0]):
                    d = row_part[j] - m
                    acc[j] += d * d
        total = 0.0
        for j in range(LANES):
            total += acc[j]
        v = total / n
        inv = 1.0 / np.sqrt(v + eps)
        scale, shift = inv * gamma[c], beta[c] - m * inv * gamma[c]
        for a in range(na):
            row, out = x3[a, c], y3[a, c]
            for b in range(nb):
                out[b] = row[b] * scale + shift
        mean[c], var[c], invstd[c] = m, v, inv


@kernel
def _backward(x3, dy3, r3, relu, mean, invstd, gamma, dx3, dbeta, dot, c0, c1):
    na, nc, nb = x3.shape
    n = na * nb
    acc_dy, acc_dot = np.empty(LANES), np.empty(LANES)
    for c in range(c0, c1):
        m = np.float64(mean[c])
        acc_dy[:] = 0.0
        acc_dot[:] = 0.0
        for a in range(na):
            row, grad, r = x3[a, c], dy3[a, c], r3[a, c]
            for b0 in range(0, nb, LANES):
                row_part, grad_part, r_part = row[b0:b0 + LANES], grad[b0:b0 + LANES], r[b0:b0 + LANES]
                for j in range(row_part.shape[0]):
                    g = 0.0 if relu and r_part[j] <= 0 else np.float64(grad_part[j])
                    acc_dy[j] += g
                    acc_dot[j] += g * (row_part[j] - m)
        sum_dy, sum_dot = 0.0, 0.0
        for j in range(LANES):
            sum_dy += acc_dy[j]
            sum_dot += acc_dot[j]
        inv = np.float64(invstd[c])
        k = inv * gamma[c]
        # dx = k * (dy - sum(dy)/n - (x - mean) * inv^2 * sum(dy * (x - mean))/n)
        slope, offset = inv * inv * sum_dot / n, sum_dy / n
        for a in range(na):
            row, grad, r, out = x3[a, c], dy3[a, c], r3[a, c], dx3[a, c]
            for b in range(nb):
                g = 0.0 if relu and r[b] <= 0 else np.float64(grad[b])
                out[b] = k * (g - offset - (row[b] - m) * slope)
        dbeta[c], dot[c] = sum_dy, sum_dot


# Inputs with short per-channel rows (B < LANES: BatchNorm1d's (N, C), small feature maps in NCHW) run the
# "across" kernels instead: each row a of the (A, C*B) matrix is added elementwise into one float64 accumulator per
# (channel, b) of the block, so the loop runs along memory over all the block's channels; value (a, b) of a channel
# goes into lane b, and a channel's lanes are added in b order. Per channel, the lane kernels ran 5-8x slower than
# NumPy on (256, 512) (a strided walk down each column, a lane loop of trip count 1).


@kernel
def _train_forward_across(x2, nb, gamma, beta, eps, y2, mean, var, invstd, c0, c1):
    na = x2.shape[0]
    n = na * nb
    k0, k1 = c0 * nb, c1 * nb
    width = k1 - k0
    acc = np.zeros(width)
    centre = np.empty(width)
    for a in range(na):
        seg = x2[a, k0:k1]
        for k in range(width):
            acc[k] += seg[k]
    for c in range(c0, c1):
        total = 0.0
        for b in range(nb):
            total += acc[(c - c0) * nb + b]
        m = total / n
        mean[c] = m
        for b in range(nb):
            centre[(c - c0) * nb + b] = m
    acc[:] = 0.0
    for a in range(na):
        seg = x2[a, k0:k1]
        for k in range(width):
            d = seg[k] - centre[k]
            acc[k] += d * d
    scale, shift = np.empty(width), np.empty(width)
    for c in range(c0, c1):
        total = 0.0
        for b in range(nb):
            total += acc[(c - c0) * nb + b]
        v = total / n
        inv = 1.0 / np.sqrt(v + eps)
        m = centre[(c - c0) * nb]
        var[c], invstd[c] = v, inv
        for b in range(nb):
            scale[(c - c0) * nb + b] = inv * gamma[c]
            shift[(c - c0) * nb + b] = beta[c] - m * inv * gamma[c]
    for a in range(na):
        seg, out = x2[a, k0:k1], y2[a, k0:k1]
        for k in range(width):
            out[k] = seg[k] * scale[k] + shift[k]


@kernel
def _backward_across(x2, dy2, r2, relu, nb, mean, invstd, gamma, dx2, dbeta, dot, c0, c1):
    na = x2.shape[0]
    n = na * nb
    k0, k1 = c0 * nb, c1 * nb
    width = k1 - k0
    centre = np.empty(width)
    for c in range(c0, c1):
        for b in range(nb):
            centre[(c - c0) * nb + b] = mean[c]
    acc_dy, acc_dot = np.zeros(width), np.zeros(width)
    for a in range(na):
        seg, grad, r = x2[a, k0:k1], dy2[a, k0:k1], r2[a, k0:k1]
        for k in range(width):
            g = 0.0 if relu and r[k] <= 0 else np.float64(grad[k])
            acc_dy[k] += g
            acc_dot[k] += g * (seg[k] - centre[k])
    scale, offset, slope = np.empty(width), np.empty(width), np.empty(width)
    for c in range(c0, c1):
        sum_dy, sum_dot = 0.0, 0.0
        for b in range(nb):
            sum_dy += acc_dy[(c - c0) * nb + b]
            sum_dot += acc_dot[(c - c0) * nb + b]
        inv = np.float64(invstd[c])
        dbeta[c], dot[c] = sum_dy, sum_dot
        for b in range(nb):
            scale[(c - c0) * nb + b] = inv * gamma[c]
            offset[(c - c0) * nb + b] = sum_dy / n
            slope[(c - c0) * nb + b] = inv * inv * sum_dot / n
    for a in range(na):
        seg, grad, r, out = x2[a, k0:k1], dy2[a, k0:k1], r2[a, k0:k1], dx2[a, k0:k1]
        for k in range(width):
            g = 0.0 if relu and r[k] <= 0 else np.float64(grad[k])
            out[k] = scale[k] * (g - offset[k] - (seg[k] - centre[k]) * slope[k])


def train_forward(x3: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None, eps: float):
    """y3 like x3, and mean, biased var, invstd (C,) in x's dtype, for an (A, C, B) view x3."""
    c = x3.shape[1]
    one = np.ones(c, dtype=np.float64) if gamma is None else gamma.reshape(c).astype(np.float64)
    zero = np.zeros(c, dtype=np.float64) if beta is None else beta.reshape(c).astype(np.float64)
    y3 = np.empty(x3.shape, dtype=x3.dtype)
    mean, var, invstd = (np.empty(c, dtype=x3.dtype) for _ in range(3))
    x3 = np.ascontiguousarray(x3)
    a, _, nb = x3.shape
    if nb < LANES:
        x2, y2 = x3.reshape(a, -1), y3.reshape(a, -1)
        parallel.run(lambda b: _train_forward_across(x2, nb, one, zero, float(eps), y2, mean, var, invstd, *b),
                     channel_blocks(x3), blas=False)
    else:
        parallel.run(lambda b: _train_forward(x3, one, zero, float(eps), y3, mean, var, invstd, *b),
                     channel_blocks(x3), blas=False)
    return y3, mean, invstd, var


def backward(x3: np.ndarray, dy3: np.ndarray, mean: np.ndarray, invstd: np.ndarray, gamma: np.ndarray | None,
             r3: np.ndarray | None = None):
    """dx3 like x3, and (C,) dbeta and sum(dy * (x - mean)) in x's dtype. With ``r3`` (the output of a ReLU applied
    to this batch norm's output, same view), dy3 is the ReLU output's gradient and the kernels read
    ``relu_backward(dy3, r3)`` (0 where r3 <= 0, else dy3) in their passes instead of a gradient array."""
    c = x3.shape[1]
    one = np.ones(c, dtype=np.float64) if gamma is None else gamma.reshape(c).astype(np.float64)
    dx3 = np.empty(x3.shape, dtype=x3.dtype)
    dbeta, dot = np.empty(c, dtype=x3.dtype), np.empty(c, dtype=x3.dtype)
    x3, dy3 = np.ascontiguousarray(x3), np.ascontiguousarray(dy3)
    relu = r3 is not None
    r3 = np.ascontiguousarray(r3) if relu else dy3  # (not read without relu)
    a, _, nb = x3.shape
    if nb < LANES:
        x2, dy2, r2, dx2 = x3.reshape(a, -1), dy3.reshape(a, -1), r3.reshape(a, -1), dx3.reshape(a, -1)
        parallel.run(lambda b: _backward_across(x2, dy2, r2, relu, nb, mean, invstd, one, dx2, dbeta, dot, *b),
                     channel_blocks(x3), blas=False)
    else:
        parallel.run(lambda b: _backward(x3, dy3, r3, relu, mean, invstd, one, dx3, dbeta, dot, *b),
                     channel_blocks(x3), blas=False)
    return dx3, dbeta, dot
