"""Max pooling as PyTorch defines it: the maxima with the position of each, and the gradient scattered back there.

``max_pool2d(..., return_indices=True)`` returns, for every window, the flat position ``h * W + w`` inside its
input plane of the element that won: padding never wins, ties go to the first maximum in window raster order,
a NaN is the maximum (the last NaN of the window gives the index). The backward adds each output gradient at
its index. This is the reference for the index-free pair of ``max_values.py``, and what ``return_indices``
callers get.
"""

from __future__ import annotations

import numpy as np

from .geometry import IntPair, check_4d, pad_plane, pool_geometry, window_view

__all__ = ["max_pool2d_backward", "max_pool2d_forward"]


def max_pool2d_forward(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    dilation: IntPair = (1, 1),
    ceil_mode: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """2-D max pooling.

    x: (N, C, H, W) float. Returns ``y`` (N, C, Ho, Wo) in x's dtype and ``indices`` (N, C, Ho, Wo) int64,
    the flat position ``h * W + w`` of each maximum inside its input plane, exactly as
    ``torch.nn.functional.max_pool2d(..., return_indices=True)``: padding never wins, ties go to the first
    maximum in window raster order, a NaN is the maximum (the last NaN of the window gives the index).
    """
    check_4d(x.shape, "max_pool2d")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    (ho, wo), padded_hw = pool_geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    H, W = x.shape[-2:]
    xp = pad_plane(x, (ph, pw), padded_hw, -np.inf)
    offsets = [(i * dh, j * dw) for i in range(kh) for j in range(kw)]
    views = [window_view(xp, oi, oj, (ho, wo), (sh, sw)) for oi, oj in offsets]

    y = views[0].copy()
    for v in views[1:]:
        np.maximum(y, v, out=y)  # NaN-propagating, like PyTorch's `val > max || isnan(val)`

    # Offset number of the first element equal to the maximum, in raster order (PyTorch's tie rule).
    code_dtype = np.uint8 if len(offsets) < 256 else np.int32
    code = np.zeros(y.shape, dtype=code_dtype)
    not_found = np.ones(y.shape, dtype=bool)
    hit = np.empty(y.shape, dtype=bool)
    for o, v in enumerate(views):
        np.equal(v, y, out=hit)
        hit &= not_found
        not_found ^= hit
        if o:
            code += hit * code_dtype(o)
    if np.isnan(y).any():
        # PyTorch keeps replacing the max by every NaN it meets, so the last NaN's offset wins.
        for o, v in enumerate(views):
            code[np.isnan(v)] = o

    row0 = np.arange(ho) * sh - ph  # top-left corner of each window in input coordinates
    col0 = np.arange(wo) * sw - pw
    offset_flat = np.array([oi * W + oj for oi, oj in offsets], dtype=np.int64)
    indices = offset_flat[code]
    indices += row0[:, None] * W + col0[None, :]

    neg_inf = y == -np.inf
    if neg_inf.any():
        # A window whose valid elements are all -inf (or that has none) reports its first valid
        # position, as PyTorch does, rather than a padding position.
        first_r = row0 + np.maximum(-row0 + dh - 1, 0) // dh * dh
        first_c = col0 + np.maximum(-col0 + dw - 1, 0) // dw * dw
        first = first_r[:, None] * W + first_c[None, :]
        np.copyto(indices, np.broadcast_to(first, indices.shape), where=neg_inf)
    return y, indices


def max_pool2d_backward(dy: np.ndarray, indices: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """Gradient of max pooling: each ``dy`` element is added to the input position its index names.

    dy: (N, C, Ho, Wo); indices: (N, C, Ho, Wo) int64 from ``max_pool2d_forward``; x_shape: (N, C, H, W).
    Returns dx (N, C, H, W) in dy's dtype; overlapping windows accumulate.
    """
    check_4d(x_shape, "max_pool2d_backward")
    n, c, h, w = x_shape
    plane = h * w
    idx = indices.reshape(n * c, -1)
    flat = idx + (np.arange(n * c, dtype=np.int64) * plane)[:, None]
    dx = np.zeros(n * c * plane, dtype=dy.dtype)
    g = dy.reshape(n * c, -1)
    inside = (idx >= 0) & (idx < plane)
    if not inside.all():
        # A dilated window lying wholly in the padding has no input element (its max is -inf): no gradient.
        flat, g = flat[inside], g[inside]
    # ufunc.at accumulates repeated indices (unlike fancy assignment) and stays in dy's dtype.
    np.add.at(dx, flat.ravel(), g.reshape(-1))
    return dx.reshape(x_shape)
