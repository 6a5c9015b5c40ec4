"""Max pooling without indices, the training path: the maxima only, and a backward that finds the arg-max again.

Training needs no int64 index per output (``max_indices.py``): the forward here keeps only y, and the backward
compares each window offset of x with y and gives the window's gradient to the first offset that equals its
maximum, in raster order: the element PyTorch's index names. When some window's maximum is NaN, or -inf with
padding (there PyTorch's rule picks another element), the whole backward takes the index path instead.

Both passes work in blocks of whole planes (a range of N, or of C for a channel-major input) of about
``parallel.CACHE_BLOCK_BYTES`` each, shared out over threads: the kh*kw passes over a block then find it in a
core's L2 cache. Every plane is computed alone, so the blocks and the thread count never change a bit.
"""

from __future__ import annotations

import numpy as np

from .. import parallel
from ..layout import channel_major_empty, is_channel_major
from .geometry import IntPair, check_4d, pad_plane, pool_geometry, window_view
from .max_indices import max_pool2d_backward, max_pool2d_forward

__all__ = ["max_pool2d_backward_from_values", "max_pool2d_values"]


def max_pool2d_values(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    dilation: IntPair = (1, 1),
    ceil_mode: bool = False,
) -> np.ndarray:
    """The maxima of 2-D max pooling without their positions: y (N, C, Ho, Wo) in x's dtype, equal to
    ``max_pool2d_forward(...)[0]``. A running ``np.maximum`` over the kh*kw strided window views; the
    result keeps x's memory order. Pair it with ``max_pool2d_backward_from_values`` for training.
    """
    check_4d(x.shape, "max_pool2d")
    (kh, kw), (dh, dw) = kernel_size, dilation
    (ho, wo), padded_hw = pool_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    axis, blocks = _plane_blocks(x)
    y = _empty_planes(x, (ho, wo), axis)
    lead = (slice(None),) * axis

    def block(bounds):
        sl = lead + (slice(*bounds),)
        xp = pad_plane(x[sl], padding, padded_hw, -np.inf)
        views = [window_view(xp, i * dh, j * dw, (ho, wo), stride) for i in range(kh) for j in range(kw)]
        out = y[sl]
        if len(views) == 1:
            np.copyto(out, views[0])
            return
        np.maximum(views[0], views[1], out=out)
        for v in views[2:]:
            np.maximum(out, v, out=out)  # NaN-propagating, like PyTorch's `val > max || isnan(val)`

    parallel.run(block, blocks, blas=False)
    return y


def _plane_blocks(x: np.ndarray) -> tuple[int, list[tuple[int, int]]]:
    """The outer memory axis of x (N, C, H, W) (1 for a (C, N, H, W) buffer seen as NCHW, else 0) and ranges
    of it of about ``parallel.CACHE_BLOCK_BYTES`` of input each, so that the kernel's several passes over a
    block (one per window offset, more in backward) find it in a core's L2 cache. Per-plane work: blocks never
    change a bit."""
    axis = 1 if is_channel_major(x) else 0
    return axis, parallel.cache_blocks(x.shape[axis], x.size // max(1, x.shape[axis]) * x.itemsize)


def _empty_planes(x: np.ndarray, hw: IntPair, axis: int, dtype=None) -> np.ndarray:
    """An uninitialised (N, C, *hw) array laid out like x's planes ((C, N, ...) memory when axis == 1)."""
    shape, dtype = (*x.shape[:2], *hw), x.dtype if dtype is None else dtype
    return channel_major_empty(shape, dtype) if axis == 1 else np.empty(shape, dtype=dtype)


_MASK_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def max_pool2d_backward_from_values(
    dy: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    dilation: IntPair = (1, 1),
    ceil_mode: bool = False,
) -> np.ndarray:
    """Gradient of max pooling recomputed from its input x and output y, without stored indices.

    dy, y: (N, C, Ho, Wo); x: (N, C, H, W). Returns dx like x (fresh, in x's memory order), equal to
    ``max_pool2d_backward(dy, max_pool2d_forward(x, ...)[1], x.shape)``: each window's gradient goes to the
    first element equal to its maximum in raster order. Windows whose maximum is NaN (PyTorch picks the
    last NaN) or, with padding, -inf (PyTorch skips padding positions) fall back to the index path.
    """
    check_4d(x.shape, "max_pool2d_backward")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    if np.isnan(y).any() or ((ph or pw) and (y == -np.inf).any()):
        _, idx = max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode)
        return max_pool2d_backward(dy, idx, x.shape)
    (ho, wo), padded_hw = pool_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    h, w = x.shape[-2:]
    offsets = [(i * dh, j * dw) for i in range(kh) for j in range(kw)]
    # Windows tile the input without overlap when each stride covers its dilated kernel: every input
    # element then gets at most one gradient, and each offset's share can be written instead of added.
    tiled = sh >= dh * (kh - 1) + 1 and sw >= dw * (kw - 1) + 1 and (dh, dw) == (1, 1)
    exact = tiled and (ph, pw) == (0, 0) and (sh, sw) == (kh, kw) and (h, w) == (ho * kh, wo * kw)
    uint = _MASK_UINT[dy.dtype.itemsize]
    axis, blocks = _plane_blocks(x)
    dx = _empty_planes(x, (h, w), axis, dy.dtype)
    lead = (slice(None),) * axis

    def block(bounds):
        sl = lead + (slice(*bounds),)
        xp = pad_plane(x[sl], padding, padded_hw, -np.inf)
        yb, dy_bits = y[sl], dy[sl].view(uint)
        # every element is written below when windows tile x exactly; else a zeroed padded buffer
        dxp = dx[sl] if exact else np.zeros(xp.shape, dtype=dy.dtype)
        _give_first_max(dxp, xp, yb, dy_bits, offsets, (ho, wo), (sh, sw), tiled)
        if not exact:
            dx[sl] = dxp[..., ph : ph + h, pw : pw + w]

    parallel.run(block, blocks, blas=False)
    return dx


def _give_first_max(
    dxp: np.ndarray,
    xp: np.ndarray,
    yb: np.ndarray,
    dy_bits: np.ndarray,
    offsets: list[IntPair],
    out_hw: IntPair,
    stride: IntPair,
    tiled: bool,
) -> None:
    """Give each window's gradient to the first element of the padded block xp equal to its maximum yb.

    dy_bits is the block's dy viewed as unsigned integers of its width; dxp (xp's shape, dy's dtype) receives
    the gradient at each window offset in turn: written when the windows tile the input (``tiled``), else added.
    """
    uint = dy_bits.dtype
    unseen = None
    for o, (oi, oj) in enumerate(offsets):
        # First maximum in raster order: a window hits at the first offset whose value equals its max.
        if o == len(offsets) - 1 and unseen is not None:
            hit = unseen  # no NaN: some offset holds the max, and it is the only one left
        else:
            hit = np.equal(window_view(xp, oi, oj, out_hw, stride), yb)
            if unseen is None:
                unseen = np.logical_not(hit)
            else:
                hit &= unseen
                unseen ^= hit
        # dy where hit, else +0.0, as bit masks: exact for every value and no per-element branch.
        mask = hit.view(np.uint8).astype(uint)
        np.negative(mask, out=mask)
        target = window_view(dxp, oi, oj, out_hw, stride)
        if tiled:
            np.bitwise_and(mask, dy_bits, out=target.view(uint))
        else:
            target += np.bitwise_and(mask, dy_bits, out=mask).view(dxp.dtype)
