"""The convolution as matrix products, the way the textbook derives it (whole batch at once).

With the column matrix of the input (``unfold.im2col``), cols (C*R*S, N*Ho*Wo), and the weight as a matrix
W (K, C*R*S), the three passes are three products (per group of channels when groups > 1):

    forward       Y     = W @ cols              (K, N*Ho*Wo) -> y (N, K, Ho, Wo)
    grad-input    dcols = W^T @ dY              (C*R*S, N*Ho*Wo) -> dx = col2im(dcols)
    grad-weight   dW    = dY @ cols^T           (K, C*R*S) -> dw (K, C/G, R, S)

where dY is dy (N, K, Ho, Wo) as a (K, N*Ho*Wo) matrix. This is all a convolution is; the other algorithms of this
package compute exactly these sums, only in an order that is kinder to caches and cores.
"""

from __future__ import annotations

import numpy as np

from .. import parallel
from ..layout import channel_rows
from .geometry import ConvGeometry
from .unfold import col2im_add, im2col_into

__all__ = ["backward_input", "backward_weight", "forward"]


def _columns(geo: ConvGeometry, x: np.ndarray, out_hw) -> np.ndarray:
    """cols (G, C/G*R*S, N*Ho*Wo) of x: the group is np.matmul's batch axis."""
    cols = np.empty((geo.rows, geo.n * out_hw[0] * out_hw[1]), dtype=x.dtype)
    return im2col_into(geo, x, cols, out_hw).reshape(geo.groups, geo.rows // geo.groups, -1)


def _dy_matrix(geo: ConvGeometry, dy: np.ndarray) -> np.ndarray:
    """dY (G, K/G, N*Ho*Wo)."""
    return channel_rows(dy)[0].reshape(geo.groups, geo.kg, -1)


def forward(geo: ConvGeometry, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """y (N, K, Ho, Wo) in x's dtype: a transposed view of the (K, N, Ho, Wo) product."""
    w_mat = w.astype(x.dtype, copy=False).reshape(geo.groups, geo.kg, -1)  # (G, K/G, C/G*R*S)
    y = parallel.matmul(w_mat, _columns(geo, x, geo.out_hw))  # (G, K/G, N*Ho*Wo)
    return y.reshape(geo.k, geo.n, *geo.out_hw).transpose(1, 0, 2, 3)


def backward_input(geo: ConvGeometry, dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """dx (N, C, H, W) in dy's dtype; dy may be smaller than the output (a transposed conv's crop)."""
    w_mat = w.astype(dy.dtype, copy=False).reshape(geo.groups, geo.kg, -1)
    dcols = parallel.matmul(w_mat.transpose(0, 2, 1), _dy_matrix(geo, dy))  # (G, C/G*R*S, N*Ho*Wo)
    n, c, h, wd = geo.x_shape
    dx = np.zeros((c, n, h, wd), dtype=dy.dtype)
    col2im_add(geo, dcols.reshape(geo.rows, -1), dx, dy.shape[2:])
    return dx.transpose(1, 0, 2, 3)


def backward_weight(geo: ConvGeometry, dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dw (K, C/G, R, S) in dy's dtype."""
    cols = _columns(geo, x.astype(dy.dtype, copy=False), dy.shape[2:])
    dw = parallel.matmul(_dy_matrix(geo, dy), cols.transpose(0, 2, 1))  # (G, K/G, C/G*R*S)
    return dw.reshape(geo.w_shape)
