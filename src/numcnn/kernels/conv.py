"""2-D convolution and transposed convolution kernels: forward, grad-input, grad-weight, grad-bias.

Shapes follow PyTorch (NCHW). A convolution with ``groups`` G splits the C input channels and the K
output channels into G equal groups; output channel k only sees the input channels of its group, so
w has shape (K, C//G, R, S). Depthwise convolution is G == C.

Three algorithms compute the same numbers (to float rounding):

- ``"naive"``: the textbook seven nested loops, one multiply-add at a time. The readable reference,
  only for tiny inputs.
- ``"im2col"``: unfold the receptive fields into a column matrix (see ``im2col.py``) and do the layer
  as (batched over groups) matrix products, over the batch in cache-sized chunks (see ``workspace.py``)
  shared out over threads (``parallel.py``); grad-input of a stride-1 convolution sums the column
  gradients on the padded grid with R*S whole-row slice-adds, and a depthwise one skips the GEMM.
- ``"rowshift"``: stride 1 only; R long row copies per channel, a squarer GEMM over rows of the padded
  width, and S-1 shifted whole-row adds (see ``conv_rowshift.py``).

``"auto"`` (the default) picks im2col or rowshift for each pass by a fixed rule of the shapes
(``choose_algorithm``).

The transposed convolution is the adjoint of a convolution, so its three kernels are the
convolution's kernels with the roles of input and output swapped.

Every kernel keeps the dtype of its main input: float32 stays float32, float64 stays float64.
Padding for ``conv2d_*`` is explicit ((top, bottom), (left, right)); ``same_padding`` resolves 'same'.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from . import conv_rowshift, parallel, workspace
from .im2col import (
    Padding2d,
    Pair,
    _col2im_add,
    _im2col_into,
    col2im,
    conv_output_size,
    im2col,
    same_padding,
)

__all__ = [
    "ALGORITHMS",
    "Columns",
    "choose_algorithm",
    "col2im",
    "conv2d_backward_bias",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "conv2d_forward",
    "conv_output_size",
    "conv_transpose2d_backward_input",
    "conv_transpose2d_backward_weight",
    "conv_transpose2d_forward",
    "im2col",
    "same_padding",
]

ALGORITHMS = ("auto", "im2col", "naive", "rowshift")


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown convolution algorithm {algorithm!r}; expected one of {ALGORITHMS}")


PASSES = ("forward", "input", "weight")


def choose_algorithm(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: Pair,
    padding: Padding2d,
    dilation: Pair = (1, 1),
    groups: int = 1,
    pass_: str = "forward",
) -> str:
    """What ``algorithm="auto"`` runs for one pass ("forward", grad-"input" or grad-"weight") of a conv2d of
    x (N, C, H, W) with w (K, C/G, R, S): a fixed rule of the shapes, so the same model always computes the same
    way (deterministic bits). Strided convolutions and 1x1 kernels always take "im2col"; for stride 1:

    - forward: "rowshift" (conv_rowshift.py) when its GEMM is wide enough (C/G*R and K/G*S at least 16) and the
      padding columns it also computes are few (Wp <= 1.3 Wo: 3x3 'same' on 7x7, 5x5 on 14x14 and larger), else
      "im2col";
    - grad-input: "rowshift" unless the layer is depthwise-like (C/G < 2) or its GEMM too narrow (K/G*R < 8);
    - grad-weight: "im2col": its GEMM reduces over the batch in one product, where rowshift needs S of them
      over Wp/Wo times the positions. So when a training forward's im2col columns fit the keep limit,
      ``conv2d_forward(algorithm="auto", return_cols=True)`` builds them instead of running rowshift, and
      grad-weight reuses them (convnet step 32.8 ms all-im2col, 32.3 rowshift everywhere, 30.6 this way).

    Measured with 2 threads at batch 100 (ms, im2col vs rowshift), forward / grad-input / grad-weight:
    64->64 3x3 on 32x32 45.9 / 43.1 / 41.8 vs 37.6 / 38.5 / 44.7; 16->16 3x3 on 28x28 6.3 / 5.7 / 5.2 vs
    3.9 / 4.1 / 4.1; 32->32 3x3 on 14x14 4.9 / 3.8 / 2.4 vs 3.8 / 3.7 / 3.6; 16->32 5x5 on 14x14 (Wp = 1.29 Wo)
    4.8 / 6.9 / 2.6 vs 4.9 / 5.2 / 5.7 (its forward at batch 256: 11.7 vs 9.8; the convnet's inference at batch
    256 takes 28.3 ms with im2col there, 24.2 ms with rowshift).
    """
    if pass_ not in PASSES:
        raise ValueError(f"choose_algorithm: pass_ must be one of {PASSES}, got {pass_!r}")
    k, cg, r, s = w_shape
    kg = k // groups
    if tuple(stride) != (1, 1) or r * s == 1 or pass_ == "weight":
        return "im2col"
    if pass_ == "input":
        return "rowshift" if cg >= 2 and kg * r >= 8 else "im2col"
    (_, _), (left, right) = padding
    wp = x_shape[3] + left + right
    wo = wp - dilation[1] * (s - 1)
    return "rowshift" if cg * r >= 16 and kg * s >= 16 and 0 < wo and wp <= 1.3 * wo else "im2col"


def _resolve(algorithm: str, x_shape, w_shape, stride: Pair, padding: Padding2d, dilation: Pair, groups: int,
             pass_: str) -> str:
    _check_algorithm(algorithm)
    if algorithm == "auto":
        return choose_algorithm(x_shape, w_shape, stride, padding, dilation, groups, pass_)
    if algorithm == "rowshift" and tuple(stride) != (1, 1):
        raise ValueError(f"convolution algorithm 'rowshift' needs stride 1, got stride {tuple(stride)}; "
                         "use 'im2col' or 'auto'")
    return algorithm


def _conv_output_hw(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: Pair,
    padding: Padding2d,
    dilation: Pair,
    groups: int,
) -> Pair:
    """Validate a conv2d's shapes and return its output (Ho, Wo)."""
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ValueError(
            f"conv2d: expected 4-D x (N, C, H, W) and w (K, C/groups, R, S), got {x_shape}, {w_shape}"
        )
    c, k = x_shape[1], w_shape[0]
    if groups < 1 or c % groups or k % groups or w_shape[1] * groups != c:
        raise ValueError(
            f"conv2d: with groups={groups}, x of shape {tuple(x_shape)} needs w of shape "
            f"(K, {c}/{groups}, R, S) with K divisible by {groups}, got {tuple(w_shape)}"
        )
    hw = tuple(
        conv_output_size(x_shape[2 + i], w_shape[2 + i], stride[i], sum(padding[i]), dilation[i])
        for i in range(2)
    )
    if hw[0] <= 0 or hw[1] <= 0:
        raise ValueError(
            f"conv2d: kernel {tuple(w_shape[2:])} with dilation {tuple(dilation)} does not fit in input "
            f"{tuple(x_shape[2:])} padded by {tuple(padding)}"
        )
    return hw


def _grad_output_hw(dy: np.ndarray, full_hw: Pair) -> Pair:
    # A transposed conv with output_padding >= stride feeds a dy smaller than the conv's full output;
    # the missing positions are outputs whose gradient is zero. A larger dy is a caller error.
    ho, wo = dy.shape[2:]
    if ho > full_hw[0] or wo > full_hw[1]:
        raise ValueError(
            f"conv2d backward: dy spatial size {(ho, wo)} exceeds the conv output size {full_hw}"
        )
    return ho, wo


# ----------------------------------------------------------------------------------------------------
# naive reference


def _taps(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    out_hw: Pair,
    stride: Pair,
    padding: Padding2d,
    dilation: Pair,
    groups: int,
) -> Iterator[tuple[int, ...]]:
    """Every multiply of the convolution: y[n, k, oh, ow] += x[n, ci, ih, iw] * w[k, c, r, s].

    The textbook seven loops (n, k, oh, ow, c, r, s). Taps that land on the zero padding are skipped.
    Forward, grad-input and grad-weight are the same sum read three ways, so all three iterate this.
    """
    n_batch, _, h, w = x_shape
    k_out, c_per_group, kh, kw = w_shape
    k_per_group = k_out // groups
    (sh, sw), (dh, dw), ((top, _), (left, _)) = stride, dilation, padding
    for n in range(n_batch):
        for k in range(k_out):
            first_channel = (k // k_per_group) * c_per_group
            for oh in range(out_hw[0]):
                for ow in range(out_hw[1]):
                    for c in range(c_per_group):
                        for r in range(kh):
                            ih = oh * sh - top + r * dh
                            for s in range(kw):
                                iw = ow * sw - left + s * dw
                                if 0 <= ih < h and 0 <= iw < w:
                                    yield n, k, oh, ow, first_channel + c, c, r, s, ih, iw


def _conv2d_naive(x, w, stride, padding, dilation, groups, out_hw):
    y = np.zeros((x.shape[0], w.shape[0], *out_hw), dtype=x.dtype)
    for n, k, oh, ow, ci, c, r, s, ih, iw in _taps(
        x.shape, w.shape, out_hw, stride, padding, dilation, groups
    ):
        y[n, k, oh, ow] += x[n, ci, ih, iw] * w[k, c, r, s]
    return y


def _conv2d_backward_input_naive(dy, w, x_shape, stride, padding, dilation, groups):
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for n, k, oh, ow, ci, c, r, s, ih, iw in _taps(
        x_shape, w.shape, dy.shape[2:], stride, padding, dilation, groups
    ):
        dx[n, ci, ih, iw] += w[k, c, r, s] * dy[n, k, oh, ow]
    return dx


def _conv2d_backward_weight_naive(dy, x, w_shape, stride, padding, dilation, groups):
    dw = np.zeros(w_shape, dtype=dy.dtype)
    for n, k, oh, ow, ci, c, r, s, ih, iw in _taps(
        x.shape, w_shape, dy.shape[2:], stride, padding, dilation, groups
    ):
        dw[k, c, r, s] += x[n, ci, ih, iw] * dy[n, k, oh, ow]
    return dw


# ----------------------------------------------------------------------------------------------------
# im2col + GEMM, over the batch in chunks, chunks shared out over threads
#
# The column matrix of a whole batch is large (236 MB for 64->64 3x3 on 32x32 at batch 100) and writing it
# out to memory and reading it back costs as much as the GEMM. So the batch is cut into chunks whose
# columns stay small (``workspace.batch_chunks``: a function of the shapes and the budget only, so equal
# settings give equal bits), and the chunks run on the kernel threads (``parallel.run``), each unfolding
# its chunk into its own pooled buffer and multiplying it with a single-threaded GEMM. Every chunk writes
# its own slice of the output; grad-weight's per-chunk products are summed in chunk order, so the thread
# count never changes a result. The forward lends its chunks' columns to the backward (``return_cols``)
# when they are small enough to keep (``_keepable``); otherwise backward rebuilds them chunk by chunk.
#
# GEMM operand order is chosen for OpenBLAS: a product whose result has few rows and a long reduction
# (dY (K, L) @ cols.T (L, C*R*S)) runs up to 20x slower than the same product computed transposed,
# cols (C*R*S, L) @ dY.T (L, K), so grad-weight is formed as the latter and transposed (a tiny copy).


class Columns(list):
    """The forward's column matrices, one per batch chunk: ``[(n0, n1, cols), ...]``, cols (C*R*S, (n1-n0)*Ho*Wo)
    for ``algorithm == "im2col"``, the row copies E (C*R, (n1-n0)*Ho*Wp) for "rowshift".

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


def _keepable(nbytes: int) -> bool:
    # Columns up to the pool's size are kept from forward to backward: 31 MB for the convnet's 16->32 5x5
    # layer at batch 100 (saves rebuilding them, 3 ms), never the 236 MB of a 64->64 3x3 layer on 32x32.
    return nbytes <= workspace.pool_limit()


def _im2col_bytes(x: np.ndarray, w_shape: tuple[int, ...], out_hw: Pair) -> int:
    """Bytes of the whole batch's im2col columns (C*R*S, N*Ho*Wo)."""
    return x.shape[0] * x.shape[1] * w_shape[2] * w_shape[3] * out_hw[0] * out_hw[1] * x.itemsize


def _grouped(a: np.ndarray, groups: int) -> np.ndarray:
    """(G*rows, cols) -> (G, rows, cols): the group becomes np.matmul's batch axis (always a view)."""
    return a.reshape(groups, a.shape[0] // groups, a.shape[1])


def _dy_matrix(dy: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, K, Ho, Wo) -> (K, N*Ho*Wo), and the pooled buffer to give back when it had to be copied.

    Free when dy is laid out like conv2d_forward's output (a (K, N, Ho, Wo) buffer seen as NCHW).
    """
    n, k, ho, wo = dy.shape
    dy_t = dy.transpose(1, 0, 2, 3)
    if dy_t.flags.c_contiguous:
        return dy_t.reshape(k, n * ho * wo), None
    buf = workspace.take((k, n, ho, wo), dy.dtype)
    np.copyto(buf, dy_t)
    return buf.reshape(k, n * ho * wo), buf


def _conv2d_im2col(x, w, b, stride, padding, dilation, groups, out_hw, keep_cols):
    n, c = x.shape[:2]
    k, _, kh, kw = w.shape
    hw = out_hw[0] * out_hw[1]
    rows = c * kh * kw
    w_g = _grouped(w.astype(x.dtype, copy=False).reshape(k, -1), groups)
    bias = None if b is None else b.astype(x.dtype, copy=False)[:, None]
    y = np.empty((k, n, *out_hw), dtype=x.dtype)
    y2 = y.reshape(k, n * hw)
    keep = keep_cols and _keepable(_im2col_bytes(x, w.shape, out_hw))

    def chunk(bounds):
        n0, n1 = bounds
        cols = _im2col_into(
            x[n0:n1], (kh, kw), stride, padding, dilation, out_hw, workspace.take((rows, (n1 - n0) * hw), x.dtype)
        )
        out = y2[:, n0 * hw : n1 * hw]
        np.matmul(w_g, _grouped(cols, groups), out=_grouped(out, groups))
        if bias is not None:
            out += bias
        if keep:
            return n0, n1, cols
        workspace.give(cols)
        return None

    kept = parallel.run(chunk, workspace.batch_chunks(n, rows * hw * x.itemsize))
    # (K, N, Ho, Wo) viewed as (N, K, Ho, Wo): no copy, the result is not C-contiguous.
    return y.transpose(1, 0, 2, 3), (Columns(kept) if keep else None)


def _conv2d_backward_input_grid(dy, w, x_shape, padding, dilation, groups):
    """Stride-1 grad-input on the padded grid: col2im becomes R*S contiguous slice-adds.

    Per channel, a chunk of padded input planes is one flat row of length m*Hp*Wp, and output position
    (n, oh, ow) sits at grid index q = (n*Hp + oh)*Wp + ow. Tap (r, s) then reads input index q + r*dh*Wp
    + s*dw: a constant shift. So dY is laid on that grid (zeros elsewhere), one GEMM gives the column
    gradients at every grid index, and each tap's share is added to the input gradient as one shifted
    slice of whole rows (instead of Ho*N*C short rows). The GEMM does Hp*Wp/(Ho*Wo) times the useful
    work on the zero padding, which the long vectorised adds repay (10.5 -> 8 ms for 16->32 5x5 on 14x14,
    77 -> 59 ms for 64->64 3x3 on 32x32, batch 100, one thread).
    """
    n, c, h, wd = x_shape
    k, _, kh, kw = w.shape
    (dh, dw), ((top, bottom), (left, right)) = dilation, padding
    hp, wp = h + top + bottom, wd + left + right
    plane = hp * wp
    ho, wo = dy.shape[2:]
    rows = c * kh * kw
    span = dh * (kh - 1) * wp + dw * (kw - 1)
    offsets = [r * dh * wp + s * dw for r in range(kh) for s in range(kw)]
    wt_g = _grouped(w.reshape(k, -1), groups).transpose(0, 2, 1)  # (G, C/G*R*S, K/G)
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
            # One weight per channel and tap: a per-row scale of dY, no GEMM of inner dimension 1.
            tmp = dcols[:c, :valid]
            for t, off in enumerate(offsets):
                np.multiply(g[:, :valid], w_taps[:, t, None], out=tmp)
                grid[:, off : off + valid] += tmp
        else:
            np.matmul(wt_g, _grouped(g[:, :valid], groups), out=_grouped(dcols[:, :valid], groups))
            taps = dcols.reshape(c, kh * kw, m * plane)
            for t, off in enumerate(offsets):
                grid[:, off : off + valid] += taps[:, t, :valid]
        dx[:, n0:n1] = dx_grid[:, :, top : top + h, left : left + wd]
        for buf in (dy_grid, dx_grid, dcols):
            workspace.give(buf)

    parallel.run(chunk, workspace.batch_chunks(n, rows * plane * dy.itemsize))
    return dx.transpose(1, 0, 2, 3)


def _conv2d_backward_input_im2col(dy, w, x_shape, stride, padding, dilation, groups, out_hw):
    if tuple(stride) == (1, 1):
        return _conv2d_backward_input_grid(dy, w, x_shape, padding, dilation, groups)
    n, c, h, wd = x_shape
    k, _, kh, kw = w.shape
    hw = out_hw[0] * out_hw[1]
    rows = c * kh * kw
    wt_g = _grouped(w.reshape(k, -1), groups).transpose(0, 2, 1)  # (G, C/G*R*S, K/G)
    dy_mat, dy_buf = _dy_matrix(dy)
    # (C, N, H, W) like the columns, so each slice-add of col2im reads and writes along contiguous rows.
    dx = np.zeros((c, n, h, wd), dtype=dy.dtype)

    def chunk(bounds):
        n0, n1 = bounds
        dcols = workspace.take((rows, (n1 - n0) * hw), dy.dtype)
        np.matmul(wt_g, _grouped(dy_mat[:, n0 * hw : n1 * hw], groups), out=_grouped(dcols, groups))
        _col2im_add(dcols, dx[:, n0:n1], (kh, kw), stride, padding, dilation, out_hw)
        workspace.give(dcols)

    parallel.run(chunk, workspace.batch_chunks(n, rows * hw * dy.itemsize))
    workspace.give(dy_buf)
    return dx.transpose(1, 0, 2, 3)


def _conv2d_backward_weight_im2col(dy, x, cols, w_shape, stride, padding, dilation, groups, out_hw):
    k, _, kh, kw = w_shape
    hw = out_hw[0] * out_hw[1]
    dy_mat, dy_buf = _dy_matrix(dy)
    if cols is not None:
        if isinstance(cols, np.ndarray):
            cols = [(0, dy.shape[0], cols)]
        parts = [(n0, n1, c) for n0, n1, c in cols]
    else:
        n, c = x.shape[:2]
        rows = c * kh * kw
        parts = [(n0, n1, None) for n0, n1 in workspace.batch_chunks(n, rows * hw * x.itemsize)]

    def chunk(part):
        n0, n1, chunk_cols = part
        buf = None
        if chunk_cols is None:
            buf = workspace.take((x.shape[1] * kh * kw, (n1 - n0) * hw), x.dtype)
            chunk_cols = _im2col_into(x[n0:n1], (kh, kw), stride, padding, dilation, out_hw, buf)
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
    return np.ascontiguousarray(dw_t.transpose(0, 2, 1)).reshape(w_shape)


# ----------------------------------------------------------------------------------------------------
# conv2d


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: Pair = (1, 1),
    padding: Padding2d = ((0, 0), (0, 0)),
    dilation: Pair = (1, 1),
    groups: int = 1,
    algorithm: str = "auto",
    return_cols: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray | None]:
    """2-D cross-correlation, as torch.nn.functional.conv2d.

    x: (N, C, H, W); w: (K, C//groups, R, S); b: (K,) or None. Returns y: (N, K, Ho, Wo) with x's dtype,
    Ho = conv_output_size(H, R, sh, top + bottom, dh). ``algorithm``: one of ALGORITHMS; "auto" follows
    ``choose_algorithm`` (and, when ``return_cols``, prefers im2col columns that grad-weight can reuse). With
    im2col and rowshift, y is a transposed view of a (K, N, Ho, Wo) buffer (not C-contiguous). With
    ``return_cols`` returns (y, cols): the column matrices of the batch chunks (a ``Columns``) for
    ``conv2d_backward_weight(cols=...)``, lent by the workspace pool (call ``cols.release()`` after that
    backward); None with the naive algorithm, when the columns exceed the keep limit (the workspace pool's
    size; backward then rebuilds them from x chunk by chunk), or when "auto" ran rowshift for a grad-weight
    that will run im2col.
    """
    out_hw = _conv_output_hw(x.shape, w.shape, stride, padding, dilation, groups)
    weight_algorithm = _resolve(algorithm, x.shape, w.shape, stride, padding, dilation, groups, "weight")
    auto = algorithm == "auto"
    algorithm = _resolve(algorithm, x.shape, w.shape, stride, padding, dilation, groups, "forward")
    if auto and return_cols and algorithm != weight_algorithm == "im2col":
        # A grad-weight is coming and will run im2col: if its columns fit the keep limit, building them now
        # and keeping them costs less than rowshift's forward plus rebuilding them in backward.
        if _keepable(_im2col_bytes(x, w.shape, out_hw)):
            algorithm = "im2col"
    if algorithm == "naive":
        y, cols = _conv2d_naive(x, w, stride, padding, dilation, groups, out_hw), None
        if b is not None:
            y += b.astype(x.dtype, copy=False)[:, None, None]
    elif algorithm == "rowshift":
        geo = conv_rowshift.Geometry(x.shape, w.shape, padding, dilation, groups)
        # Under "auto" grad-weight runs im2col (rebuilding its columns from x): keeping E would be wasted.
        keep = return_cols and weight_algorithm == "rowshift"
        keep = keep and _keepable(x.shape[0] * geo.c * geo.r * geo.out_block * x.itemsize)
        y, rows = conv_rowshift.forward(x, w, b, padding, dilation, groups, keep)
        cols = Columns(rows, "rowshift") if keep else None
    else:
        y, cols = _conv2d_im2col(x, w, b, stride, padding, dilation, groups, out_hw, return_cols)
    return (y, cols) if return_cols else y


def conv2d_backward_input(
    dy: np.ndarray,
    w: np.ndarray,
    x_shape: tuple[int, int, int, int],
    stride: Pair,
    padding: Padding2d,
    dilation: Pair,
    groups: int,
    algorithm: str = "auto",
) -> np.ndarray:
    """Gradient of sum(dy * conv2d_forward(x, w)) with respect to x.

    dy: (N, K, Ho, Wo); w: (K, C//groups, R, S); x_shape: (N, C, H, W). Returns dx: (N, C, H, W) with
    dy's dtype. im2col: dcols = W^T @ dY per group, then col2im.
    """
    x_shape = tuple(x_shape)
    full_hw = _conv_output_hw(x_shape, w.shape, stride, padding, dilation, groups)
    out_hw = _grad_output_hw(dy, full_hw)
    algorithm = _resolve(algorithm, x_shape, w.shape, stride, padding, dilation, groups, "input")
    w = w.astype(dy.dtype, copy=False)
    if algorithm == "naive":
        return _conv2d_backward_input_naive(dy, w, x_shape, stride, padding, dilation, groups)
    if algorithm == "rowshift" and tuple(out_hw) == tuple(full_hw):
        return conv_rowshift.backward_input(dy, w, x_shape, padding, dilation, groups)
    return _conv2d_backward_input_im2col(dy, w, x_shape, stride, padding, dilation, groups, out_hw)


def conv2d_backward_weight(
    dy: np.ndarray,
    x: np.ndarray | None,
    w_shape: tuple[int, int, int, int],
    stride: Pair,
    padding: Padding2d,
    dilation: Pair,
    groups: int,
    algorithm: str = "auto",
    cols: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of sum(dy * conv2d_forward(x, w)) with respect to w.

    dy: (N, K, Ho, Wo); x: (N, C, H, W), or None when ``cols`` is given; w_shape: (K, C//groups, R, S).
    Returns dw: w_shape with dy's dtype. im2col: dW = dY @ cols^T per group and batch chunk, summed in
    chunk order; ``cols`` (the forward's ``Columns`` from ``return_cols``, or one (C*R*S, N*Ho*Wo) column
    matrix of the whole batch) skips rebuilding them. It is ignored by the naive algorithm.
    """
    _check_algorithm(algorithm)
    w_shape = tuple(w_shape)
    kept = cols.algorithm if isinstance(cols, Columns) else ("im2col" if cols is not None else None)
    if x is None:
        # The caller kept only the forward's columns (x itself need not stay alive for backward).
        if kept is None or algorithm == "naive":
            raise ValueError(
                "conv2d_backward_weight: x may be None only with the forward's cols given (not with 'naive')"
            )
        algorithm = kept
        out_hw = full_hw = dy.shape[2:]
    else:
        full_hw = _conv_output_hw(x.shape, w_shape, stride, padding, dilation, groups)
        out_hw = _grad_output_hw(dy, full_hw)
        if algorithm == "auto" and kept is not None:
            algorithm = kept  # the forward's columns or rows are already built
        algorithm = _resolve(algorithm, x.shape, w_shape, stride, padding, dilation, groups, "weight")
    if algorithm == "naive":
        return _conv2d_backward_weight_naive(dy, x, w_shape, stride, padding, dilation, groups)
    if kept is not None and kept != algorithm:
        raise ValueError(f"conv2d_backward_weight: cols come from the {kept!r} algorithm, not {algorithm!r}")
    if algorithm == "rowshift" and tuple(out_hw) == tuple(full_hw):
        return conv_rowshift.backward_weight(dy, x, cols, w_shape, padding, dilation, groups)
    if algorithm == "rowshift":  # a transposed conv's cropped dy: the im2col path handles it, from x
        algorithm, cols = "im2col", None
    return _conv2d_backward_weight_im2col(dy, x, cols, w_shape, stride, padding, dilation, groups, out_hw)


def conv2d_backward_bias(dy: np.ndarray) -> np.ndarray:
    """Gradient of sum(dy * conv2d_forward(x, w, b)) with respect to b. dy: (N, K, Ho, Wo) -> db: (K,)."""
    return dy.sum(axis=(0, 2, 3))


# ----------------------------------------------------------------------------------------------------
# conv_transpose2d: x lives where a conv2d's output lives, y where its input lives


def _transpose_geometry(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: Pair,
    padding: Pair,
    output_padding: Pair,
    dilation: Pair,
    groups: int,
) -> tuple[tuple[int, int, int, int], Padding2d]:
    """Validate a conv_transpose2d; return its output shape and the padding of its adjoint conv2d."""
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ValueError(
            "conv_transpose2d: expected 4-D x (N, Cin, H, W) and w (Cin, Cout/groups, R, S), "
            f"got {x_shape}, {w_shape}"
        )
    if groups < 1 or x_shape[1] != w_shape[0] or w_shape[0] % groups:
        raise ValueError(
            f"conv_transpose2d: with groups={groups}, x of shape {tuple(x_shape)} needs w of shape "
            f"({x_shape[1]}, Cout/{groups}, R, S) with {x_shape[1]} divisible by {groups}, "
            f"got {tuple(w_shape)}"
        )
    for i in range(2):
        if not 0 <= output_padding[i] < max(stride[i], dilation[i]):
            raise ValueError(
                f"conv_transpose2d: output_padding {tuple(output_padding)} must be smaller than either "
                f"stride {tuple(stride)} or dilation {tuple(dilation)}"
            )
    out_hw = [
        (x_shape[2 + i] - 1) * stride[i]
        - 2 * padding[i]
        + dilation[i] * (w_shape[2 + i] - 1)
        + output_padding[i]
        + 1
        for i in range(2)
    ]
    if out_hw[0] <= 0 or out_hw[1] <= 0:
        raise ValueError(f"conv_transpose2d: output size {tuple(out_hw)} is not positive")
    y_shape = (x_shape[0], w_shape[1] * groups, out_hw[0], out_hw[1])
    return y_shape, ((padding[0], padding[0]), (padding[1], padding[1]))


def conv_transpose2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: Pair = (1, 1),
    padding: Pair = (0, 0),
    output_padding: Pair = (0, 0),
    dilation: Pair = (1, 1),
    groups: int = 1,
    algorithm: str = "auto",
) -> np.ndarray:
    """Transposed convolution, as torch.nn.functional.conv_transpose2d.

    x: (N, Cin, H, W); w: (Cin, Cout//groups, R, S); b: (Cout,) or None. Returns y: (N, Cout, Hout, Wout)
    with x's dtype, Hout = (H-1)*sh - 2*ph + dh*(R-1) + oph + 1. It is conv2d_backward_input of the conv2d
    (Cout -> Cin channels, weight w, same stride/padding/dilation/groups) whose output x would be.
    """
    y_shape, conv_padding = _transpose_geometry(
        x.shape, w.shape, stride, padding, output_padding, dilation, groups
    )
    y = conv2d_backward_input(x, w, y_shape, stride, conv_padding, dilation, groups, algorithm)
    if b is not None:
        y += b.astype(y.dtype, copy=False)[:, None, None]
    return y


def conv_transpose2d_backward_input(
    dy: np.ndarray,
    w: np.ndarray,
    x_shape: tuple[int, int, int, int],
    stride: Pair,
    padding: Pair,
    output_padding: Pair,
    dilation: Pair,
    groups: int,
    algorithm: str = "auto",
) -> np.ndarray:
    """Gradient of sum(dy * conv_transpose2d_forward(x, w)) with respect to x.

    dy: (N, Cout, Hout, Wout); w: (Cin, Cout//groups, R, S); x_shape: (N, Cin, H, W). Returns dx:
    (N, Cin, H, W) with dy's dtype: the forward conv2d of dy, cropped to (H, W) (output_padding >=
    stride, allowed when dilation > stride, makes that conv's output larger than x).
    """
    _check_algorithm(algorithm)
    x_shape = tuple(x_shape)
    _, conv_padding = _transpose_geometry(x_shape, w.shape, stride, padding, output_padding, dilation, groups)
    dx = conv2d_forward(
        dy, w.astype(dy.dtype, copy=False), None, stride, conv_padding, dilation, groups, algorithm
    )
    return dx[:, :, : x_shape[2], : x_shape[3]]


def conv_transpose2d_backward_weight(
    dy: np.ndarray,
    x: np.ndarray,
    w_shape: tuple[int, int, int, int],
    stride: Pair,
    padding: Pair,
    output_padding: Pair,
    dilation: Pair,
    groups: int,
    algorithm: str = "auto",
) -> np.ndarray:
    """Gradient of sum(dy * conv_transpose2d_forward(x, w)) with respect to w.

    dy: (N, Cout, Hout, Wout); x: (N, Cin, H, W); w_shape: (Cin, Cout//groups, R, S). Returns dw: w_shape
    with dy's dtype: conv2d's grad-weight with x as the conv's output gradient and dy as its input.
    """
    _check_algorithm(algorithm)
    w_shape = tuple(w_shape)
    _, conv_padding = _transpose_geometry(x.shape, w_shape, stride, padding, output_padding, dilation, groups)
    return conv2d_backward_weight(
        x.astype(dy.dtype, copy=False), dy, w_shape, stride, conv_padding, dilation, groups, algorithm
    )
