"""The convolution as the textbook writes it: seven nested loops, one multiply-add at a time.

    y[n, k, oh, ow] = sum over c, r, s of  x[n, g*C/G + c, oh*sh - top + r*dh, ow*sw - left + s*dw] * w[k, c, r, s]

(g = the group of output channel k; taps that land on the zero padding add nothing). The forward pass, the
gradient with respect to the input and the gradient with respect to the weight are the same sum read three ways,
so all three walk the same loops (:func:`taps`) and differ in the one line that accumulates. Far too slow to train
with (a few million multiply-adds a second), they are the reference every fast algorithm is tested against.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .geometry import ConvGeometry

__all__ = ["backward_input", "backward_weight", "forward", "taps"]


def taps(geo: ConvGeometry, out_hw=None) -> Iterator[tuple[int, ...]]:
    """Every multiply of the convolution, as (n, k, oh, ow, ci, c, r, s, ih, iw): y[n, k, oh, ow] gets
    x[n, ci, ih, iw] * w[k, c, r, s]. ``out_hw`` limits the output positions (a cropped output gradient)."""
    (ho, wo), (sh, sw), (dh, dw) = out_hw or geo.out_hw, geo.stride, geo.dilation
    (top, _), (left, _) = geo.padding
    _, _, h, w = geo.x_shape
    for n in range(geo.n):
        for k in range(geo.k):
            first_channel = (k // geo.kg) * geo.cg
            for oh in range(ho):
                for ow in range(wo):
                    for c in range(geo.cg):
                        for r in range(geo.r):
                            ih = oh * sh - top + r * dh
                            for s in range(geo.s):
                                iw = ow * sw - left + s * dw
                                if 0 <= ih < h and 0 <= iw < w:
                                    yield n, k, oh, ow, first_channel + c, c, r, s, ih, iw


def forward(geo: ConvGeometry, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """y (N, K, Ho, Wo) in x's dtype."""
    y = np.zeros(geo.y_shape, dtype=x.dtype)
    for n, k, oh, ow, ci, c, r, s, ih, iw in taps(geo):
        y[n, k, oh, ow] += x[n, ci, ih, iw] * w[k, c, r, s]
    return y


def backward_input(geo: ConvGeometry, dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """dx (N, C, H, W) in dy's dtype: each multiply sends dy * w back to the input pixel it read."""
    dx = np.zeros(geo.x_shape, dtype=dy.dtype)
    for n, k, oh, ow, ci, c, r, s, ih, iw in taps(geo, dy.shape[2:]):
        dx[n, ci, ih, iw] += w[k, c, r, s] * dy[n, k, oh, ow]
    return dx


def backward_weight(geo: ConvGeometry, dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dw (K, C/G, R, S) in dy's dtype: each multiply sends dy * x to the weight it used."""
    dw = np.zeros(geo.w_shape, dtype=dy.dtype)
    for n, k, oh, ow, ci, c, r, s, ih, iw in taps(geo, dy.shape[2:]):
        dw[k, c, r, s] += x[n, ci, ih, iw] * dy[n, k, oh, ow]
    return dw
