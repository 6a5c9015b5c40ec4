"""Transposed convolution: the adjoint of a convolution, so its three passes are a convolution's passes with the
roles of input and output swapped.

conv_transpose2d of x (N, Cin, H, W) with w (Cin, Cout/G, R, S) is the grad-input of the conv2d (Cout -> Cin
channels, weight w, the same stride, padding, dilation and groups) whose *output* x would be. So its forward is
that conv's ``backward_input``, its grad-input is that conv's ``forward`` (of dy), and its grad-weight is that
conv's ``backward_weight`` with x as the output gradient and dy as the input.
"""

from __future__ import annotations

import numpy as np

from . import dispatch
from .geometry import GeometryError, Pair, transposed_geometry

__all__ = ["conv_transpose2d_backward_input", "conv_transpose2d_backward_weight", "conv_transpose2d_forward"]


def conv_transpose2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride: Pair = (1, 1),
                             padding: Pair = (0, 0), output_padding: Pair = (0, 0), dilation: Pair = (1, 1),
                             groups: int = 1, algorithm: str = "auto") -> np.ndarray:
    """As torch.nn.functional.conv_transpose2d: x (N, Cin, H, W), w (Cin, Cout/groups, R, S), b (Cout,) or None ->
    y (N, Cout, Hout, Wout) in x's dtype, Hout = (H-1)*sh - 2*ph + dh*(R-1) + oph + 1."""
    geo = transposed_geometry(x.shape, w.shape, stride, padding, output_padding, dilation, groups)
    y = dispatch.backward_input(geo, x, w, algorithm)
    if b is not None:
        y += b.astype(y.dtype, copy=False)[:, None, None]
    return y


def conv_transpose2d_backward_input(dy: np.ndarray, w: np.ndarray, x_shape, stride: Pair, padding: Pair,
                                    output_padding: Pair, dilation: Pair, groups: int,
                                    algorithm: str = "auto") -> np.ndarray:
    """dy (N, Cout, Hout, Wout) -> dx (N, Cin, H, W) in dy's dtype: the conv2d of dy, cropped to (H, W)
    (output_padding >= stride, allowed when dilation > stride, makes that conv's output larger than x)."""
    geo = transposed_geometry(x_shape, w.shape, stride, padding, output_padding, dilation, groups)
    if tuple(dy.shape) != geo.x_shape:
        raise GeometryError(f"expected dy of shape {geo.x_shape}, got {tuple(dy.shape)}", "conv_transpose2d backward")
    dx = dispatch.forward(geo, dy, w.astype(dy.dtype, copy=False), None, algorithm)
    return dx[:, :, : x_shape[2], : x_shape[3]]


def conv_transpose2d_backward_weight(dy: np.ndarray, x: np.ndarray, w_shape, stride: Pair, padding: Pair,
                                     output_padding: Pair, dilation: Pair, groups: int,
                                     algorithm: str = "auto") -> np.ndarray:
    """dy (N, Cout, Hout, Wout), x (N, Cin, H, W) -> dw w_shape (Cin, Cout/groups, R, S) in dy's dtype."""
    geo = transposed_geometry(x.shape, w_shape, stride, padding, output_padding, dilation, groups)
    return dispatch.backward_weight(geo, x.astype(dy.dtype, copy=False), dy, algorithm)
