"""Convolution geometry, and the im2col / col2im pair that turns a convolution into one GEMM.

Layout of the column matrix (shared by every im2col kernel in numcnn)::

    cols[(c, r, s), (n, oh, ow)] = x_padded[n, c, oh*sh + r*dh, ow*sw + s*dw]

Rows are channel-major (c, then kernel row r, then kernel column s), so a weight (K, C, R, S) reshaped to
(K, C*R*S) multiplies it directly and the rows of one group of channels are contiguous. Columns are
batch-major, so the GEMM output (K, N*Ho*Wo) reshapes to (K, N, Ho, Wo) without a copy.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import workspace

Pair = tuple[int, int]
Padding2d = tuple[Pair, Pair]

__all__ = ["Padding2d", "col2im", "conv_output_size", "im2col", "same_padding"]


def conv_output_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    """Number of output positions along one axis (PyTorch's formula, floor division).

    ``pad_total`` is the sum of the padding on both sides. The result may be <= 0 when the dilated kernel
    does not fit in the padded input; callers decide whether that is an error.
    """
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def same_padding(kernel_size: Pair, dilation: Pair = (1, 1)) -> Padding2d:
    """Explicit ((top, bottom), (left, right)) padding for PyTorch's ``padding='same'`` at stride 1.

    The total padding d*(k-1) is split like PyTorch: the smaller half first, so an even kernel puts the
    extra row at the bottom and the extra column at the right.
    """
    pads = []
    for k, d in zip(kernel_size, dilation, strict=True):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    return (pads[0], pads[1])


def _tap_range(size: int, out: int, offset: int, stride: int, pad_before: int) -> tuple[int, int, int]:
    """Output positions [lo, hi) whose input index ``o*stride - pad_before + offset`` lies inside [0, size),
    and the input index of position lo. Empty (lo >= hi) when the tap only ever sees padding."""
    first = pad_before - offset
    lo = max(0, -(-first // stride))
    hi = min(out, (size - 1 + pad_before - offset) // stride + 1)
    return lo, hi, lo * stride - pad_before + offset


def _channel_major(x: np.ndarray) -> bool:
    """Whether x (N, C, H, W) is a view of (C, N, H, W) memory, as conv2d_forward's output is."""
    return x.shape[0] > 1 and x.shape[1] > 1 and x.strides[1] > x.strides[0]


def _im2col_into(
    x: np.ndarray,
    kernel_size: Pair,
    stride: Pair,
    padding: Padding2d,
    dilation: Pair,
    out_hw: Pair,
    out: np.ndarray,
) -> np.ndarray:
    """Write the columns of x (first ``out_hw`` output positions only) into ``out``, a C-contiguous
    (C*R*S, N*Ho*Wo) array of x's dtype, and return it. Scratch memory comes from the workspace pool."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel_size, stride, dilation, out_hw
    (top, bottom), (left, right) = padding
    pad_buf = None
    xp = x
    if top or bottom or left or right:
        hp, wp = h + top + bottom, w + left + right
        # The padded copy keeps x's memory order, so both the copy and the window reads below run along
        # contiguous rows whether x is plain NCHW or a conv output's (C, N, H, W) memory.
        if _channel_major(x):
            pad_buf = workspace.take((c, n, hp, wp), x.dtype)
            xp = pad_buf.transpose(1, 0, 2, 3)
        else:
            pad_buf = workspace.take((n, c, hp, wp), x.dtype)
            xp = pad_buf
        # A pooled buffer holds stale values: only the border must be zero, the interior is overwritten.
        xp[:, :, :top] = 0
        xp[:, :, hp - bottom :] = 0
        xp[:, :, top : top + h, :left] = 0
        xp[:, :, top : top + h, wp - right :] = 0
        xp[:, :, top : top + h, left : left + w] = x
    # One read-only view: every window of the dilated kernel's extent, at every padded pixel.
    win = sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    # Stride picks the window origins, dilation picks the taps inside each window: still a view.
    win = win[:, :, : sh * (ho - 1) + 1 : sh, : sw * (wo - 1) + 1 : sw, ::dh, ::dw]
    # (N, C, Ho, Wo, R, S) -> (C, R, S, N, Ho, Wo): the single copy.
    out.reshape(c, kh, kw, n, ho, wo)[...] = win.transpose(1, 4, 5, 0, 2, 3)
    workspace.give(pad_buf)
    return out


def _im2col(
    x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Padding2d, dilation: Pair, out_hw: Pair
) -> np.ndarray:
    """im2col keeping only the first ``out_hw`` output positions (a transposed conv can need fewer).
    Returns a fresh array."""
    n, c = x.shape[:2]
    out = np.empty((c * kernel_size[0] * kernel_size[1], n * out_hw[0] * out_hw[1]), dtype=x.dtype)
    return _im2col_into(x, kernel_size, stride, padding, dilation, out_hw, out)


def _col2im_add(
    cols: np.ndarray,
    dx: np.ndarray,
    kernel_size: Pair,
    stride: Pair,
    padding: Padding2d,
    dilation: Pair,
    out_hw: Pair,
) -> None:
    """dx += col2im(cols): dx is a (C, N, H, W) array (any strides), cols (C*R*S, N*Ho*Wo) C-contiguous."""
    c, n, h, w = dx.shape
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel_size, stride, dilation, out_hw
    (top, _), (left, _) = padding
    cols6 = cols.reshape(c, kh, kw, n, ho, wo)
    # Each kernel tap (r, s) sends its columns to one strided sub-grid of the input; the taps overlap, so
    # they are added one at a time (R*S slice-adds, never np.add.at). Positions that fall on the padding
    # are clipped away here instead of being summed into a padded buffer and cropped.
    for r in range(kh):
        i0, i1, ih = _tap_range(h, ho, r * dh, sh, top)
        if i0 >= i1:
            continue
        rows = slice(ih, ih + sh * (i1 - i0 - 1) + 1, sh)
        for s in range(kw):
            j0, j1, iw = _tap_range(w, wo, s * dw, sw, left)
            if j0 < j1:
                dx[:, :, rows, iw : iw + sw * (j1 - j0 - 1) + 1 : sw] += cols6[:, r, s, :, i0:i1, j0:j1]


def _col2im(
    cols: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kernel_size: Pair,
    stride: Pair,
    padding: Padding2d,
    dilation: Pair,
    out_hw: Pair,
) -> np.ndarray:
    """col2im for columns that cover the first ``out_hw`` output positions (see ``_im2col``)."""
    n, c, h, w = x_shape
    # The buffer is (C, N, H, W) like the columns, so each slice-add reads its source contiguously
    # (about 25% faster than an NCHW buffer); the caller gets an (N, C, H, W) view of it.
    dx = np.zeros((c, n, h, w), dtype=cols.dtype)
    _col2im_add(np.ascontiguousarray(cols), dx, kernel_size, stride, padding, dilation, out_hw)
    return dx.transpose(1, 0, 2, 3)


def _output_hw(x_shape: tuple[int, ...], kernel_size: Pair, stride: Pair, padding: Padding2d, dilation: Pair):
    return tuple(
        conv_output_size(x_shape[2 + i], kernel_size[i], stride[i], sum(padding[i]), dilation[i])
        for i in range(2)
    )


def im2col(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Padding2d, dilation: Pair) -> np.ndarray:
    """Unfold every receptive field of ``x`` into a column.

    x: (N, C, H, W), any float dtype. kernel_size (R, S), stride (sh, sw), dilation (dh, dw), padding
    ((top, bottom), (left, right)) with zeros. Returns cols: (C*R*S, N*Ho*Wo), same dtype as x, laid out
    as described in the module docstring. Built from a strided view of the padded input and one copy into
    a fresh array.
    """
    ho, wo = _output_hw(x.shape, kernel_size, stride, padding, dilation)
    if ho <= 0 or wo <= 0:
        raise ValueError(f"im2col: the kernel does not fit in the padded input (output size {ho}x{wo})")
    return _im2col(x, kernel_size, stride, padding, dilation, (ho, wo))


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kernel_size: Pair,
    stride: Pair,
    padding: Padding2d,
    dilation: Pair,
) -> np.ndarray:
    """The adjoint of ``im2col``: sum every column entry back onto the input pixel it was read from.

    cols: (C*R*S, N*Ho*Wo); x_shape (N, C, H, W). Returns dx: (N, C, H, W), same dtype as cols (a view of
    a (C, N, H, W) buffer, not C-contiguous), such that
    <im2col(x), cols> == <x, col2im(cols)> for every x. Pixels read by no window (stride > kernel, or the
    bottom/right rows a floor-divided stride skips) get 0.
    """
    ho, wo = _output_hw(x_shape, kernel_size, stride, padding, dilation)
    expected = (x_shape[1] * kernel_size[0] * kernel_size[1], x_shape[0] * ho * wo)
    if cols.shape != expected:
        raise ValueError(
            f"col2im: expected cols of shape {expected} for x_shape {tuple(x_shape)}, got {cols.shape}"
        )
    return _col2im(cols, tuple(x_shape), kernel_size, stride, padding, dilation, (ho, wo))
