"""The shape arithmetic of 2-D pooling, shared by every pooling kernel.

A window of size (kh, kw) with stride (sh, sw), padding (ph, pw) and dilation (dh, dw) slides over the (H, W)
plane of an (N, C, H, W) input; PyTorch's rule gives the number of windows along each axis
(:func:`pool_output_size`). The kernels never loop over windows: they loop over the kh*kw offsets inside a
window, and at each offset take the strided view of the (padded) plane that holds that offset of every window
(:func:`window_view`).
"""

from __future__ import annotations

import numpy as np

IntPair = tuple[int, int]

__all__ = ["IntPair", "check_4d", "pad_plane", "pool_geometry", "pool_output_size", "window_view"]


def pool_output_size(
    size: int, kernel: int, stride: int, pad: int, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """Number of pooling windows along one spatial axis, by PyTorch's rule.

    ``floor((size + 2*pad - dilation*(kernel-1) - 1) / stride) + 1`` (``ceil`` with ``ceil_mode``); in
    ``ceil_mode`` the last window must start inside the input or the left padding, else it is dropped.
    Raises ``ValueError`` for non-positive kernel/stride/dilation, negative padding, ``pad > kernel // 2``
    or an output smaller than 1.
    """
    if kernel < 1 or stride < 1 or dilation < 1:
        raise ValueError(
            f"pooling: kernel, stride and dilation must be positive, got kernel={kernel}, "
            f"stride={stride}, dilation={dilation}"
        )
    if pad < 0 or pad > kernel // 2:
        raise ValueError(
            f"pooling: padding must be between 0 and half the kernel size, got padding={pad} "
            f"for kernel={kernel}"
        )
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    if ceil_mode:
        span += stride - 1
    out = span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    if out < 1:
        raise ValueError(
            f"pooling: input size {size} is too small for kernel={kernel}, stride={stride}, "
            f"padding={pad}, dilation={dilation} (output size {out})"
        )
    return out


def window_view(a: np.ndarray, start_h: int, start_w: int, out_hw: IntPair, stride: IntPair) -> np.ndarray:
    """Strided view ``a[..., start_h + sh*i, start_w + sw*j]`` of shape ``(..., Ho, Wo)``."""
    (ho, wo), (sh, sw) = out_hw, stride
    return a[..., start_h : start_h + sh * (ho - 1) + 1 : sh, start_w : start_w + sw * (wo - 1) + 1 : sw]


def pad_plane(x: np.ndarray, pad: IntPair, padded_hw: IntPair, fill: float) -> np.ndarray:
    """x (N, C, H, W) padded to ``padded_hw`` with ``pad`` rows/cols in front; x itself if nothing to pad."""
    (ph, pw), (hp, wp) = pad, padded_hw
    h, w = x.shape[-2:]
    if ph == 0 and pw == 0 and hp == h and wp == w:
        return x
    xp = np.full(x.shape[:-2] + (hp, wp), fill, dtype=x.dtype)
    xp[..., ph : ph + h, pw : pw + w] = x
    return xp


def check_4d(x_shape: tuple[int, ...], name: str) -> None:
    """A ValueError naming ``name`` unless x_shape is (N, C, H, W)."""
    if len(x_shape) != 4:
        raise ValueError(f"{name}: expected an (N, C, H, W) input, got shape {tuple(x_shape)}")


def pool_geometry(
    x_shape: tuple[int, ...],
    kernel_size: IntPair,
    stride: IntPair,
    padding: IntPair,
    dilation: IntPair,
    ceil_mode: bool,
) -> tuple[IntPair, IntPair]:
    """Output size (Ho, Wo) and the padded plane size (Hp, Wp) that holds every window."""
    out, padded = [], []
    for n, k, s, p, d in zip(x_shape[-2:], kernel_size, stride, padding, dilation, strict=True):
        o = pool_output_size(n, k, s, p, d, ceil_mode)
        out.append(o)
        # With ceil_mode the last window may reach past the right padding; pad far enough to slice it.
        padded.append(max(n + 2 * p, (o - 1) * s + d * (k - 1) + 1))
    return (out[0], out[1]), (padded[0], padded[1])
