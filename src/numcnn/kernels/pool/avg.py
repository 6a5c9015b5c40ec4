"""Average pooling: each window's sum divided by PyTorch's divisor, and the gradient spread back evenly.

The window sums are separable: kh strided row adds, then kw strided column adds (kh + kw passes over the data,
not kh * kw). The backward is the transpose of the same two steps, or a broadcast when the windows tile the
input exactly.
"""

from __future__ import annotations

import numpy as np

from .. import jit
from . import avg_compiled
from .geometry import IntPair, check_4d, pad_plane, pool_geometry, window_view

__all__ = ["avg_pool2d_backward", "avg_pool2d_forward"]


def _avg_divisor(
    x_shape: tuple[int, ...],
    out_hw: IntPair,
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    count_include_pad: bool,
    divisor_override: int | None,
    dtype: np.dtype,
) -> np.ndarray:
    """Divisor of each output window, (Ho, Wo) in ``dtype`` (or a 0-d array when it is uniform)."""
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError("avg_pool2d: divisor_override must not be zero")
        return np.asarray(divisor_override, dtype=dtype)
    counts = []
    for n, o, k, s, p in zip(x_shape[-2:], out_hw, kernel_size, stride, padding, strict=True):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)  # PyTorch clips windows at the end of the right padding
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        counts.append(end - start)
    div = counts[0][:, None] * counts[1][None, :]
    if (div == div.flat[0]).all():
        return np.asarray(div.flat[0], dtype=dtype)
    return div.astype(dtype)


def avg_pool2d_forward(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """2-D average pooling. x: (N, C, H, W) float -> y (N, C, Ho, Wo), same dtype.

    Same divisor rules as ``torch.nn.functional.avg_pool2d``: the window size clipped to the padded input
    (``count_include_pad=True``), the number of real input elements (``False``), or ``divisor_override``.
    """
    check_4d(x.shape, "avg_pool2d")
    if avg_compiled.supported(x.shape, x.dtype, kernel_size, stride, padding, ceil_mode, divisor_override) and (
            jit.use_compiled()):
        return avg_compiled.avg_pool2d_forward_2x2(x)
    (kh, kw), (sh, sw) = kernel_size, stride
    (ho, wo), (hp, wp) = pool_geometry(x.shape, kernel_size, stride, padding, (1, 1), ceil_mode)
    xp = pad_plane(x, padding, (hp, wp), 0.0)
    # Separable window sum: kh adds over rows, then kw adds over columns (kh + kw passes, not kh * kw).
    # Without padding the views are the reshape x.reshape(N, C, Ho, kh, Wo, kw) itself: no copy.
    rows = xp[..., 0 : sh * (ho - 1) + 1 : sh, :].copy()
    for i in range(1, kh):
        rows += xp[..., i : i + sh * (ho - 1) + 1 : sh, :]
    y = window_view(rows, 0, 0, (ho, wo), (1, sw)).copy()
    for j in range(1, kw):
        y += window_view(rows, 0, j, (ho, wo), (1, sw))
    y /= _avg_divisor(
        x.shape, (ho, wo), kernel_size, stride, padding, count_include_pad, divisor_override, x.dtype
    )
    return y


def avg_pool2d_backward(
    dy: np.ndarray,
    x_shape: tuple[int, ...],
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """Gradient of ``avg_pool2d_forward``. dy: (N, C, Ho, Wo) -> dx with shape x_shape, dy's dtype."""
    check_4d(x_shape, "avg_pool2d_backward")
    if avg_compiled.supported(x_shape, dy.dtype, kernel_size, stride, padding, ceil_mode, divisor_override) and (
            jit.use_compiled()):
        return avg_compiled.avg_pool2d_backward_2x2(dy, x_shape)
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    h, w = x_shape[-2:]
    (ho, wo), (hp, wp) = pool_geometry(x_shape, kernel_size, stride, padding, (1, 1), ceil_mode)
    g = dy / _avg_divisor(
        x_shape, (ho, wo), kernel_size, stride, padding, count_include_pad, divisor_override, dy.dtype
    )
    nc = tuple(x_shape[:2])
    if (kh, kw) == (sh, sw) and (ph, pw) == (0, 0) and (h, w) == (ho * kh, wo * kw):
        # Non-overlapping tiling: every input pixel receives exactly one g value.
        tiled = np.broadcast_to(g[:, :, :, None, :, None], nc + (ho, kh, wo, kw))
        return tiled.reshape(x_shape)
    # Transpose of the separable sum: spread over columns, then over rows.
    rows = np.zeros(nc + (ho, wp), dtype=dy.dtype)
    for j in range(kw):
        window_view(rows, 0, j, (ho, wo), (1, sw))[...] += g
    dxp = np.zeros(nc + (hp, wp), dtype=dy.dtype)
    for i in range(kh):
        dxp[..., i : i + sh * (ho - 1) + 1 : sh, :] += rows
    if (hp, wp) == (h, w):
        return dxp
    return np.ascontiguousarray(dxp[..., ph : ph + h, pw : pw + w])
