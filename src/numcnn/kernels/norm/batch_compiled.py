"""Batch normalization compiled: per channel, two passes forward (statistics, then normalise) and two backward
(the two sums, then dx), instead of one NumPy pass over memory per elementwise step.

Blocks of channels are shared out over numcnn's kernel threads (``parallel.run``; the GIL is released inside the
compiled code), and each channel reduces its (A, B) values in a fixed order
into float64 accumulators (the forward into ``LANES`` partial sums, added up in order at the end, so that the loop
vectorises): the thread count never changes a bit, and the sums are more accurate than the float32 NumPy path
(the two backends agree to float32 rounding, not to the bit). Inputs come as (A, C, B) views
(``channels.channel_views``); outputs are written in the same layout.
"""

from __future__ import annotations

import numpy as np

from .. import parallel
from ..jit import kernel
from .channels import channel_blocks

__all__ = ["backward", "train_forward"]


LANES = 16  # partial sums per channel: the inner loop over them vectorises, and their order stays fixed


@kernel
def _train_forward(x3, gamma, beta, eps, y3, mean, var, invstd, c0, c1):
    na, nc, nb = x3.shape
    n = na * nb
    body = nb - nb % LANES
    for c in range(c0, c1):
        part = np.zeros(LANES)
        tail = 0.0
        for a in range(na):
            row = x3[a, c]
            for b0 in range(0, body, LANES):
                for j in range(LANES):
                    part[j] += row[b0 + j]
            for b in range(body, nb):
                tail += row[b]
        m = (part.sum() + tail) / n
        part[:] = 0.0
        tail = 0.0
        for a in range(na):
            row = x3[a, c]
            for b0 in range(0, body, LANES):
                for j in range(LANES):
                    d = row[b0 + j] - m
                    part[j] += d * d
            for b in range(body, nb):
                d = row[b] - m
                tail += d * d
        v = (part.sum() + tail) / n
        inv = 1.0 / np.sqrt(v + eps)
        scale, shift = inv * gamma[c], beta[c] - m * inv * gamma[c]
        for a in range(na):
            row, out = x3[a, c], y3[a, c]
            for b in range(nb):
                out[b] = row[b] * scale + shift
        mean[c], var[c], invstd[c] = m, v, inv


@kernel
def _backward(x3, dy3, mean, invstd, gamma, dx3, dbeta, dot, c0, c1):
    na, nc, nb = x3.shape
    n = na * nb
    for c in range(c0, c1):
        m = np.float64(mean[c])
        sum_dy, sum_dot = 0.0, 0.0  # one accumulator each: measured faster here than LANES partial sums
        for a in range(na):
            row, grad = x3[a, c], dy3[a, c]
            for b in range(nb):
                sum_dy += grad[b]
                sum_dot += grad[b] * (row[b] - m)
        inv = np.float64(invstd[c])
        k = inv * gamma[c]
        # dx = k * (dy - sum(dy)/n - (x - mean) * inv^2 * sum(dy * (x - mean))/n)
        slope, offset = inv * inv * sum_dot / n, sum_dy / n
        for a in range(na):
            row, grad, out = x3[a, c], dy3[a, c], dx3[a, c]
            for b in range(nb):
                out[b] = k * (grad[b] - offset - (row[b] - m) * slope)
        dbeta[c], dot[c] = sum_dy, sum_dot


def train_forward(x3: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None, eps: float):
    """y3 like x3, and mean, biased var, invstd (C,) in x's dtype, for an (A, C, B) view x3."""
    c = x3.shape[1]
    one = np.ones(c, dtype=np.float64) if gamma is None else gamma.reshape(c).astype(np.float64)
    zero = np.zeros(c, dtype=np.float64) if beta is None else beta.reshape(c).astype(np.float64)
    y3 = np.empty(x3.shape, dtype=x3.dtype)
    mean, var, invstd = (np.empty(c, dtype=x3.dtype) for _ in range(3))
    x3 = np.ascontiguousarray(x3)
    parallel.run(lambda b: _train_forward(x3, one, zero, float(eps), y3, mean, var, invstd, *b),
                 channel_blocks(x3), blas=False)
    return y3, mean, invstd, var


def backward(x3: np.ndarray, dy3: np.ndarray, mean: np.ndarray, invstd: np.ndarray, gamma: np.ndarray | None):
    """dx3 like x3, and (C,) dbeta and sum(dy * (x - mean)) in x's dtype."""
    c = x3.shape[1]
    one = np.ones(c, dtype=np.float64) if gamma is None else gamma.reshape(c).astype(np.float64)
    dx3 = np.empty(x3.shape, dtype=x3.dtype)
    dbeta, dot = np.empty(c, dtype=x3.dtype), np.empty(c, dtype=x3.dtype)
    x3, dy3 = np.ascontiguousarray(x3), np.ascontiguousarray(dy3)
    parallel.run(lambda b: _backward(x3, dy3, mean, invstd, one, dx3, dbeta, dot, *b), channel_blocks(x3),
                 blas=False)
    return dx3, dbeta, dot
