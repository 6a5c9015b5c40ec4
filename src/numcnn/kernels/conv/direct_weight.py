"""The weight gradient of the direct convolution (``direct.py``), compiled, on the same grid.

``dw[k, t] = sum over images n and grid positions q of dy[n, k, q] * xpad[n, q + off[t]]``: the forward's padded
planes (``direct._padded``), and dy laid on the same grid (``_grid_rows``: zero in the grid's extra columns). A
reduction over q: its kernel is compiled with ``reassoc`` so that LLVM keeps sixteen running sums (four output
channels x four taps) in vector registers over two images' grids, with no stores in the loop; the order of that sum
is fixed by the compiled code, not by the threads. The pairs of images are added in order, in float64.

Threads: the padding passes split the batch, the reduction splits the output channels into blocks of four; every
output element is computed by one item in a fixed order, so 1, 2 or 16 threads give the same bits.
"""
from __future__ import annotations

import numpy as np

from .. import parallel, workspace
from ..jit import kernel
from .direct import SLACK, _aligned, _check, _forward_grid, _image_ranges, _padded
from .geometry import ConvGeometry

__all__ = ["backward_weight", "run_weight_grad"]


@kernel
def _grid_rows(dy, groups, out, pitch, n0, n1):
    """out[n, g*Kg4 + k, oh*pitch + ow] = dy[n, g*Kg + k, oh, ow] (any strides) for n0 <= n < n1, zero in the
    other grid columns, past the last output and in the rows that round each group's Kg up to Kg4. Each number
    is written once (no zero fill first: 0.66 -> 0.55 ms for (100, 16, 28, 28) on one thread)."""
    _, k_all, ho, wo = dy.shape
    kg, kg4 = k_all // groups, out.shape[1] // groups
    for n in range(n0, n1):
        for row in range(out.shape[1]):
            o, end = out[n, row], 0
            if row % kg4 < kg:
                src, end = dy[n, row // kg4 * kg + row % kg4], (ho - 1) * pitch + wo
                for oh in range(ho):
                    s, d = src[oh], o[oh * pitch :]
                    for ow in range(wo):
                        d[ow] = s[ow]
                    for ow in range(wo, pitch if oh < ho - 1 else wo):
                        d[ow] = 0
            for i in range(end, o.shape[0]):
                o[i] = 0


@kernel(fastmath={"contract", "reassoc"})
def _weight_grad(xpad, plane, dyg, offs, dw, zero, k0):
    """dw[k, t] += sum over images n and grid positions q of dyg[n, k, q] * xpad[n, g*Cg*plane + q + offs[t]]
    for k0 <= k < k0 + 4 (in one group g). dw (G*Kg4, T) float64. xpad as for ``_correlate``; dyg (N, G*Kg4, L):
    dy on the grid (``_grid_rows``), N even (an odd batch ends in an image of zeros in both); ``zero``: a 0 of
    dy's dtype, the running sums' type."""
    n_all, k_all, length = dyg.shape
    taps = offs.shape[0]
    cg = offs[taps - 1] // plane + 1
    g = k0 // (k_all // ((xpad.shape[1] - SLACK) // (cg * plane)))
    taps4 = taps - taps % 4
    for n in range(0, n_all, 2):  # two images at a time: one horizontal add per running sum for the pair
        xa, xb = xpad[n, g * cg * plane :], xpad[n + 1, g * cg * plane :]
        da0, da1, da2, da3 = dyg[n, k0], dyg[n, k0 + 1], dyg[n, k0 + 2], dyg[n, k0 + 3]
        db0, db1, db2, db3 = dyg[n + 1, k0], dyg[n + 1, k0 + 1], dyg[n + 1, k0 + 2], dyg[n + 1, k0 + 3]
        for t in range(0, taps4, 4):  # four channels x four taps: sixteen running sums in vector registers
            x0, x1, x2, x3 = xa[offs[t] :], xa[offs[t + 1] :], xa[offs[t + 2] :], xa[offs[t + 3] :]
            y0, y1, y2, y3 = xb[offs[t] :], xb[offs[t + 1] :], xb[offs[t + 2] :], xb[offs[t + 3] :]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
            for i in range(length):
                v0, v1, v2, v3, e0, e1, e2, e3 = x0[i], x1[i], x2[i], x3[i], da0[i], da1[i], da2[i], da3[i]
                u0, u1, u2, u3, f0, f1, f2, f3 = y0[i], y1[i], y2[i], y3[i], db0[i], db1[i], db2[i], db3[i]
                s00, s01 = s00 + e0 * v0 + f0 * u0, s01 + e0 * v1 + f0 * u1
                s02, s03 = s02 + e0 * v2 + f0 * u2, s03 + e0 * v3 + f0 * u3
                s10, s11 = s10 + e1 * v0 + f1 * u0, s11 + e1 * v1 + f1 * u1
                s12, s13 = s12 + e1 * v2 + f1 * u2, s13 + e1 * v3 + f1 * u3
                s20, s21 = s20 + e2 * v0 + f2 * u0, s21 + e2 * v1 + f2 * u1
                s22, s23 = s22 + e2 * v2 + f2 * u2, s23 + e2 * v3 + f2 * u3
                s30, s31 = s30 + e3 * v0 + f3 * u0, s31 + e3 * v1 + f3 * u1
                s32, s33 = s32 + e3 * v2 + f3 * u2, s33 + e3 * v3 + f3 * u3
            for j, (p0, p1, p2, p3) in enumerate(((s00, s01, s02, s03), (s10, s11, s12, s13),
                                                  (s20, s21, s22, s23), (s30, s31, s32, s33))):
                r = dw[k0 + j, t:]
                r[0], r[1], r[2], r[3] = r[0] + p0, r[1] + p1, r[2] + p2, r[3] + p3
        for j in range(4):  # the last taps % 4 taps, one at a time
            for t in range(taps4, taps):
                d0, d1, x0, y0 = dyg[n, k0 + j], dyg[n + 1, k0 + j], xa[offs[t] :], xb[offs[t] :]
                s00 = zero
                for i in range(length):
                    s00 += d0[i] * x0[i] + d1[i] * y0[i]
                dw[k0 + j, t] += s00


def backward_weight(geo: ConvGeometry, dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dw (K, C/G, R, S) in dy's dtype. dy may be cropped (a transposed convolution's)."""
    _check(geo)
    grid = _forward_grid(geo)
    offs = grid.offsets(geo.cg, geo.r, geo.s, geo.dh, geo.dw)
    xpad, lay = _padded(x.astype(dy.dtype, copy=False), geo.top, geo.left, grid, even=True)
    dw = run_weight_grad(geo, dy, xpad, grid.plane, grid.pitch, grid.length(*dy.shape[2:]), offs, lay)
    workspace.give(xpad)
    return dw


def run_weight_grad(geo: ConvGeometry, dy: np.ndarray, xpad: np.ndarray, plane: int, pitch: int, length: int,
                     offs: np.ndarray, lay) -> np.ndarray:
    """dw (K, C/G, R, S) in dy's dtype from the input xpad (an even number of images) and dy laid on the grid of
    ``pitch`` (``length`` positions): ``_weight_grad`` over blocks of four output channels. ``lay(b)`` lays out
    xpad's images of the range b, in the same region as dy's grid rows (see ``direct._padded``)."""
    dt = dy.dtype
    kg4 = -(-geo.kg // 4) * 4
    dybuf, dyg = _aligned((len(xpad), geo.groups * kg4, length), dt)
    dyg[geo.n :] = 0  # an odd batch's extra image
    parallel.run(lambda b: (lay(b), _grid_rows(dy, geo.groups, dyg, pitch, b[0], b[1])), _image_ranges(geo.n),
                 blas=False)
    acc = np.zeros((geo.groups * kg4, offs.size))
    # Blocks of four output channels (a block's taps read its group's planes only), one item each.
    parallel.run(lambda k0: _weight_grad(xpad, plane, dyg, offs, acc, dt.type(0), k0), range(0, len(acc), 4),
                 blas=False)
    workspace.give(dybuf)
    return acc.reshape(geo.groups, kg4, -1)[:, : geo.kg].astype(dt).reshape(geo.w_shape)
