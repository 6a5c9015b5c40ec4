"""The "rowshift" algorithm for stride-1 convolutions: row copies and GEMMs on a row grid, no im2col.

Lay each padded input plane out as rows of width Wp, and the outputs of a chunk of m images on the same
row width: output position (n, oh, ow) at grid index q = n*Ho*Wp + oh*Wp + ow (ow < Wo valid, the Wp - Wo
others dropped). Kernel tap (r, s) reads padded input row oh + r*dh, column ow + s*dw. So with

    E[(c, r), q] = Xpad[c, n, oh + r*dh, ow]            (C*R rows: each image's Ho*Wp block is one contiguous
                                                          copy of padded input rows r*dh .. r*dh + Ho)
    T[(s, k), q] = sum_(c, r) W[k, c, r, s] E[(c, r), q]            (one GEMM: (S*K, C*R) @ (C*R, L))
    Y[k, q]      = sum_s T[(s, k), q + s*dw]                        (S - 1 whole-row adds, shifted by s*dw)

the convolution copies C*R long rows where im2col writes C*R*S strided rows of Wo elements, and its GEMM is
squarer ((S*K) x (C*R) instead of K x (C*R*S)), which OpenBLAS runs closer to its peak. The GEMM also computes
the Wp - Wo padding columns of each row: Wp/Wo times the useful work (1.06x for 3x3 on 32x32, 1.29x for 5x5
'same' on 14x14). Grad-input runs the same construction backwards from dY laid on the row grid (rows shifted
by r*dh, columns by s*dw), grad-weight multiplies the forward's E, shifted by s*dw, with dY on the row grid.
Chunks over the batch and threads work as in chunked.py; results do not depend on the thread count.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import parallel, workspace
from .geometry import ConvGeometry

__all__ = ["backward_input", "backward_weight", "forward", "rows_bytes"]


def _out_block(geo: ConvGeometry) -> int:
    return geo.ho * geo.wp  # grid columns of one image's outputs


def _in_block(geo: ConvGeometry) -> int:
    return geo.height * geo.wp  # grid columns of one image's input rows (grad-input)


def _col_tail(geo: ConvGeometry) -> int:
    return geo.dw * (geo.s - 1)  # grid distance spanned by a kernel row


def rows_bytes(geo: ConvGeometry, itemsize: int) -> int:
    """Bytes of the whole batch's E matrices (C*R, N*Ho*Wp), what the forward keeps for grad-weight."""
    return geo.n * geo.c * geo.r * _out_block(geo) * itemsize


def _chunks(geo: ConvGeometry, itemsize: int) -> list[tuple[int, int]]:
    # The largest scratch per image: E or D (C*R or K*R rows) and T (S*K or S*C rows) of a row block.
    rows = max(geo.c * geo.r + geo.s * geo.k, geo.k * geo.r + geo.s * geo.c)
    return workspace.batch_chunks(geo.n, rows * max(_out_block(geo), _in_block(geo)) * itemsize)


def _forward_matrix(w: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """A[g, (s, k), (c, r)] = w[g*Kg + k, c, r, s]: (G, S*Kg, Cg*R)."""
    w5 = w.reshape(geo.groups, geo.kg, geo.cg, geo.r, geo.s)
    return np.ascontiguousarray(w5.transpose(0, 4, 1, 2, 3)).reshape(geo.groups, geo.s * geo.kg, geo.cg * geo.r)


def _input_grad_matrix(w: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """B[g, (s, c), (k, r)] = w[g*Kg + k, c, r, s]: (G, S*Cg, Kg*R)."""
    w5 = w.reshape(geo.groups, geo.kg, geo.cg, geo.r, geo.s)
    return np.ascontiguousarray(w5.transpose(0, 4, 2, 1, 3)).reshape(geo.groups, geo.s * geo.cg, geo.kg * geo.r)


def _rows_of_x(x: np.ndarray, geo: ConvGeometry, n0: int, n1: int) -> np.ndarray:
    """E (C*R, m*Ho*Wp) for images n0..n1 (a pooled buffer): E[(c, r), (n, t)] = padded x[n, c] flat at r*dh*Wp + t."""
    m = n1 - n0
    plane = geo.hp * geo.wp
    xg = workspace.take((geo.c, m, geo.hp, geo.wp), x.dtype)
    # Only the border must be zero: the interior is overwritten.
    xg[:, :, : geo.top] = 0
    xg[:, :, geo.top + geo.height :] = 0
    xg[:, :, geo.top : geo.top + geo.height, : geo.left] = 0
    xg[:, :, geo.top : geo.top + geo.height, geo.left + geo.width :] = 0
    xg[:, :, geo.top : geo.top + geo.height, geo.left : geo.left + geo.width] = x[n0:n1].transpose(1, 0, 2, 3)
    isz = xg.itemsize
    rows = as_strided(xg, shape=(geo.c, geo.r, m, _out_block(geo)),
                      strides=(m * plane * isz, geo.dh * geo.wp * isz, plane * isz, isz), writeable=False)
    e = workspace.take((geo.c * geo.r, m * _out_block(geo)), x.dtype)
    e.reshape(geo.c, geo.r, m, _out_block(geo))[...] = rows
    workspace.give(xg)
    return e


def _dy_rows(dy: np.ndarray, geo: ConvGeometry, n0: int, n1: int) -> np.ndarray:
    """dy[n0:n1] on the output row grid, (K, m*Ho*Wp), zero in the Wp - Wo padding columns (pooled)."""
    m = n1 - n0
    g = workspace.take((geo.k, m, geo.ho, geo.wp), dy.dtype)
    g[:, :, :, geo.wo :] = 0
    g[:, :, :, : geo.wo] = dy[n0:n1].transpose(1, 0, 2, 3)
    return g.reshape(geo.k, m * _out_block(geo))


def forward(geo: ConvGeometry, x, w, b, keep_rows: bool):
    """y (N, K, Ho, Wo) as a view of a (K, N, Ho, Wo) buffer, and the chunks' E matrices when ``keep_rows``
    (a list of (n0, n1, E (C*R, m*Ho*Wp)) for ``backward_weight``), else None."""
    a = _forward_matrix(w.astype(x.dtype, copy=False), geo)
    bias = None if b is None else b.astype(x.dtype, copy=False)[:, None, None, None]
    y = np.empty((geo.k, geo.n, geo.ho, geo.wo), dtype=x.dtype)

    def chunk(bounds):
        n0, n1 = bounds
        m = n1 - n0
        length = m * _out_block(geo)
        e = _rows_of_x(x, geo, n0, n1)
        t = workspace.take((geo.groups, geo.s * geo.kg, length), x.dtype)
        np.matmul(a, e.reshape(geo.groups, geo.cg * geo.r, length), out=t)
        t4 = t.reshape(geo.groups, geo.s, geo.kg, length)
        valid = length - _col_tail(geo)  # every output position lies below this grid index
        acc = workspace.take((geo.groups, geo.kg, length), x.dtype)
        if geo.s == 1:
            acc[:, :, :valid] = t4[:, 0, :, :valid]
        else:
            np.add(t4[:, 0, :, :valid], t4[:, 1, :, geo.dw : geo.dw + valid], out=acc[:, :, :valid])
            for s in range(2, geo.s):
                acc[:, :, :valid] += t4[:, s, :, s * geo.dw : s * geo.dw + valid]
        out = acc.reshape(geo.k, m, geo.ho, geo.wp)[:, :, :, : geo.wo]
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

    kept = parallel.run(chunk, _chunks(geo, x.itemsize))
    return y.transpose(1, 0, 2, 3), (kept if keep_rows else None)


def backward_input(geo: ConvGeometry, dy, w):
    """dx (N, C, H, W) as a view of a (C, N, H, W) buffer.

    dX on the input row grid (H rows of width Wp per image): dX[c, (n, ih*Wp + j)] = sum_(k, r, s) W[k, c, r, s]
    dY[k, n, ih + top - r*dh, j - s*dw], so D[(k, r), (n, u)] = dY rows shifted by top - r*dh (zero rows where
    that leaves the output), T = B @ D, and dX = sum_s T[(s, c)] shifted right by s*dw.
    """
    bmat = _input_grad_matrix(w, geo)
    dx = np.empty((geo.c, geo.n, geo.height, geo.width), dtype=dy.dtype)

    def chunk(bounds):
        n0, n1 = bounds
        m = n1 - n0
        length = m * _in_block(geo)
        g = _dy_rows(dy, geo, n0, n1).reshape(geo.k, m, geo.ho, geo.wp)
        d = workspace.take((geo.k, geo.r, m, geo.height, geo.wp), dy.dtype)
        for r in range(geo.r):
            # input row ih reads output row ih + top - r*dh
            shift = geo.top - r * geo.dh
            lo, hi = max(0, -shift), min(geo.height, geo.ho - shift)
            dr = d[:, r]
            if lo >= hi:
                dr.fill(0)
                continue
            dr[:, :, :lo] = 0
            dr[:, :, hi:] = 0
            dr[:, :, lo:hi] = g[:, :, lo + shift : hi + shift]
        workspace.give(g.reshape(geo.k, m * _out_block(geo)))
        t = workspace.take((geo.groups, geo.s * geo.cg, length), dy.dtype)
        np.matmul(bmat, d.reshape(geo.groups, geo.kg * geo.r, length), out=t)
        workspace.give(d)
        t4 = t.reshape(geo.groups, geo.s, geo.cg, length)
        grid = workspace.take((geo.groups, geo.cg, length), dy.dtype)
        grid[...] = t4[:, 0]
        for s in range(1, geo.s):  # tap column s lands s*dw further right on the input grid
            shift = s * geo.dw
            grid[:, :, shift:] += t4[:, s, :, : length - shift]
        rows = grid.reshape(geo.c, m, geo.height, geo.wp)
        dx[:, n0:n1] = rows[:, :, :, geo.left : geo.left + geo.width]
        workspace.give(t)
        workspace.give(grid)

    parallel.run(chunk, _chunks(geo, dy.itemsize))
    return dx.transpose(1, 0, 2, 3)


def backward_weight(geo: ConvGeometry, dy, x, rows):
    """dw (K, C/G, R, S). ``rows``: the forward's kept E matrices, or None to rebuild them from x."""
    parts = rows if rows is not None else [(n0, n1, None) for n0, n1 in _chunks(geo, dy.itemsize)]
    crg = geo.cg * geo.r

    def chunk(part):
        n0, n1, e = part
        m = n1 - n0
        length = m * _out_block(geo)
        own = e is None
        if own:
            e = _rows_of_x(x, geo, n0, n1)
        g = _dy_rows(dy, geo, n0, n1)
        valid = length - _col_tail(geo)
        eg = e.reshape(geo.groups, crg, length)
        gt = g[:, :valid].reshape(geo.groups, geo.kg, valid).transpose(0, 2, 1)
        # (S, G, Cg*R, Kg): dW_s = E shifted by s*dw @ dY^T; the long reduction goes inside the GEMM.
        out = np.empty((geo.s, geo.groups, crg, geo.kg), dtype=dy.dtype)
        for j in range(geo.s):
            shift = j * geo.dw
            np.matmul(eg[:, :, shift : shift + valid], gt, out=out[j])
        workspace.give(g)
        if own:
            workspace.give(e)
        return out

    products = parallel.run(chunk, parts)
    total = products[0]
    for p in products[1:]:
        np.add(total, p, out=total)  # chunk order: the same sum whatever the thread count
    # (S, G, Cg, R, Kg) -> (G, Kg, Cg, R, S) -> (K, Cg, R, S)
    t5 = total.reshape(geo.s, geo.groups, geo.cg, geo.r, geo.kg)
    return np.ascontiguousarray(t5.transpose(1, 4, 2, 3, 0)).reshape(geo.w_shape)
