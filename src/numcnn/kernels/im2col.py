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


def _padded(x: np.ndarray, padding: Padding2d) -> np.ndarray:
    (top, bottom), (left, right) = padding
    if top == bottom == left == right == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))


def _im2col(
    x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Padding2d, dilation: Pair, out_hw: Pair
) -> np.ndarray:
    """im2col keeping only the first ``out_hw`` output positions (a transposed conv can need fewer)."""
    n, c = x.shape[:2]
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel_size, stride, dilation, out_hw
    # One read-only view: every window of the dilated kernel's extent, at every padded pixel.
    win = sliding_window_view(_padded(x, padding), (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    # Stride picks the window origins, dilation picks the taps inside each window: still a view.
    win = win[:, :, : sh * (ho - 1) + 1 : sh, : sw * (wo - 1) + 1 : sw, ::dh, ::dw]
    # (N, C, Ho, Wo, R, S) -> (C, R, S, N, Ho, Wo); the reshape is the single copy.
    return win.transpose(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, n * ho * wo)


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
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel_size, stride, dilation, out_hw
    (top, bottom), (left, right) = padding
    cols6 = cols.reshape(c, kh, kw, n, ho, wo)
    # The buffer is (C, N, H, W) like the columns, so each slice-add reads its source contiguously
    # (about 25% faster than an NCHW buffer); the caller gets an (N, C, H, W) view of it.
    dx = np.zeros((c, n, h + top + bottom, w + left + right), dtype=cols.dtype)
    # Each kernel tap (r, s) sends every column to one strided sub-grid of the padded input; the taps
    # overlap each other, so they are added one at a time (R*S slice-adds, no np.add.at).
    for r in range(kh):
        rows = slice(r * dh, r * dh + sh * (ho - 1) + 1, sh)
        for s in range(kw):
            dx[:, :, rows, s * dw : s * dw + sw * (wo - 1) + 1 : sw] += cols6[:, r, s]
    # Gradient that landed on the padding belongs to no input pixel.
    return dx[:, :, top : top + h, left : left + w].transpose(1, 0, 2, 3)


def _output_hw(x_shape: tuple[int, ...], kernel_size: Pair, stride: Pair, padding: Padding2d, dilation: Pair):
    return tuple(
        conv_output_size(x_shape[2 + i], kernel_size[i], stride[i], sum(padding[i]), dilation[i])
        for i in range(2)
    )


def im2col(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Padding2d, dilation: Pair) -> np.ndarray:
    """Unfold every receptive field of ``x`` into a column.

    x: (N, C, H, W), any float dtype. kernel_size (R, S), stride (sh, sw), dilation (dh, dw), padding
    ((top, bottom), (left, right)) with zeros. Returns cols: (C*R*S, N*Ho*Wo), same dtype as x, laid out
    as described in the module docstring. Built from a strided view of the padded input and one copy.
    The result may be a read-only view of ``x`` when no copy is needed (a 1x1 kernel, stride 1, N=1).
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
    a (C, N, H+pad, W+pad) buffer, not C-contiguous), such that
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
