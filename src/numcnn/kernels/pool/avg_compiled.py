"""Average pooling 2x2 at stride 2 compiled (backend "numba"): one pass each way.

The forward adds each window as the NumPy kernel does, the two rows first and then the two columns,
``((x00 + x10) + (x01 + x11)) * 0.25`` (multiplying by 0.25 rounds exactly like dividing by 4), so its bits equal
``avg.avg_pool2d_forward``'s; the backward writes dy / 4 to each window's four pixels (and 0 to a last odd row or
column, which no window reads), one write per pixel instead of NumPy's broadcast-and-reshape copy. Planes are
independent: blocks of them run on numcnn's kernel threads without changing a bit.

Layouts: y is laid out like x's planes (NCHW or channel-major, as max pooling does), dx like dy's (the Function
keeps only x's shape, and dy's planes are read where they are).
"""

from __future__ import annotations

import numpy as np

from .. import parallel
from ..jit import kernel
from .geometry import IntPair, check_4d
from .max_compiled import _planes, _unplanes

__all__ = ["avg_pool2d_backward_2x2", "avg_pool2d_forward_2x2", "supported"]

# Planes per part of the work: about this many bytes of the larger array. One pass, memory-bound: on 2 busy cores one
# thread over LeNet's (100, 6, 28, 28) beat two halves (forward 0.13 vs 0.50 ms, backward 0.15 vs 0.19 ms: the second
# thread's first touches of fresh output pages contend), so only large arrays are cut.
_PART_BYTES = 1 << 23


def _blocks(planes: int, plane_bytes: int) -> list[tuple[int, int]]:
    size = max(1, _PART_BYTES // max(1, plane_bytes))
    return [(i, min(planes, i + size)) for i in range(0, planes, size)]


@kernel
def _forward_2x2(x, y, quarter, p0, p1):
    _, ho, wo = y.shape
    for p in range(p0, p1):
        for oh in range(ho):
            r0, r1, yrow = x[p, 2 * oh], x[p, 2 * oh + 1], y[p, oh]
            for ow in range(wo):
                yrow[ow] = ((r0[2 * ow] + r1[2 * ow]) + (r0[2 * ow + 1] + r1[2 * ow + 1])) * quarter


@kernel
def _backward_2x2(dy, dx, quarter, p0, p1):
    _, ho, wo = dy.shape
    for p in range(p0, p1):
        for oh in range(ho):
            r0, r1, grow = dx[p, 2 * oh], dx[p, 2 * oh + 1], dy[p, oh]
            for ow in range(wo):
                g = grow[ow] * quarter
                r0[2 * ow] = g
                r0[2 * ow + 1] = g
                r1[2 * ow] = g
                r1[2 * ow + 1] = g
        if dx.shape[1] > 2 * ho:  # an odd height: the last row is read by no window
            dx[p, 2 * ho:] = 0
        if dx.shape[2] > 2 * wo:
            dx[p, :, 2 * wo:] = 0


def supported(x_shape: tuple[int, ...], dtype, kernel_size: IntPair, stride: IntPair, padding: IntPair,
              ceil_mode: bool, divisor_override: int | None) -> bool:
    """2x2 windows at stride 2 without padding (count_include_pad changes nothing then), divisor 4, float32 or
    float64, and no extra window from ``ceil_mode`` (it adds one only over an odd edge)."""
    ceil_adds = ceil_mode and (x_shape[-2] % 2 == 1 or x_shape[-1] % 2 == 1)
    return (len(x_shape) == 4 and not ceil_adds and divisor_override in (None, 4)
            and np.dtype(dtype) in (np.float32, np.float64) and x_shape[-2] >= 2 and x_shape[-1] >= 2
            and (tuple(kernel_size), tuple(stride), tuple(padding)) == ((2, 2), (2, 2), (0, 0)))


def avg_pool2d_forward_2x2(x: np.ndarray) -> np.ndarray:
    """y (N, C, H // 2, W // 2), laid out like x's planes."""
    check_4d(x.shape, "avg_pool2d")
    n, c, h, w = x.shape
    xp, channel_major = _planes(x)
    y = np.empty((xp.shape[0], h // 2, w // 2), dtype=x.dtype)
    quarter = x.dtype.type(0.25)
    blocks = _blocks(xp.shape[0], xp[0].nbytes)
    parallel.run(lambda b: _forward_2x2(xp, y, quarter, *b), blocks, blas=False)
    return _unplanes(y, n, c, channel_major)


def avg_pool2d_backward_2x2(dy: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """dx with shape x_shape, laid out like dy's planes."""
    n, c, h, w = x_shape
    dyp, channel_major = _planes(dy)
    dx = np.empty((dyp.shape[0], h, w), dtype=dy.dtype)
    quarter = dy.dtype.type(0.25)
    blocks = _blocks(dx.shape[0], dx[0].nbytes)
    parallel.run(lambda b: _backward_2x2(dyp, dx, quarter, *b), blocks, blas=False)
    return _unplanes(dx, n, c, channel_major)
