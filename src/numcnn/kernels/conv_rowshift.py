"""The "rowshift" algorithm for stride-1 convolutions: row copies and GEMMs on the padded grid, no im2col.

Lay a chunk of m padded input planes out flat per channel: grid index q = (n*Hp + h)*Wp + w, L = m*Hp*Wp.
Output position (n, oh, ow) sits at grid index q = (n*Hp + oh)*Wp + ow, and kernel tap (r, s) reads input grid
index q + r*dh*Wp + s*dw: a constant shift. So with

    E[(c, s), q] = X[c, q + s*dw]                   (C*S rows, each one contiguous copy of a shifted grid row)
    T[(r, k), q] = sum_(c, s) W[k, c, r, s] E[(c, s), q]            (one GEMM: (R*K, C*S) @ (C*S, L))
    Y[k, q]      = sum_r T[(r, k), q + r*dh*Wp]                     (R - 1 shifted whole-row adds)

the convolution costs S row copies where im2col writes C*R*S strided rows of Wo elements, and the GEMM is
squarer ((R*K) x (C*S) instead of K x (C*R*S)), which OpenBLAS runs closer to its peak. Grad-input is the same
construction run backwards from dY laid on the grid (D[(k, s), p] = dY[k, p - s*dw]), grad-weight multiplies the
forward's E, shifted by r*dh*Wp, with dY on the grid. The GEMMs also compute the Hp*Wp - Ho*Wo padding positions
of each plane, which are dropped (1.13x the useful work for 3x3 on 32x32, 1.65x for 5x5 on 14x14).

Measured against im2col on one thread (batch 100): 64->64 3x3 on 32x32 forward 76 vs 93 ms, grad-input 74 vs
86 ms; 16->32 5x5 on 14x14 grad-input 8.4 vs 10.8 ms, forward even; 1->16 5x5 forward 6.3 vs 1.6 ms (C*S = 5
rows make a poor GEMM): ``conv.choose_algorithm`` picks per shape. Chunks over the batch and threads work as
in conv.py; results do not depend on the thread count.
"""

from __future__ import annotations

import numpy as np

from . import parallel, workspace

Pair = tuple[int, int]
Padding2d = tuple[Pair, Pair]


class Geometry:
    """Grid sizes of a stride-1 convolution of x (N, C, H, W) with w (K, C/G, R, S)."""

    def __init__(self, x_shape, w_shape, padding: Padding2d, dilation: Pair, groups: int):
        self.n, self.c, self.h, self.w = x_shape
        self.k, self.cg, self.r, self.s = w_shape
        self.g = groups
        self.kg = self.k // groups
        (self.top, bottom), (self.left, right) = padding
        self.dh, self.dw = dilation
        self.hp, self.wp = self.h + self.top + bottom, self.w + self.left + right
        self.plane = self.hp * self.wp
        self.ho, self.wo = self.hp - self.dh * (self.r - 1), self.wp - self.dw * (self.s - 1)
        self.row_shift = self.dh * self.wp  # grid distance between kernel rows
        self.col_tail = self.dw * (self.s - 1)  # grid distance spanned by a kernel row

    def chunks(self, itemsize: int) -> list[tuple[int, int]]:
        # The biggest scratch per image is E (C*S rows) or D (K*S rows) of a padded plane each.
        return workspace.batch_chunks(self.n, max(self.c, self.k) * self.s * self.plane * itemsize)


def _forward_matrix(w: np.ndarray, geo: Geometry) -> np.ndarray:
    """A[g, (r, k), (c, s)] = w[g*Kg + k, c, r, s]: (G, R*Kg, Cg*S)."""
    w5 = w.reshape(geo.g, geo.kg, geo.cg, geo.r, geo.s)
    return np.ascontiguousarray(w5.transpose(0, 3, 1, 2, 4)).reshape(geo.g, geo.r * geo.kg, geo.cg * geo.s)


def _input_grad_matrix(w: np.ndarray, geo: Geometry) -> np.ndarray:
    """B[g, (r, c), (k, s)] = w[g*Kg + k, c, r, s]: (G, R*Cg, Kg*S)."""
    w5 = w.reshape(geo.g, geo.kg, geo.cg, geo.r, geo.s)
    return np.ascontiguousarray(w5.transpose(0, 3, 2, 1, 4)).reshape(geo.g, geo.r * geo.cg, geo.kg * geo.s)


def _shifted_rows(src: np.ndarray, rows: int, s: int, step: int, length: int, reverse: bool, dtype) -> np.ndarray:
    """E (rows*S, length) from src (rows, length + (S-1)*step): E[(i, j)] = src[i, j*step : j*step + length]
    (or src[i, (S-1-j)*step : ...] with ``reverse``). A pooled buffer."""
    out = workspace.take((rows * s, length), dtype)
    o3 = out.reshape(rows, s, length)
    for j in range(s):
        lo = (s - 1 - j) * step if reverse else j * step
        o3[:, j, :] = src[:, lo : lo + length]
    return out


def _x_grid(x: np.ndarray, geo: Geometry, n0: int, n1: int) -> np.ndarray:
    """x[n0:n1] zero-padded on the grid, (C, m*plane + col_tail), a pooled buffer."""
    m = n1 - n0
    length = m * geo.plane
    xg = workspace.take((geo.c, length + geo.col_tail), x.dtype)
    xg.fill(0)
    planes = xg[:, :length].reshape(geo.c, m, geo.hp, geo.wp)
    planes[:, :, geo.top : geo.top + geo.h, geo.left : geo.left + geo.w] = x[n0:n1].transpose(1, 0, 2, 3)
    return xg


def _dy_grid(dy: np.ndarray, geo: Geometry, n0: int, n1: int, front: int) -> np.ndarray:
    """dy[n0:n1] on the grid (zero at padding positions), after ``front`` zeros: (K, front + m*plane), pooled."""
    m = n1 - n0
    g = workspace.take((geo.k, front + m * geo.plane), dy.dtype)
    g.fill(0)
    planes = g[:, front:].reshape(geo.k, m, geo.hp, geo.wp)
    planes[:, :, : geo.ho, : geo.wo] = dy[n0:n1].transpose(1, 0, 2, 3)
    return g


def forward(x, w, b, padding, dilation, groups, keep_rows: bool):
    """y (N, K, Ho, Wo) as a view of a (K, N, Ho, Wo) buffer, and the chunks' E matrices when ``keep_rows``
    (a list of (n0, n1, E (C*S, m*plane)) for ``backward_weight``), else None."""
    geo = Geometry(x.shape, w.shape, padding, dilation, groups)
    a = _forward_matrix(w.astype(x.dtype, copy=False), geo)
    bias = None if b is None else b.astype(x.dtype, copy=False)[:, None, None, None]
    y = np.empty((geo.k, geo.n, geo.ho, geo.wo), dtype=x.dtype)

    def chunk(bounds):
        n0, n1 = bounds
        m = n1 - n0
        length = m * geo.plane
        xg = _x_grid(x, geo, n0, n1)
        e = _shifted_rows(xg, geo.c, geo.s, geo.dw, length, False, x.dtype)
        workspace.give(xg)
        t = workspace.take((geo.g, geo.r * geo.kg, length), x.dtype)
        np.matmul(a, e.reshape(geo.g, geo.cg * geo.s, length), out=t)
        t4 = t.reshape(geo.g, geo.r, geo.kg, length)
        valid = length - (geo.r - 1) * geo.row_shift  # every output position lies below this grid index
        acc = workspace.take((geo.g, geo.kg, length), x.dtype)
        if geo.r == 1:
            acc[:, :, :valid] = t4[:, 0, :, :valid]
        else:
            np.add(t4[:, 0, :, :valid], t4[:, 1, :, geo.row_shift : geo.row_shift + valid], out=acc[:, :, :valid])
            for r in range(2, geo.r):
                acc[:, :, :valid] += t4[:, r, :, r * geo.row_shift : r * geo.row_shift + valid]
        out = acc.reshape(geo.k, m, geo.hp, geo.wp)[:, :, : geo.ho, : geo.wo]
        if bias is None:
            y[:, n0:n1] = out
        else:
            np.add(out, bias, out=y[:, n0:n1])
        workspace.give(t)
        workspace.give(acc)
        if keep_rows:
            return n0, n1, e
        workspace.give(e)
        return None

    kept = parallel.run(chunk, geo.chunks(x.itemsize))
    return y.transpose(1, 0, 2, 3), (kept if keep_rows else None)


def backward_input(dy, w, x_shape, padding, dilation, groups):
    """dx (N, C, H, W) as a view of a (C, N, H, W) buffer."""
    geo = Geometry(x_shape, w.shape, padding, dilation, groups)
    bmat = _input_grad_matrix(w, geo)
    dx = np.empty((geo.c, geo.n, geo.h, geo.w), dtype=dy.dtype)

    def chunk(bounds):
        n0, n1 = bounds
        m = n1 - n0
        length = m * geo.plane
        gz = _dy_grid(dy, geo, n0, n1, geo.col_tail)  # D[(k, s), p] = dY[k, p - s*dw], zero before the grid
        d = _shifted_rows(gz, geo.k, geo.s, geo.dw, length, True, dy.dtype)
        workspace.give(gz)
        t = workspace.take((geo.g, geo.r * geo.cg, length), dy.dtype)
        np.matmul(bmat, d.reshape(geo.g, geo.kg * geo.s, length), out=t)
        workspace.give(d)
        t4 = t.reshape(geo.g, geo.r, geo.cg, length)
        grid = workspace.take((geo.g, geo.cg, length), dy.dtype)
        grid[...] = t4[:, 0]
        for r in range(1, geo.r):  # tap row r lands r*dh*Wp further on the input grid
            shift = r * geo.row_shift
            grid[:, :, shift:] += t4[:, r, :, : length - shift]
        planes = grid.reshape(geo.c, m, geo.hp, geo.wp)
        dx[:, n0:n1] = planes[:, :, geo.top : geo.top + geo.h, geo.left : geo.left + geo.w]
        workspace.give(t)
        workspace.give(grid)

    parallel.run(chunk, geo.chunks(dy.itemsize))
    return dx.transpose(1, 0, 2, 3)


def backward_weight(dy, x, rows, w_shape, padding, dilation, groups):
    """dw (K, C/G, R, S). ``rows``: the forward's kept E matrices, or None to rebuild them from x."""
    geo = Geometry(x.shape if x is not None else (dy.shape[0], w_shape[1] * groups, 0, 0), w_shape, padding,
                   dilation, groups)
    if x is None:  # only the kept rows: recover the input size from dy (stride 1: H = Ho + dh*(R-1) - pads)
        h = dy.shape[2] + geo.dh * (geo.r - 1) - padding[0][0] - padding[0][1]
        wd = dy.shape[3] + geo.dw * (geo.s - 1) - padding[1][0] - padding[1][1]
        geo = Geometry((dy.shape[0], w_shape[1] * groups, h, wd), w_shape, padding, dilation, groups)
    parts = rows if rows is not None else [(n0, n1, None) for n0, n1 in geo.chunks(dy.itemsize)]
    csg = geo.cg * geo.s

    def chunk(part):
        n0, n1, e = part
        m = n1 - n0
        length = m * geo.plane
        own = e is None
        if own:
            xg = _x_grid(x, geo, n0, n1)
            e = _shifted_rows(xg, geo.c, geo.s, geo.dw, length, False, dy.dtype)
            workspace.give(xg)
        g = _dy_grid(dy, geo, n0, n1, 0)
        valid = length - (geo.r - 1) * geo.row_shift
        eg = e.reshape(geo.g, csg, length)
        gt = g[:, :valid].reshape(geo.g, geo.kg, valid).transpose(0, 2, 1)
        # (R, G, Cg*S, Kg): dW_r = E shifted by r rows @ dY^T; the long reduction goes inside the GEMM.
        out = np.empty((geo.r, geo.g, csg, geo.kg), dtype=dy.dtype)
        for r in range(geo.r):
            shift = r * geo.row_shift
            np.matmul(eg[:, :, shift : shift + valid], gt, out=out[r])
        workspace.give(g)
        if own:
            workspace.give(e)
        return out

    products = parallel.run(chunk, parts)
    total = products[0]
    for p in products[1:]:
        np.add(total, p, out=total)  # chunk order: the same sum whatever the thread count
    # (R, G, Cg, S, Kg) -> (G, Kg, Cg, R, S) -> (K, Cg, R, S)
    t5 = total.reshape(geo.r, geo.g, geo.cg, geo.s, geo.kg)
    return np.ascontiguousarray(t5.transpose(1, 4, 2, 0, 3)).reshape(w_shape)
