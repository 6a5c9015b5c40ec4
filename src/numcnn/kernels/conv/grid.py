"""Grad-input of a stride-1 convolution on the padded grid: col2im becomes R*S contiguous slice-adds.

Per channel, a chunk of padded input planes is one flat row of length m*Hp*Wp, and output position (n, oh, ow)
sits at grid index q = (n*Hp + oh)*Wp + ow. Tap (r, s) then reads input index q + r*dh*Wp + s*dw: a constant
shift. So dY is laid on that grid (zeros elsewhere), one GEMM gives the column gradients at every grid index, and
each tap's share is added to the input gradient as one shifted slice of whole rows (instead of Ho*N*C short rows
in col2im). The GEMM does Hp*Wp/(Ho*Wo) times the useful work on the zero padding, which the long vectorised adds
repay. A depthwise layer (one weight per channel and tap) skips the GEMM: each tap is a per-row scale of dY.
"""

from __future__ import annotations

import numpy as np

from .. import parallel, workspace
from .geometry import ConvGeometry

__all__ = ["backward_input"]


def _depthwise_taps(g: np.ndarray, w_taps: np.ndarray, offsets: list[int], valid: int, grid: np.ndarray,
                    tmp: np.ndarray) -> None:
    """grid[:, off_t : off_t + valid] += w_taps[:, t] * g[:, :valid] for each tap t: the column gradients of a
    depthwise convolution (inner dimension 1: a scale per row, no GEMM)."""
    for t, off in enumerate(offsets):
        np.multiply(g[:, :valid], w_taps[:, t, None], out=tmp)
        grid[:, off : off + valid] += tmp


def backward_input(geo: ConvGeometry, dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """dx (N, C, H, W) as a view of a (C, N, H, W) buffer, for stride 1. dy may be smaller than the output."""
    n, c, h, wd = geo.x_shape
    k, (kh, kw), (dh, dw), groups = geo.k, geo.kernel_size, geo.dilation, geo.groups
    (top, _), (left, _) = geo.padding
    hp, wp = geo.padded_hw
    plane = hp * wp
    ho, wo = dy.shape[2:]
    rows = geo.rows
    span = dh * (kh - 1) * wp + dw * (kw - 1)
    offsets = [r * dh * wp + s * dw for r in range(kh) for s in range(kw)]
    wt_g = w.reshape(groups, k // groups, -1).transpose(0, 2, 1)  # (G, C/G*R*S, K/G)
    depthwise = groups == c == k
    w_taps = w.reshape(c, kh * kw) if depthwise else None
    dx = np.empty((c, n, h, wd), dtype=dy.dtype)
    dy_k = dy.transpose(1, 0, 2, 3)

    def chunk(bounds):
        n0, n1 = bounds
        m = n1 - n0
        valid = m * plane - span  # grid indices whose every tap stays inside the chunk
        dy_grid = workspace.take((k, m, hp, wp), dy.dtype)
        dy_grid.fill(0)  # only [:Ho, :Wo] is rewritten below; the rest must read as zero gradient
        dy_grid[:, :, :ho, :wo] = dy_k[:, n0:n1]
        g = dy_grid.reshape(k, m * plane)
        dx_grid = workspace.take((c, m, hp, wp), dy.dtype)
        grid = dx_grid.reshape(c, m * plane)
        grid.fill(0)
        dcols = workspace.take((rows, m * plane), dy.dtype)
        if depthwise:
            _depthwise_taps(g, w_taps, offsets, valid, grid, dcols[:c, :valid])
        else:
            np.matmul(wt_g, g[:, :valid].reshape(groups, k // groups, valid),
                      out=dcols[:, :valid].reshape(groups, rows // groups, valid))
            taps = dcols.reshape(c, kh * kw, m * plane)
            for t, off in enumerate(offsets):
                grid[:, off : off + valid] += taps[:, t, :valid]
        dx[:, n0:n1] = dx_grid[:, :, top : top + h, left : left + wd]
        for buf in (dy_grid, dx_grid, dcols):
            workspace.give(buf)

    parallel.run(chunk, workspace.batch_chunks(n, rows * plane * dy.itemsize))
    return dx.transpose(1, 0, 2, 3)
