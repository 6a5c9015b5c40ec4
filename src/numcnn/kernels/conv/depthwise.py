"""Depthwise convolution (one filter per channel: groups == C == K), compiled, for stride 1 and dilation 1.

With one input channel per filter there is no matrix product to hand to BLAS: every output row is a sum of R*S
shifted input rows, each scaled by one weight. Written exactly so, the innermost loop is a unit-stride
multiply-add over a row, which the compiler turns into vector FMAs::

    y[p, oh, :] = b[c] + sum over r, s of  w[c, r, s] * xpad[p, oh + r, s : s + Wo]        (p = one image's channel)

The input gradient is the same sum read backwards: dy padded by (R-1-top, S-1-left) correlated with the weights
rotated by 180 degrees. The weight gradient sums dy * x over the batch per channel and tap; each channel keeps one
float64 accumulator row per tap (elementwise adds, so they vectorise) and adds it up in a fixed order at the end.
Planes and channels are shared out over numcnn's kernel threads in ranges fixed by the shapes: the thread count
never changes a bit.
"""

from __future__ import annotations

import numpy as np

from .. import parallel, workspace
from ..jit import kernel
from .geometry import ConvGeometry

__all__ = ["backward_input", "backward_weight", "forward", "supported"]


@kernel
def _correlate(xp, w, bias, y, p0, p1, channels):
    """y[p] = bias[c] + sum_{r,s} w[c, r, s] * xp[p, r:r+Ho, s:s+Wo] for planes p0..p1 (c = p % channels)."""
    _, ho, wo = y.shape
    _, kh, kw = w.shape
    for p in range(p0, p1):
        c = p % channels
        for oh in range(ho):
            out = y[p, oh]
            b = bias[c]
            for ow in range(wo):
                out[ow] = b
            for r in range(kh):
                row = xp[p, oh + r]
                for s in range(kw):
                    wv = w[c, r, s]
                    for ow in range(wo):
                        out[ow] += wv * row[ow + s]


@kernel
def _weight_grad(xp, dy, dw, c0, c1, n):
    """dw[c, r, s] = sum over images and outputs of dy[img*C + c] * xp[img*C + c] shifted by (r, s), c0 <= c < c1."""
    planes, ho, wo = dy.shape
    channels, kh, kw = dw.shape
    acc = np.zeros((kh * kw, wo))
    for c in range(c0, c1):
        acc[:] = 0.0
        for img in range(n):
            p = img * channels + c
            for oh in range(ho):
                grad = dy[p, oh]
                for r in range(kh):
                    row = xp[p, oh + r]
                    for s in range(kw):
                        a = acc[r * kw + s]
                        for ow in range(wo):
                            a[ow] += grad[ow] * row[ow + s]
        for t in range(kh * kw):
            total = 0.0
            for ow in range(wo):
                total += acc[t, ow]
            dw[c, t // kw, t % kw] = total


def supported(geo: ConvGeometry) -> bool:
    """Depthwise (one input and one output channel per group), stride 1, dilation 1, and no side padded by more
    than the kernel reaches (R-1 rows, S-1 columns)."""
    (top, bottom), (left, right) = geo.padding
    return (geo.groups == geo.c == geo.k and geo.cg == 1 and geo.unit_stride and geo.dilation == (1, 1)
            and max(top, bottom) <= geo.r - 1 and max(left, right) <= geo.s - 1)


def _padded_planes(a: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """a (N, C, H, W) as zero-padded (N*C, H + top + bottom, W + left + right) planes (pooled scratch)."""
    n, c, h, w = a.shape
    (top, bottom), (left, right) = pads
    out = workspace.take((n * c, h + top + bottom, w + left + right), a.dtype)
    out4 = out.reshape(n, c, *out.shape[1:])
    out4[:, :, :top] = 0
    out4[:, :, top + h :] = 0
    out4[:, :, top : top + h, :left] = 0
    out4[:, :, top : top + h, left + w :] = 0
    out4[:, :, top : top + h, left : left + w] = a
    return out


def _run_planes(xp: np.ndarray, w: np.ndarray, bias: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    n, c, ho, wo = shape
    y = np.empty((n * c, ho, wo), dtype=xp.dtype)
    blocks = parallel.cache_blocks(n * c, xp[0].nbytes + y[0].nbytes)
    parallel.run(lambda b: _correlate(xp, w, bias, y, b[0], b[1], c), blocks, blas=False)
    return y.reshape(shape)


def forward(geo: ConvGeometry, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """y (N, C, Ho, Wo) in x's dtype."""
    bias = np.zeros(geo.c, dtype=x.dtype) if b is None else b.astype(x.dtype, copy=False)
    xp = _padded_planes(x, geo.padding)
    y = _run_planes(xp, np.ascontiguousarray(w.astype(x.dtype, copy=False).reshape(geo.c, geo.r, geo.s)), bias,
                    geo.y_shape)
    workspace.give(xp)
    return y


def backward_input(geo: ConvGeometry, dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """dx (N, C, H, W) in dy's dtype: dy (which may be cropped) padded, correlated with the rotated weights."""
    (top, bottom), (left, right) = geo.padding
    n, c, h, wd = geo.x_shape
    # dx[ih] gets dy[ih + top - r] * w[r]: pad dy by R-1-top above and enough below to reach every input row.
    pads = ((geo.r - 1 - top, h + top - dy.shape[2]), (geo.s - 1 - left, wd + left - dy.shape[3]))
    dyp = _padded_planes(dy, pads)
    rotated = np.ascontiguousarray(w.astype(dy.dtype, copy=False).reshape(c, geo.r, geo.s)[:, ::-1, ::-1])
    dx = _run_planes(dyp, rotated, np.zeros(c, dtype=dy.dtype), geo.x_shape)
    workspace.give(dyp)
    return dx


def backward_weight(geo: ConvGeometry, dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dw (C, 1, R, S) in dy's dtype. dy may be cropped (a transposed convolution's)."""
    n, c = geo.n, geo.c
    xp = _padded_planes(x.astype(dy.dtype, copy=False), geo.padding)
    dyp = np.ascontiguousarray(dy).reshape(n * c, *dy.shape[2:])
    dw = np.empty((c, geo.r, geo.s), dtype=dy.dtype)
    blocks = parallel.cache_blocks(c, n * xp[0].nbytes)
    parallel.run(lambda bl: _weight_grad(xp, dyp, dw, bl[0], bl[1], n), blocks, blas=False)
    workspace.give(xp)
    return dw.reshape(geo.w_shape)
