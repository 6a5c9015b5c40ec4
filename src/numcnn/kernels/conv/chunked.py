"""im2col + GEMM over the batch in cache-sized chunks, the chunks shared out over threads.

``gemm.py`` with the whole batch's columns is the lesson; it is slow for real layers because the column matrix is
large (236 MB for 64->64 3x3 on 32x32 at batch 100) and writing it out to memory and reading it back costs as much as
the GEMM. So the batch is cut into chunks whose columns stay small (``workspace.batch_chunks``: a function of the
shapes and the budget only, so equal settings give equal bits), and the chunks run on the kernel threads
(``parallel.run``), each unfolding its chunk into its own pooled buffer and multiplying it with a single-threaded
GEMM. Every chunk writes its own slice of the output; grad-weight's per-chunk products are summed in chunk order,
so the thread count never changes a result.

The forward can lend its chunks' columns to the backward (a :class:`Columns`) when they are small enough to keep
(``workspace.keepable``); otherwise the backward rebuilds them chunk by chunk.

GEMM operand order is chosen for OpenBLAS: a product whose result has few rows and a long reduction
(dY (K, L) @ cols.T (L, C*R*S)) runs far slower than the same product computed transposed,
cols (C*R*S, L) @ dY.T (L, K), so grad-weight is formed as the latter and transposed (a tiny copy).
"""

from __future__ import annotations

import numpy as np

from .. import parallel, workspace
from ..layout import channel_rows
from .geometry import ConvGeometry
from .unfold import col2im_add, im2col_into

__all__ = ["Columns", "backward_input", "backward_weight", "columns_bytes", "forward"]


class Columns(list):
    """The forward's column matrices, one per batch chunk: ``[(n0, n1, cols), ...]``, cols (C*R*S, (n1-n0)*Ho*Wo)
    for the "im2col" forward, the row copies E (C*R, (n1-n0)*Ho*Wp) for "rowshift" (``algorithm`` says which).

    Pooled memory lent to the caller of ``conv2d_forward(..., return_cols=True)``: pass it to
    ``conv2d_backward_weight(cols=...)``, then ``release()`` it (or drop it: it is then simply freed).
    """

    def __init__(self, parts=(), algorithm: str = "im2col"):
        super().__init__(parts)
        self.algorithm = algorithm

    def release(self) -> None:
        """File the column buffers back into the workspace pool; the object is empty afterwards."""
        for _, _, cols in self:
            workspace.give(cols)
        self.clear()


def columns_bytes(geo: ConvGeometry, itemsize: int) -> int:
    """Bytes of the whole batch's im2col columns (C*R*S, N*Ho*Wo)."""
    return geo.n * geo.rows * geo.out_hw[0] * geo.out_hw[1] * itemsize


def _grouped(a: np.ndarray, groups: int) -> np.ndarray:
    """(G*rows, cols) -> (G, rows, cols): the group becomes np.matmul's batch axis (always a view)."""
    return a.reshape(groups, a.shape[0] // groups, a.shape[1])


def forward(geo: ConvGeometry, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, keep_cols: bool):
    """y (N, K, Ho, Wo) as a view of a (K, N, Ho, Wo) buffer, and the chunks' columns (a ``Columns``) when
    ``keep_cols`` and they fit the keep limit, else None."""
    n, hw, rows, groups = geo.n, geo.out_hw[0] * geo.out_hw[1], geo.rows, geo.groups
    w_g = _grouped(w.astype(x.dtype, copy=False).reshape(geo.k, -1), groups)
    bias = None if b is None else b.astype(x.dtype, copy=False)[:, None]
    y = np.empty((geo.k, n, *geo.out_hw), dtype=x.dtype)
    y2 = y.reshape(geo.k, n * hw)
    keep = keep_cols and workspace.keepable(columns_bytes(geo, x.itemsize))

    def chunk(bounds):
        n0, n1 = bounds
        cols = im2col_into(geo, x[n0:n1], workspace.take((rows, (n1 - n0) * hw), x.dtype))
        out = y2[:, n0 * hw : n1 * hw]
        np.matmul(w_g, _grouped(cols, groups), out=_grouped(out, groups))
        if bias is not None:
            out += bias
        if keep:
            return n0, n1, cols
        workspace.give(cols)
        return None

    kept = parallel.run(chunk, workspace.batch_chunks(n, rows * hw * x.itemsize))
    return y.transpose(1, 0, 2, 3), (Columns(kept) if keep else None)


def backward_input(geo: ConvGeometry, dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """dx (N, C, H, W) as a view of a (C, N, H, W) buffer: per chunk dcols = W^T @ dY, then col2im. dy may be
    smaller than the output (a transposed conv's crop)."""
    n, c, h, wd = geo.x_shape
    out_hw = dy.shape[2:]
    hw, rows, groups = out_hw[0] * out_hw[1], geo.rows, geo.groups
    wt_g = _grouped(w.reshape(geo.k, -1), groups).transpose(0, 2, 1)  # (G, C/G*R*S, K/G)
    dy_mat, dy_buf = channel_rows(dy, workspace.take)
    # (C, N, H, W) like the columns, so each slice-add of col2im reads and writes along contiguous rows.
    dx = np.zeros((c, n, h, wd), dtype=dy.dtype)

    def chunk(bounds):
        n0, n1 = bounds
        dcols = workspace.take((rows, (n1 - n0) * hw), dy.dtype)
        np.matmul(wt_g, _grouped(dy_mat[:, n0 * hw : n1 * hw], groups), out=_grouped(dcols, groups))
        col2im_add(geo, dcols, dx[:, n0:n1], out_hw)
        workspace.give(dcols)

    parallel.run(chunk, workspace.batch_chunks(n, rows * hw * dy.itemsize))
    workspace.give(dy_buf)
    return dx.transpose(1, 0, 2, 3)


def backward_weight(geo: ConvGeometry, dy: np.ndarray, x: np.ndarray | None, cols=None) -> np.ndarray:
    """dw (K, C/G, R, S): dW = dY @ cols^T per group and batch chunk, summed in chunk order. ``cols``: the forward's
    ``Columns``, or one (C*R*S, N*Ho*Wo) matrix of the whole batch; None rebuilds them from x chunk by chunk."""
    out_hw = dy.shape[2:]
    hw, groups = out_hw[0] * out_hw[1], geo.groups
    dy_mat, dy_buf = channel_rows(dy, workspace.take)
    if cols is not None:
        parts = [(0, dy.shape[0], cols)] if isinstance(cols, np.ndarray) else list(cols)
    else:
        parts = [(n0, n1, None) for n0, n1 in workspace.batch_chunks(geo.n, geo.rows * hw * x.itemsize)]

    def chunk(part):
        n0, n1, chunk_cols = part
        buf = None
        if chunk_cols is None:
            buf = workspace.take((geo.rows, (n1 - n0) * hw), x.dtype)
            chunk_cols = im2col_into(geo, x[n0:n1], buf, out_hw)
        product = np.matmul(
            _grouped(chunk_cols.astype(dy.dtype, copy=False), groups),
            _grouped(dy_mat[:, n0 * hw : n1 * hw], groups).transpose(0, 2, 1),
        )
        workspace.give(buf)
        return product

    products = parallel.run(chunk, parts)
    dw_t = products[0]
    for product in products[1:]:
        # Chunks are summed in batch order: a fixed order for fixed settings, whatever the thread count.
        np.add(dw_t, product, out=dw_t)
    workspace.give(dy_buf)
    # (G, C/G*R*S, K/G) -> (K, C/G, R, S)
    return np.ascontiguousarray(dw_t.transpose(0, 2, 1)).reshape(geo.w_shape)
