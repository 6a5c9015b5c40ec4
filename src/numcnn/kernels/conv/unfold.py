"""im2col and col2im: a convolution becomes one matrix product.

im2col copies every receptive field of x into a column::

    cols[(c, r, s), (n, oh, ow)] = x_padded[n, c, oh*sh + r*dh, ow*sw + s*dw]

Rows are channel-major (c, then kernel row r, then kernel column s), so the weight (K, C, R, S) reshaped to
(K, C*R*S) multiplies it directly, ``Y = W @ cols``, and the rows of one group of channels are contiguous. Columns
are batch-major, so the product (K, N*Ho*Wo) reshapes to (K, N, Ho, Wo) without a copy. col2im is its adjoint: it
adds every column entry back onto the pixel it was read from, which is how the gradient of the columns becomes
the gradient of x. Both loop over the R*S kernel taps only, never over pixels.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import workspace
from ..layout import is_channel_major
from .geometry import ConvGeometry, GeometryError, Padding2d, Pair

__all__ = ["col2im", "im2col", "im2col_into", "col2im_add"]


def im2col_into(geo: ConvGeometry, x: np.ndarray, out: np.ndarray, out_hw: Pair | None = None) -> np.ndarray:
    """Write the columns of x (a batch of any size with ``geo``'s channels and image size) into ``out``, a
    C-contiguous (C*R*S, N*Ho*Wo) array of x's dtype, and return it. ``out_hw`` keeps only the first output
    positions (a transposed conv can need fewer). Scratch memory comes from the workspace pool."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel_size, geo.stride, geo.dilation
    ho, wo = out_hw or geo.out_hw
    (top, bottom), (left, right) = geo.padding
    pad_buf = None
    xp = x
    if top or bottom or left or right:
        hp, wp = h + top + bottom, w + left + right
        # The padded copy keeps x's memory order, so both the copy and the window reads below run along
        # contiguous rows whether x is plain NCHW or a conv output's (C, N, H, W) memory.
        if is_channel_major(x):
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


def _tap_range(size: int, out: int, offset: int, stride: int, pad_before: int) -> tuple[int, int, int]:
    """Output positions [lo, hi) whose input index ``o*stride - pad_before + offset`` lies inside [0, size),
    and the input index of position lo. Empty (lo >= hi) when the tap only ever sees padding."""
    first = pad_before - offset
    lo = max(0, -(-first // stride))
    hi = min(out, (size - 1 + pad_before - offset) // stride + 1)
    return lo, hi, lo * stride - pad_before + offset


def col2im_add(geo: ConvGeometry, cols: np.ndarray, dx: np.ndarray, out_hw: Pair | None = None) -> None:
    """dx += col2im(cols): dx is a (C, N, H, W) array (any strides), cols (C*R*S, N*Ho*Wo) C-contiguous."""
    c, n, h, w = dx.shape
    (kh, kw), (sh, sw), (dh, dw) = geo.kernel_size, geo.stride, geo.dilation
    ho, wo = out_hw or geo.out_hw
    (top, _), (left, _) = geo.padding
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


def _geometry(x_shape, kernel_size: Pair, stride: Pair, padding: Padding2d, dilation: Pair, who: str):
    n, c = x_shape[:2]
    try:
        return ConvGeometry.of(x_shape, (1, c, *kernel_size), stride, padding, dilation)
    except GeometryError as e:
        raise e.named(who) from None


def im2col(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Padding2d, dilation: Pair) -> np.ndarray:
    """Unfold every receptive field of ``x`` into a column.

    x: (N, C, H, W), any float dtype; kernel_size (R, S); padding ((top, bottom), (left, right)) with zeros.
    Returns cols: (C*R*S, N*Ho*Wo), a fresh array of x's dtype laid out as the module docstring shows.
    """
    geo = _geometry(x.shape, kernel_size, stride, padding, dilation, "im2col")
    out = np.empty((geo.rows, geo.n * geo.out_hw[0] * geo.out_hw[1]), dtype=x.dtype)
    return im2col_into(geo, x, out)


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], kernel_size: Pair, stride: Pair,
           padding: Padding2d, dilation: Pair) -> np.ndarray:
    """The adjoint of ``im2col``: <im2col(x), cols> == <x, col2im(cols)> for every x.

    cols: (C*R*S, N*Ho*Wo); x_shape (N, C, H, W). Returns dx: (N, C, H, W) in cols' dtype (a view of a
    (C, N, H, W) buffer, so each slice-add reads its source contiguously). Pixels read by no window (stride >
    kernel, or the bottom/right rows a floor-divided stride skips) get 0.
    """
    geo = _geometry(x_shape, kernel_size, stride, padding, dilation, "col2im")
    expected = (geo.rows, geo.n * geo.out_hw[0] * geo.out_hw[1])
    if cols.shape != expected:
        raise ValueError(f"col2im: expected cols of shape {expected} for x_shape {tuple(x_shape)}, got {cols.shape}")
    n, c, h, w = geo.x_shape
    dx = np.zeros((c, n, h, w), dtype=cols.dtype)
    col2im_add(geo, np.ascontiguousarray(cols), dx)
    return dx.transpose(1, 0, 2, 3)
