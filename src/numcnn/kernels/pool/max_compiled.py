"""Max pooling compiled: one pass that keeps each window's maximum and where it was, and a backward that sends
each gradient there.

For every plane (one image's channel) and output position, the window's taps are visited in raster order with
PyTorch's rule: a value wins when it is larger than the best so far or NaN (so ties go to the first maximum and a NaN
to the last NaN). What the backward needs is the winning tap ``t = r*kw + s``, one byte, instead of an int64 index.
Compiled for the window the measurements point at, 2x2 at stride 2 (the loops are written out for it: a generic
loop over taps did not vectorise and ran several times slower than NumPy); other poolings run the NumPy kernels.
Planes are independent: blocks of them are shared out over numcnn's kernel threads (``parallel.run``, the GIL
released inside the compiled code) without changing a bit.
"""

from __future__ import annotations

import sys

import numpy as np

from .. import parallel
from ..jit import kernel
from ..layout import is_channel_major
from .geometry import IntPair, check_4d, pool_geometry

__all__ = ["max_pool2d_argmax", "max_pool2d_backward_argmax", "supported"]


@kernel
def _forward_2x2(x, y, arg, p0, p1):
    """2x2 windows, stride 2, no padding: each window's four taps in raster order, the winner kept in registers."""
    _, ho, wo = y.shape
    for p in range(p0, p1):
        for oh in range(ho):
            r0, r1 = x[p, 2 * oh], x[p, 2 * oh + 1]
            yrow, arow = y[p, oh], arg[p, oh]
            for ow in range(wo):
                best, win = r0[2 * ow], 0
                v = r0[2 * ow + 1]
                take = (v > best) | (v != v)  # larger, or NaN: PyTorch's rule
                best, win = (v, 1) if take else (best, win)
                v = r1[2 * ow]
                take = (v > best) | (v != v)
                best, win = (v, 2) if take else (best, win)
                v = r1[2 * ow + 1]
                take = (v > best) | (v != v)
                best, win = (v, 3) if take else (best, win)
                yrow[ow] = best
                arow[ow] = win


@kernel
def _backward_2x2(dy, arg, dx, p0, p1):
    """Each window's four input pixels: dy at the winner, 0 elsewhere (windows do not overlap: one write each)."""
    _, ho, wo = dy.shape
    for p in range(p0, p1):
        for oh in range(ho):
            r0, r1 = dx[p, 2 * oh], dx[p, 2 * oh + 1]
            grow, arow = dy[p, oh], arg[p, oh]
            for ow in range(wo):
                g, win = grow[ow], arow[ow]
                r0[2 * ow] = g if win == 0 else 0.0
                r0[2 * ow + 1] = g if win == 1 else 0.0
                r1[2 * ow] = g if win == 2 else 0.0
                r1[2 * ow + 1] = g if win == 3 else 0.0
        if dx.shape[1] > 2 * ho:  # an odd height: the last row is read by no window
            dx[p, 2 * ho:] = 0
        if dx.shape[2] > 2 * wo:
            dx[p, :, 2 * wo:] = 0


@kernel
def _backward_2x2_pairs(dy_bits, arg, dx_pairs, p0, p1):
    """``_backward_2x2`` for float32 and an even width, two pixels at a time: dx seen as 64-bit words (a window's
    two pixels of one row), dy as its 32-bit patterns. Each word is dy's bits shifted to the winner's half, or 0,
    so the inner loop is two unit-stride integer stores per window, which vectorises (the four float stores at
    stride 2 of ``_backward_2x2`` do not); the bits are copied, so NaN payloads and -0.0 come through unchanged."""
    _, ho, wo = dy_bits.shape
    zero = np.uint64(0)
    for p in range(p0, p1):
        for oh in range(ho):
            r0, r1 = dx_pairs[p, 2 * oh], dx_pairs[p, 2 * oh + 1]
            grow, arow = dy_bits[p, oh], arg[p, oh]
            for ow in range(wo):
                win = arow[ow]
                word = np.uint64(grow[ow]) << np.uint64(32 * (win & 1))  # little-endian: left pixel = low half
                r0[ow] = word if win < 2 else zero
                r1[ow] = word if win >= 2 else zero
        if dx_pairs.shape[1] > 2 * ho:  # an odd height: the last row is read by no window
            dx_pairs[p, 2 * ho:] = 0


def _planes(a: np.ndarray) -> tuple[np.ndarray, bool]:
    """(N, C, H, W) as C-contiguous (P, H, W) planes in memory order, and whether that order is channel-major."""
    if is_channel_major(a):
        return a.transpose(1, 0, 2, 3).reshape(-1, *a.shape[2:]), True
    return np.ascontiguousarray(a).reshape(-1, *a.shape[2:]), False


def _unplanes(p: np.ndarray, n: int, c: int, channel_major: bool) -> np.ndarray:
    if channel_major:
        return p.reshape(c, n, *p.shape[1:]).transpose(1, 0, 2, 3)
    return p.reshape(n, c, *p.shape[1:])


def supported(kernel_size: IntPair, stride: IntPair, padding: IntPair, dilation: IntPair = (1, 1),
              ceil_mode: bool = False) -> bool:
    """Whether the compiled path covers this pooling: 2x2 windows at stride 2 without padding or dilation (the
    pooling of LeNet-style and most small CNNs), floor mode (``ceil_mode`` adds a window that hangs over an odd
    edge, which the kernels do not clip; with even sizes it changes nothing, and the caller may pass False then);
    others run the NumPy kernels."""
    return not ceil_mode and (tuple(kernel_size), tuple(stride), tuple(padding), tuple(dilation)) == (
        (2, 2), (2, 2), (0, 0), (1, 1))


def max_pool2d_argmax(x: np.ndarray, kernel_size: IntPair, stride: IntPair, padding: IntPair,
                      dilation: IntPair = (1, 1), ceil_mode: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """y (N, C, Ho, Wo) in x's dtype and the winning tap of each window (uint8), both laid out like x's planes;
    y equals ``max_pool2d_forward(...)[0]``. Only for what :func:`supported` accepts."""
    check_4d(x.shape, "max_pool2d")
    if not supported(kernel_size, stride, padding, dilation, ceil_mode):
        raise ValueError(f"max_pool2d_argmax: compiled for 2x2 windows at stride 2 only, got kernel {kernel_size}, "
                         f"stride {stride}, padding {padding}, dilation {dilation}, ceil_mode {ceil_mode}")
    (ho, wo), _ = pool_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    n, c = x.shape[:2]
    xp, channel_major = _planes(x)
    y = np.empty((xp.shape[0], ho, wo), dtype=x.dtype)
    arg = np.empty((xp.shape[0], ho, wo), dtype=np.uint8)
    blocks = parallel.cache_blocks(xp.shape[0], xp[0].nbytes)  # planes in L2-sized blocks over numcnn's threads
    parallel.run(lambda b: _forward_2x2(xp, y, arg, *b), blocks, blas=False)
    return _unplanes(y, n, c, channel_major), _unplanes(arg, n, c, channel_major)


def max_pool2d_backward_argmax(dy: np.ndarray, arg: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """dx (N, C, H, W) in dy's dtype: each dy at its window's winning tap (``arg`` from the forward), 0 elsewhere.

    dx is laid out like the forward's input (``arg`` is): the ReLU and batch norm before the pooling then see their
    gradient in their own layout. A dy in the other memory order (the pooled map flattened for a Linear layer
    comes back NCHW) is copied to arg's order first, a quarter of dx's size.
    """
    n, c, h, w = x_shape
    argp, channel_major = _planes(arg)
    if is_channel_major(dy) == channel_major:
        dyp = _planes(dy)[0]
    else:  # dy and arg in different memory orders: bring dy to arg's
        dyp = np.ascontiguousarray(dy.transpose(1, 0, 2, 3) if channel_major else dy).reshape(argp.shape)
    dx = np.empty((dyp.shape[0], h, w), dtype=dy.dtype)
    blocks = parallel.cache_blocks(dx.shape[0], dx[0].nbytes)
    if dx.dtype == np.float32 and w % 2 == 0 and w == 2 * dyp.shape[2] and sys.byteorder == "little":
        dy_bits, dx_pairs = dyp.view(np.uint32), dx.view(np.uint64)
        parallel.run(lambda b: _backward_2x2_pairs(dy_bits, argp, dx_pairs, *b), blocks, blas=False)
    else:
        parallel.run(lambda b: _backward_2x2(dyp, argp, dx, *b), blocks, blas=False)
    return _unplanes(dx, n, c, channel_major)
