"""The weight gradient of the direct convolution (``direct.py``), compiled, on the same grid.

``dw[k, t] = sum over images n and grid positions q of dy[n, k, q] * xpad[n, q + off[t]]``: the forward's padded
planes (``direct._padded``), and dy laid on the same grid (``_grid_rows``: zero in the grid's extra columns). A
reduction over q: its kernel is compiled with ``reassoc`` so that LLVM keeps sixteen running sums (four output
channels x four taps) in vector registers over two images' grids, with no stores in the loop; the order of that sum
is fixed by the compiled code, not by the threads. The pairs of images are added in order, in float64.

On small maps the sums are short (64 grid positions per image on 7x7) and the horizontal adds after each pair of
images weigh: there the batch goes on a *tall* grid instead (:func:`_tall`): half the batch stacked in each of two
"images", image after image at a fixed number of rows, the zero rows between them serving as the bottom padding of
one and the top padding of the next. Every tap is still a constant offset, and each running sum covers half the batch
before its one horizontal add (64->64 3x3 on 7x7: 3.89 -> 2.64 ms; batch 100, 2 threads, min of 30 alternated).

Threads: the padding passes split the batch, the reduction splits the output channels into blocks of four; every
output element is computed by one item in a fixed order, so 1, 2 or 16 threads give the same bits.
"""
from __future__ import annotations

import numpy as np

from .. import parallel, workspace
from ..jit import kernel
from .direct import SLACK, VECTOR, _aligned, _check, _forward_grid, _Grid, _image_ranges, _padded
from .geometry import ConvGeometry

__all__ = ["backward_weight", "run_weight_grad", "with_grid_rows"]


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


@kernel
def _lay_tall(x, dy, groups, top, left, rows, n_per, pitch, xt, dyt, s0, s1):
    """Slots s0 <= s < s1 of the tall grid (:func:`_tall`): image s (zeros when s >= N) in "image" s // n_per at
    slot s % n_per: x[s, c, ih, iw] at c*plane + (top + slot*rows + ih)*pitch + left + iw of xt, dy[s, g*Kg + k, oh,
    ow] at (slot*rows + oh)*pitch + ow of dyt's row g*Kg4 + k. Each slot writes every number of its rows (zeros
    included); the first slot also the rows above it, the last the rows below it and the slack."""
    n_all, c_all, h, w = x.shape
    k_all, ho, wo = dy.shape[1], dy.shape[2], dy.shape[3]
    plane, length = (xt.shape[1] - SLACK) // c_all, dyt.shape[2]
    kg, kg4 = k_all // groups, dyt.shape[1] // groups
    for s in range(s0, s1):
        j, slot = s // n_per, s % n_per
        o, d = xt[j], dyt[j]
        lo = 0 if slot == 0 else (top + slot * rows) * pitch
        hi = plane if slot == n_per - 1 else (top + (slot + 1) * rows) * pitch
        for c in range(c_all):
            for i in range(c * plane + lo, c * plane + hi):
                o[i] = 0
            for ih in range(h if s < n_all else 0):
                src, dst = x[s, c, ih], o[c * plane + (top + slot * rows + ih) * pitch + left :]
                for iw in range(w):
                    dst[iw] = src[iw]
        if slot == n_per - 1:
            for i in range(c_all * plane, o.shape[0]):
                o[i] = 0
        lo, hi = slot * rows * pitch, length if slot == n_per - 1 else (slot + 1) * rows * pitch
        for row in range(d.shape[0]):
            dr = d[row]
            for i in range(lo, hi):
                dr[i] = 0
            if s < n_all and row % kg4 < kg:
                for oh in range(ho):
                    src, dst = dy[s, row // kg4 * kg + row % kg4, oh], dr[(slot * rows + oh) * pitch :]
                    for ow in range(wo):
                        dst[ow] = src[ow]


def _tall(geo: ConvGeometry, dy_hw) -> tuple[_Grid, int, int] | None:
    """(grid, rows, images per half) of the tall layout, or None where it does not pay: a cropped dy, negative
    padding, or a tall grid (rows per image: H + the larger of the top and bottom margins, or Ho if more) longer
    than the per-image grids, each rounded up to whole vectors. Equal for 3x3 'same' on 7x7 (64 positions per image
    either way); 3x3 on 14x14 would take 240 against 224, and measured 5% slower that way (2.87 -> 3.01 ms for
    32->32, 2 threads)."""
    (top, bottom), (left, right) = geo.padding
    if tuple(dy_hw) != geo.out_hw or min(top, bottom, left, right) < 0:
        return None
    grid = _forward_grid(geo)
    rows = max(geo.height + max(top, bottom), geo.ho)  # each image's input and output rows (padding past the
    if rows * grid.pitch > grid.length(geo.ho, geo.wo):  # kernel's reach gives more output rows than input rows)
        return None
    n_per = -(-geo.n // 2)
    hp = top + n_per * rows + geo.dh * (geo.r - 1) + 1  # the last image's rows and what its taps reach below
    return _Grid(hp, grid.pitch, (hp + 1) * grid.pitch), rows, n_per


def backward_weight(geo: ConvGeometry, dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dw (K, C/G, R, S) in dy's dtype. dy may be cropped (a transposed convolution's)."""
    _check(geo)
    x = x.astype(dy.dtype, copy=False)
    tall = _tall(geo, dy.shape[2:])
    if tall is not None:
        grid, rows, n_per = tall
        offs = grid.offsets(geo.cg, geo.r, geo.s, geo.dh, geo.dw)
        xbuf, xt = _aligned((2, geo.c * grid.plane + SLACK), dy.dtype)
        lay = lambda b, dyt: _lay_tall(x, dy, geo.groups, geo.top, geo.left, rows, n_per, grid.pitch, xt, dyt,  # noqa: E731
                                       *b)
        length = -(-(n_per * rows * grid.pitch) // VECTOR) * VECTOR
        dw = run_weight_grad(geo, dy, xt, grid.plane, length, offs, lay, slots=2 * n_per)
        workspace.give(xbuf)
        return dw
    grid = _forward_grid(geo)
    offs = grid.offsets(geo.cg, geo.r, geo.s, geo.dh, geo.dw)
    xpad, lay = _padded(x, geo.top, geo.left, grid, even=True)
    dw = run_weight_grad(geo, dy, xpad, grid.plane, grid.length(*dy.shape[2:]), offs,
                         with_grid_rows(lay, dy, geo.groups, grid.pitch))
    workspace.give(xpad)
    return dw


def with_grid_rows(lay, dy: np.ndarray, groups: int, pitch: int):
    """``lay(b, dyg)`` for :func:`run_weight_grad` on a per-image grid: ``lay(b)`` lays out the input's images of the
    range b, then ``_grid_rows`` lays dy's images of b on the grid of ``pitch`` in dyg."""
    return lambda b, dyg: (lay(b), _grid_rows(dy, groups, dyg, pitch, b[0], b[1]))


def run_weight_grad(geo: ConvGeometry, dy: np.ndarray, xpad: np.ndarray, plane: int, length: int, offs: np.ndarray,
                    lay, slots: int | None = None) -> np.ndarray:
    """dw (K, C/G, R, S) in dy's dtype from the input xpad (an even number of images) and dy laid on a grid of
    ``length`` positions: ``_weight_grad`` over blocks of four output channels. ``lay(b, dyg)`` lays out xpad's
    images of the range b and dy's grid rows in dyg, in one region (see ``direct._padded``); b ranges over the
    batch, or over ``slots`` for the tall grid."""
    dt = dy.dtype
    kg4 = -(-geo.kg // 4) * 4
    dybuf, dyg = _aligned((len(xpad), geo.groups * kg4, length), dt)
    if slots is None:
        dyg[geo.n :] = 0  # an odd batch's extra image
    parallel.run(lambda b: lay(b, dyg), _image_ranges(slots or geo.n), blas=False)
    acc = np.zeros((geo.groups * kg4, offs.size))
    # Blocks of four output channels (a block's taps read its group's planes only), one item each.
    parallel.run(lambda k0: _weight_grad(xpad, plane, dyg, offs, acc, dt.type(0), k0), range(0, len(acc), 4),
                 blas=False)
    workspace.give(dybuf)
    return acc.reshape(geo.groups, kg4, -1)[:, : geo.kg].astype(dt).reshape(geo.w_shape)
