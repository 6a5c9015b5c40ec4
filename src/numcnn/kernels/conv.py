"""2-D convolution and transposed convolution kernels: forward, grad-input, grad-weight, grad-bias.

Shapes follow PyTorch (NCHW). A convolution with ``groups`` G splits the C input channels and the K
output channels into G equal groups; output channel k only sees the input channels of its group, so
w has shape (K, C//G, R, S). Depthwise convolution is G == C.

Two algorithms compute the same numbers:

- ``"naive"``: the textbook seven nested loops, one multiply-add at a time. The readable reference,
  only for tiny inputs.
- ``"im2col"`` (default): unfold the receptive fields into a column matrix (see ``im2col.py``) and
  do the whole layer as one (batched over groups) matrix product.

The transposed convolution is the adjoint of a convolution, so its three kernels are the
convolution's kernels with the roles of input and output swapped.

Every kernel keeps the dtype of its main input: float32 stays float32, float64 stays float64.
Padding for ``conv2d_*`` is explicit ((top, bottom), (left, right)); ``same_padding`` resolves 'same'.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .im2col import Padding2d, Pair, _col2im, _im2col, col2im, conv_output_size, im2col, same_padding

__all__ = [
    "ALGORITHMS",
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

ALGORITHMS = ("im2col", "naive")


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown convolution algorithm {algorithm!r}; expected one of {ALGORITHMS}")


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
# im2col + GEMM


def _grouped(a: np.ndarray, groups: int) -> np.ndarray:
    """(G*rows, cols) -> (G, rows, cols): the group becomes np.matmul's batch axis (a view)."""
    return a.reshape(groups, a.shape[0] // groups, a.shape[1])


def _dy_matrix(dy: np.ndarray) -> np.ndarray:
    """(N, K, Ho, Wo) -> (K, N*Ho*Wo); free when dy is the transposed view conv2d_forward returns."""
    n, k, ho, wo = dy.shape
    return dy.transpose(1, 0, 2, 3).reshape(k, n * ho * wo)


def _conv2d_im2col(x, w, b, stride, padding, dilation, groups, out_hw):
    n, k = x.shape[0], w.shape[0]
    cols = _im2col(x, w.shape[2:], stride, padding, dilation, out_hw)
    w_mat = w.astype(x.dtype, copy=False).reshape(k, -1)
    y = np.matmul(_grouped(w_mat, groups), _grouped(cols, groups)).reshape(k, -1)
    if b is not None:
        y += b.astype(x.dtype, copy=False)[:, None]
    # (K, N, Ho, Wo) viewed as (N, K, Ho, Wo): no copy, the result is not C-contiguous.
    return y.reshape(k, n, *out_hw).transpose(1, 0, 2, 3), cols


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
    algorithm: str = "im2col",
    return_cols: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray | None]:
    """2-D cross-correlation, as torch.nn.functional.conv2d.

    x: (N, C, H, W); w: (K, C//groups, R, S); b: (K,) or None. Returns y: (N, K, Ho, Wo) with x's dtype,
    Ho = conv_output_size(H, R, sh, top + bottom, dh). With im2col, y is a transposed view of the GEMM
    output (not C-contiguous). With ``return_cols`` returns (y, cols): the column matrix
    (C*R*S, N*Ho*Wo) for ``conv2d_backward_weight(cols=...)``, or None with the naive algorithm.
    """
    _check_algorithm(algorithm)
    out_hw = _conv_output_hw(x.shape, w.shape, stride, padding, dilation, groups)
    if algorithm == "naive":
        y, cols = _conv2d_naive(x, w, stride, padding, dilation, groups, out_hw), None
        if b is not None:
            y += b.astype(x.dtype, copy=False)[:, None, None]
    else:
        y, cols = _conv2d_im2col(x, w, b, stride, padding, dilation, groups, out_hw)
    return (y, cols) if return_cols else y


def conv2d_backward_input(
    dy: np.ndarray,
    w: np.ndarray,
    x_shape: tuple[int, int, int, int],
    stride: Pair,
    padding: Padding2d,
    dilation: Pair,
    groups: int,
    algorithm: str = "im2col",
) -> np.ndarray:
    """Gradient of sum(dy * conv2d_forward(x, w)) with respect to x.

    dy: (N, K, Ho, Wo); w: (K, C//groups, R, S); x_shape: (N, C, H, W). Returns dx: (N, C, H, W) with
    dy's dtype. im2col: dcols = W^T @ dY per group, then col2im.
    """
    _check_algorithm(algorithm)
    x_shape = tuple(x_shape)
    out_hw = _grad_output_hw(dy, _conv_output_hw(x_shape, w.shape, stride, padding, dilation, groups))
    w = w.astype(dy.dtype, copy=False)
    if algorithm == "naive":
        return _conv2d_backward_input_naive(dy, w, x_shape, stride, padding, dilation, groups)
    w_mat = w.reshape(w.shape[0], -1)
    dcols = np.matmul(_grouped(w_mat, groups).transpose(0, 2, 1), _grouped(_dy_matrix(dy), groups))
    return _col2im(
        dcols.reshape(w_mat.shape[1] * groups, -1), x_shape, w.shape[2:], stride, padding, dilation, out_hw
    )


def conv2d_backward_weight(
    dy: np.ndarray,
    x: np.ndarray | None,
    w_shape: tuple[int, int, int, int],
    stride: Pair,
    padding: Padding2d,
    dilation: Pair,
    groups: int,
    algorithm: str = "im2col",
    cols: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of sum(dy * conv2d_forward(x, w)) with respect to w.

    dy: (N, K, Ho, Wo); x: (N, C, H, W), or None when ``cols`` is given; w_shape: (K, C//groups, R, S).
    Returns dw: w_shape with dy's dtype. im2col: dW = dY @ cols^T per group; ``cols`` (the forward's
    column matrix of x, from ``return_cols``) skips rebuilding it. It is ignored by the naive algorithm.
    """
    _check_algorithm(algorithm)
    w_shape = tuple(w_shape)
    if x is None:
        # The caller kept only the forward's columns (x itself need not stay alive for backward).
        if cols is None or algorithm != "im2col":
            raise ValueError(
                "conv2d_backward_weight: x may be None only with algorithm='im2col' and cols given"
            )
        out_hw = dy.shape[2:]
    else:
        out_hw = _grad_output_hw(dy, _conv_output_hw(x.shape, w_shape, stride, padding, dilation, groups))
    if algorithm == "naive":
        return _conv2d_backward_weight_naive(dy, x, w_shape, stride, padding, dilation, groups)
    if cols is None:
        cols = _im2col(x, w_shape[2:], stride, padding, dilation, out_hw)
    dw = np.matmul(
        _grouped(_dy_matrix(dy), groups),
        _grouped(cols.astype(dy.dtype, copy=False), groups).transpose(0, 2, 1),
    )
    return dw.reshape(w_shape)


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
    algorithm: str = "im2col",
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
    algorithm: str = "im2col",
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
    algorithm: str = "im2col",
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
