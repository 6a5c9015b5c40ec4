"""Convolution kernels against four references: hand-computed values, the naive seven-loop kernel,
PyTorch (forward and autograd gradients), and central finite differences in float64."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finite_diff import numgrad
from numcnn.kernels.conv import (
    ConvGeometry,
    choose,
    col2im,
    conv2d_backward_bias,
    conv2d_backward_input,
    conv2d_backward_weight,
    conv2d_forward,
    conv_output_size,
    conv_transpose2d_backward_input,
    conv_transpose2d_backward_weight,
    conv_transpose2d_forward,
    im2col,
    same_padding,
)
from numcnn.kernels.runtime import runtime

ALGORITHMS = ["naive", "im2col", "gemm"]


# ------------------------------------------------------------------------------------------------
# configurations


class ConvCase(NamedTuple):
    n: int
    c: int
    k: int
    hw: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]
    dilation: tuple[int, int]
    groups: int

    @property
    def x_shape(self):
        return (self.n, self.c, *self.hw)

    @property
    def w_shape(self):
        return (self.k, self.c // self.groups, *self.kernel)

    @property
    def y_shape(self):
        out = [
            conv_output_size(
                self.hw[i], self.kernel[i], self.stride[i], sum(self.padding[i]), self.dilation[i]
            )
            for i in range(2)
        ]
        return (self.n, self.k, *out)

    @property
    def geometry(self):
        """The positional (stride, padding, dilation, groups) the backward kernels take."""
        return self.stride, self.padding, self.dilation, self.groups


class TransposeCase(NamedTuple):
    n: int
    c_in: int
    c_out: int
    hw: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    output_padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    @property
    def x_shape(self):
        return (self.n, self.c_in, *self.hw)

    @property
    def w_shape(self):
        return (self.c_in, self.c_out // self.groups, *self.kernel)

    @property
    def geometry(self):
        return self.stride, self.padding, self.output_padding, self.dilation, self.groups


def _groups_and_channels(draw) -> tuple[int, int, int]:
    """(groups, C, K) for a dense, grouped or depthwise convolution."""
    mode = draw(st.sampled_from(["dense", "grouped", "depthwise"]))
    if mode == "dense":
        return 1, draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if mode == "grouped":
        g = draw(st.integers(2, 3))
        return g, g * draw(st.integers(1, 2)), g * draw(st.integers(1, 2))
    g = draw(st.integers(1, 4))
    return g, g, g * draw(st.integers(1, 2))


@st.composite
def conv_cases(draw) -> ConvCase:
    groups, c, k = _groups_and_channels(draw)
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    hw = []
    for i in range(2):
        smallest = max(1, dilation[i] * (kernel[i] - 1) + 1 - sum(padding[i]))
        hw.append(draw(st.integers(smallest, smallest + 4)))
    return ConvCase(draw(st.integers(1, 2)), c, k, tuple(hw), kernel, stride, padding, dilation, groups)


@st.composite
def transpose_cases(draw) -> TransposeCase:
    groups, c_in, c_out = _groups_and_channels(draw)
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    hw = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    output_padding = tuple(draw(st.integers(0, max(stride[i], dilation[i]) - 1)) for i in range(2))
    # The largest padding that still leaves a positive output size.
    padding = tuple(
        draw(
            st.integers(
                0, min(2, ((hw[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + output_padding[i]) // 2)
            )
        )
        for i in range(2)
    )
    return TransposeCase(
        draw(st.integers(1, 2)), c_in, c_out, hw, kernel, stride, padding, output_padding, dilation, groups
    )


seeds = st.integers(0, 2**32 - 1)


def _data(seed, *shapes, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _k_major(a):
    """The same values laid out like conv2d_forward's output: a (K, N, H, W) buffer seen as NCHW."""
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def _torch_pad(padding):
    (top, bottom), (left, right) = padding
    return (left, right, top, bottom)


def _assert_close32(actual, expected, terms):
    """float32 against float32: the rounding error of a sum grows with its number of terms."""
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-6 * max(terms, 1))


# ------------------------------------------------------------------------------------------------
# geometry and hand-computed values


@pytest.mark.parametrize(
    "args, expected",
    [
        ((28, 5, 1, 0, 1), 24),
        ((28, 5, 1, 4, 1), 28),
        ((7, 3, 2, 2, 1), 4),
        ((10, 3, 1, 0, 2), 6),
        ((4, 3, 3, 0, 1), 1),
        ((2, 3, 1, 0, 1), 0),
    ],
)
def test_conv_output_size_hand_values(args, expected):
    assert conv_output_size(*args) == expected


@pytest.mark.parametrize(
    "kernel, dilation, expected",
    [
        ((3, 3), (1, 1), ((1, 1), (1, 1))),
        ((4, 2), (1, 1), ((1, 2), (0, 1))),
        ((2, 3), (3, 2), ((1, 2), (2, 2))),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
def test_same_padding_matches_torch_same(kernel, dilation, expected):
    torch = pytest.importorskip("torch")
    assert same_padding(kernel, dilation) == expected
    x, w = _data(0, (1, 2, 7, 6), (3, 2, *kernel), dtype=np.float32)
    y = conv2d_forward(x, w, padding=same_padding(kernel, dilation), dilation=dilation)
    ref = torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(w), padding="same", dilation=dilation
    )
    assert y.shape == x.shape[:1] + (3,) + x.shape[2:]
    _assert_close32(y, ref.numpy(), 2 * kernel[0] * kernel[1])


def test_im2col_hand_example():
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    cols = im2col(x, (2, 2), (1, 1), ((0, 0), (0, 0)), (1, 1))
    # row = kernel tap (r, s), column = output pixel (oh, ow)
    expected = np.array([[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]], dtype=np.float32)
    np.testing.assert_array_equal(cols, expected)
    assert cols.dtype == np.float32


def test_col2im_hand_example():
    # Every window of a 2x2 kernel on a 3x3 input writes ones: each pixel receives one per window covering it.
    dx = col2im(np.ones((4, 4), dtype=np.float32), (1, 1, 3, 3), (2, 2), (1, 1), ((0, 0), (0, 0)), (1, 1))
    np.testing.assert_array_equal(dx[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_conv2d_hand_example_stride_padding():
    # 1 channel, 3x3 input of ones, 2x2 kernel of ones, stride 2, one row of zeros on top only.
    x = np.ones((1, 1, 3, 3), dtype=np.float64)
    w = np.ones((1, 1, 2, 2), dtype=np.float64)
    for algorithm in ALGORITHMS:
        y = conv2d_forward(x, w, np.array([0.5]), (2, 2), ((1, 0), (0, 0)), algorithm=algorithm)
        np.testing.assert_array_equal(y[0, 0], [[2.5], [4.5]])


# ------------------------------------------------------------------------------------------------
# im2col / col2im


@given(case=conv_cases(), seed=seeds)
def test_im2col_matches_torch_unfold(case, seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    (x,) = _data(seed, case.x_shape)
    cols = im2col(x, case.kernel, case.stride, case.padding, case.dilation)
    xp = F.pad(torch.from_numpy(x), _torch_pad(case.padding))
    ref = F.unfold(xp, case.kernel, dilation=case.dilation, stride=case.stride)  # (N, C*R*S, L)
    np.testing.assert_array_equal(cols, ref.permute(1, 0, 2).reshape(cols.shape[0], -1).numpy())


@given(case=conv_cases(), seed=seeds)
def test_col2im_matches_torch_fold(case, seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    n, _, ho, wo = case.y_shape
    rows = case.c * case.kernel[0] * case.kernel[1]
    (cols,) = _data(seed, (rows, n * ho * wo))
    dx = col2im(cols, case.x_shape, case.kernel, case.stride, case.padding, case.dilation)
    (top, bottom), (left, right) = case.padding
    h, w = case.hw
    folded = F.fold(
        torch.from_numpy(cols).reshape(rows, n, ho * wo).permute(1, 0, 2),
        (h + top + bottom, w + left + right),
        case.kernel,
        dilation=case.dilation,
        stride=case.stride,
    )
    np.testing.assert_allclose(
        dx, folded[:, :, top : top + h, left : left + w].numpy(), rtol=1e-12, atol=1e-12
    )


@given(case=conv_cases(), seed=seeds)
def test_col2im_is_the_adjoint_of_im2col(case, seed):
    n, _, ho, wo = case.y_shape
    x, c = _data(seed, case.x_shape, (case.c * case.kernel[0] * case.kernel[1], n * ho * wo))
    lhs = np.vdot(im2col(x, case.kernel, case.stride, case.padding, case.dilation), c)
    rhs = np.vdot(x, col2im(c, case.x_shape, case.kernel, case.stride, case.padding, case.dilation))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# conv2d: im2col against the naive reference, and both against PyTorch


@given(case=conv_cases(), seed=seeds)
def test_conv2d_im2col_matches_naive(case, seed):
    x, w, b, dy = _data(seed, case.x_shape, case.w_shape, (case.k,), case.y_shape)
    geometry = case.geometry
    y_ref = conv2d_forward(x, w, b, *geometry, algorithm="naive")
    y, cols = conv2d_forward(x, w, b, *geometry, algorithm="im2col", return_cols=True)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)

    dx_ref = conv2d_backward_input(dy, w, x.shape, *geometry, algorithm="naive")
    dw_ref = conv2d_backward_weight(dy, x, w.shape, *geometry, algorithm="naive")
    # dy as it usually arrives: laid out like the forward's output, plain, and with the forward's cols
    for dy_in in (dy, _k_major(dy)):
        np.testing.assert_allclose(conv2d_backward_input(dy_in, w, x.shape, *geometry), dx_ref, atol=1e-12)
        np.testing.assert_allclose(conv2d_backward_weight(dy_in, x, w.shape, *geometry), dw_ref, atol=1e-12)
    np.testing.assert_allclose(
        conv2d_backward_weight(dy, x, w.shape, *geometry, cols=cols), dw_ref, atol=1e-12
    )
    np.testing.assert_allclose(conv2d_backward_bias(dy), dy.sum(axis=(0, 2, 3)), atol=1e-12)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@given(case=conv_cases(), seed=seeds)
def test_conv2d_matches_torch(algorithm, case, seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b, dy = _data(seed, case.x_shape, case.w_shape, (case.k,), case.y_shape, dtype=np.float32)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = F.conv2d(F.pad(xt, _torch_pad(case.padding)), wt, bt, case.stride, 0, case.dilation, case.groups)
    yt.backward(torch.from_numpy(dy))

    n, k, ho, wo = case.y_shape
    y = conv2d_forward(x, w, b, *case.geometry, algorithm=algorithm)
    _assert_close32(y, yt.detach().numpy(), w[0].size)
    dx = conv2d_backward_input(dy, w, x.shape, *case.geometry, algorithm=algorithm)
    _assert_close32(dx, xt.grad.numpy(), w.size // case.groups)
    dw = conv2d_backward_weight(dy, x, w.shape, *case.geometry, algorithm=algorithm)
    _assert_close32(dw, wt.grad.numpy(), n * ho * wo)
    _assert_close32(conv2d_backward_bias(dy), bt.grad.numpy(), n * ho * wo)
    assert {a.dtype for a in (y, dx, dw, conv2d_backward_bias(dy))} == {np.dtype(np.float32)}


# ------------------------------------------------------------------------------------------------
# conv_transpose2d


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@given(case=transpose_cases(), seed=seeds)
def test_conv_transpose2d_matches_torch(algorithm, case, seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b = _data(seed, case.x_shape, case.w_shape, (case.c_out,), dtype=np.float32)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    stride, padding, output_padding, dilation, groups = case.geometry
    yt = F.conv_transpose2d(xt, wt, bt, stride, padding, output_padding, groups, dilation)
    (dy,) = _data(seed + 1, tuple(yt.shape), dtype=np.float32)
    yt.backward(torch.from_numpy(dy))

    y = conv_transpose2d_forward(x, w, b, *case.geometry, algorithm=algorithm)
    assert y.shape == tuple(yt.shape)
    _assert_close32(y, yt.detach().numpy(), w.size // groups)
    dx = conv_transpose2d_backward_input(dy, w, x.shape, *case.geometry, algorithm=algorithm)
    _assert_close32(dx, xt.grad.numpy(), w[0].size)
    dw = conv_transpose2d_backward_weight(dy, x, w.shape, *case.geometry, algorithm=algorithm)
    _assert_close32(dw, wt.grad.numpy(), x.shape[0] * x.shape[2] * x.shape[3])
    _assert_close32(conv2d_backward_bias(dy), bt.grad.numpy(), dy.size // dy.shape[1])
    assert {a.dtype for a in (y, dx, dw)} == {np.dtype(np.float32)}


@given(case=transpose_cases(), seed=seeds)
def test_conv_transpose2d_im2col_matches_naive(case, seed):
    x, w, b = _data(seed, case.x_shape, case.w_shape, (case.c_out,))
    y_ref = conv_transpose2d_forward(x, w, b, *case.geometry, algorithm="naive")
    np.testing.assert_allclose(conv_transpose2d_forward(x, w, b, *case.geometry), y_ref, atol=1e-12)
    (dy,) = _data(seed + 1, y_ref.shape)
    for fn, args in (
        (conv_transpose2d_backward_input, (dy, w, x.shape)),
        (conv_transpose2d_backward_weight, (dy, x, w.shape)),
    ):
        expected = fn(*args, *case.geometry, algorithm="naive")
        np.testing.assert_allclose(fn(*args, *case.geometry), expected, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# central finite differences (float64): the backward kernels are the gradients of sum(dy * forward)
# (each loss is linear in each array, so h = 1e-3 is exact up to rounding)




CONV_FD_CASES = {
    "dense-stride-dilation-asym-pad": ConvCase(1, 2, 3, (5, 4), (2, 3), (2, 1), ((1, 0), (2, 1)), (1, 2), 1),
    "grouped": ConvCase(1, 4, 2, (4, 3), (3, 3), (1, 1), ((1, 1), (0, 1)), (1, 1), 2),
    "depthwise": ConvCase(2, 3, 3, (4, 4), (3, 2), (1, 2), ((0, 2), (1, 0)), (2, 1), 3),
}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("case", CONV_FD_CASES.values(), ids=CONV_FD_CASES.keys())
def test_conv2d_gradients_match_finite_differences(algorithm, case):
    x, w, b, dy = _data(7, case.x_shape, case.w_shape, (case.k,), case.y_shape)

    def loss():
        return np.vdot(dy, conv2d_forward(x, w, b, *case.geometry, algorithm=algorithm))

    dx = conv2d_backward_input(dy, w, x.shape, *case.geometry, algorithm=algorithm)
    dw = conv2d_backward_weight(dy, x, w.shape, *case.geometry, algorithm=algorithm)
    np.testing.assert_allclose(dx, numgrad(loss, x, h=1e-3), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(dw, numgrad(loss, w, h=1e-3), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(conv2d_backward_bias(dy), numgrad(loss, b, h=1e-3), rtol=1e-7, atol=1e-9)


TRANSPOSE_FD_CASES = {
    "stride-output-padding": TransposeCase(1, 2, 2, (3, 2), (2, 3), (2, 1), (1, 0), (1, 0), (1, 2), 1),
    # output_padding >= stride (allowed since dilation > stride): dy is smaller than the adjoint conv's output
    "grouped-dilation-above-stride": TransposeCase(
        1, 4, 2, (3, 3), (2, 2), (1, 1), (0, 1), (1, 1), (2, 2), 2
    ),
}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("case", TRANSPOSE_FD_CASES.values(), ids=TRANSPOSE_FD_CASES.keys())
def test_conv_transpose2d_gradients_match_finite_differences(algorithm, case):
    x, w = _data(11, case.x_shape, case.w_shape)
    (dy,) = _data(12, conv_transpose2d_forward(x, w, None, *case.geometry).shape)

    def loss():
        return np.vdot(dy, conv_transpose2d_forward(x, w, None, *case.geometry, algorithm=algorithm))

    dx = conv_transpose2d_backward_input(dy, w, x.shape, *case.geometry, algorithm=algorithm)
    dw = conv_transpose2d_backward_weight(dy, x, w.shape, *case.geometry, algorithm=algorithm)
    np.testing.assert_allclose(dx, numgrad(loss, x, h=1e-3), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(dw, numgrad(loss, w, h=1e-3), rtol=1e-7, atol=1e-9)


# ------------------------------------------------------------------------------------------------
# dtypes and errors


@pytest.mark.parametrize("algorithm", [*ALGORITHMS, "rowshift", "auto"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_kernel_preserves_dtype(algorithm, dtype):
    case = CONV_FD_CASES["grouped"]
    x64, w64, b64, dy64 = _data(3, case.x_shape, case.w_shape, (case.k,), case.y_shape)
    x, w, b, dy = (a.astype(dtype) for a in (x64, w64, b64, dy64))
    g = case.geometry
    tc = TRANSPOSE_FD_CASES["grouped-dilation-above-stride"]
    tx64, tw64, tb64 = _data(4, tc.x_shape, tc.w_shape, (tc.c_out,))
    tx, tw, tb = (a.astype(dtype) for a in (tx64, tw64, tb64))
    tdy64 = conv_transpose2d_forward(tx64, tw64, tb64, *tc.geometry)
    tdy = tdy64.astype(dtype)

    def run(x, w, b, dy, tx, tw, tb, tdy):
        y, cols = conv2d_forward(x, w, b, *g, algorithm=algorithm, return_cols=True)
        outs = [
            y,
            conv2d_backward_input(dy, w, x.shape, *g, algorithm=algorithm),
            conv2d_backward_weight(dy, x, w.shape, *g, algorithm=algorithm, cols=cols),
            conv2d_backward_bias(dy),
            conv_transpose2d_forward(tx, tw, tb, *tc.geometry, algorithm=algorithm),
            conv_transpose2d_backward_input(tdy, tw, tx.shape, *tc.geometry, algorithm=algorithm),
            conv_transpose2d_backward_weight(tdy, tx, tw.shape, *tc.geometry, algorithm=algorithm),
            im2col(x, case.kernel, case.stride, case.padding, case.dilation),
        ]
        outs.append(col2im(outs[-1], x.shape, case.kernel, case.stride, case.padding, case.dilation))
        return outs + ([] if cols is None else [c for _, _, c in cols])

    ref = run(x64, w64, b64, dy64, tx64, tw64, tb64, tdy64)
    for out, expected in zip(run(x, w, b, dy, tx, tw, tb, tdy), ref, strict=True):
        assert out.dtype == dtype
        np.testing.assert_allclose(out, expected, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4)


def test_float32_input_with_float64_weight_stays_float32():
    case = CONV_FD_CASES["dense-stride-dilation-asym-pad"]
    x, w, b = _data(5, case.x_shape, case.w_shape, (case.k,))
    y = conv2d_forward(x.astype(np.float32), w, b, *case.geometry)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, conv2d_forward(x, w, b, *case.geometry), rtol=1e-4, atol=1e-5)


def test_unknown_algorithm_names_the_allowed_ones():
    x, w = _data(0, (1, 1, 3, 3), (1, 1, 2, 2))
    dy = np.ones((1, 1, 2, 2))
    calls = [
        lambda: conv2d_forward(x, w, algorithm="winograd"),
        lambda: conv2d_backward_input(dy, w, x.shape, (1, 1), ((0, 0), (0, 0)), (1, 1), 1, "winograd"),
        lambda: conv2d_backward_weight(dy, x, w.shape, (1, 1), ((0, 0), (0, 0)), (1, 1), 1, "winograd"),
        lambda: conv_transpose2d_forward(x, w, algorithm="winograd"),
        lambda: conv_transpose2d_backward_input(
            x, w, dy.shape, (1, 1), (0, 0), (0, 0), (1, 1), 1, "winograd"
        ),
        lambda: conv_transpose2d_backward_weight(
            x, dy, w.shape, (1, 1), (0, 0), (0, 0), (1, 1), 1, "winograd"
        ),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"'winograd'.*'reference', 'gemm', 'im2col'.*'naive'"):
            call()


def test_bad_shapes_are_refused_with_a_message():
    x, w = _data(0, (1, 4, 5, 5), (2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: expected input with 6 channels \(weight \(2, 3, 3, 3\), "
                                         r"groups=2\), got shape \(1, 4, 5, 5\)"):
        conv2d_forward(x, w, groups=2)
    with pytest.raises(ValueError, match=r"conv2d: kernel size \(3, 3\) \(dilated\) is larger than the padded"):
        conv2d_forward(x[:, :3, :2], w)
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose2d_forward(x, np.zeros((4, 2, 3, 3)), stride=(2, 2), output_padding=(2, 0))


# ------------------------------------------------------------------------------------------------
# rowshift (stride 1 only) and the "auto" rule


@st.composite
def stride1_conv_cases(draw) -> ConvCase:
    case = draw(conv_cases())
    return case._replace(stride=(1, 1))


@given(case=stride1_conv_cases(), seed=seeds)
def test_rowshift_matches_naive_with_and_without_kept_rows(case, seed):
    x, w, b, dy = _data(seed, case.x_shape, case.w_shape, (case.k,), case.y_shape)
    g = case.geometry
    y, rows = conv2d_forward(x, w, b, *g, algorithm="rowshift", return_cols=True)
    np.testing.assert_allclose(y, conv2d_forward(x, w, b, *g, algorithm="naive"), rtol=1e-10, atol=1e-12)
    dx_ref = conv2d_backward_input(dy, w, x.shape, *g, algorithm="naive")
    dw_ref = conv2d_backward_weight(dy, x, w.shape, *g, algorithm="naive")
    for dy_in in (dy, _k_major(dy)):
        np.testing.assert_allclose(conv2d_backward_input(dy_in, w, x.shape, *g, algorithm="rowshift"), dx_ref,
                                   atol=1e-12)
        np.testing.assert_allclose(conv2d_backward_weight(dy_in, x, w.shape, *g, algorithm="rowshift"), dw_ref,
                                   atol=1e-12)
    assert rows is not None and rows.algorithm == "rowshift"
    # From the kept rows alone (x not needed), and the same bits as rebuilding them from x.
    kept = conv2d_backward_weight(dy, None, w.shape, *g, algorithm="rowshift", cols=rows)
    np.testing.assert_array_equal(kept, conv2d_backward_weight(dy, x, w.shape, *g, algorithm="rowshift"))
    rows.release()


@given(case=stride1_conv_cases(), seed=seeds)
def test_rowshift_matches_torch_in_float32(case, seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b, dy = _data(seed, case.x_shape, case.w_shape, (case.k,), case.y_shape, dtype=np.float32)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = F.conv2d(F.pad(xt, _torch_pad(case.padding)), wt, bt, 1, 0, case.dilation, case.groups)
    yt.backward(torch.from_numpy(dy))
    n, k, ho, wo = case.y_shape
    g = case.geometry
    _assert_close32(conv2d_forward(x, w, b, *g, algorithm="rowshift"), yt.detach().numpy(), w[0].size)
    _assert_close32(conv2d_backward_input(dy, w, x.shape, *g, algorithm="rowshift"), xt.grad.numpy(),
                    w.size // case.groups)
    _assert_close32(conv2d_backward_weight(dy, x, w.shape, *g, algorithm="rowshift"), wt.grad.numpy(),
                    n * ho * wo)


@pytest.mark.parametrize("case", [c for c in CONV_FD_CASES.values() if c.stride == (1, 1)])
def test_rowshift_gradients_match_finite_differences(case):
    x, w, b, dy = _data(7, case.x_shape, case.w_shape, (case.k,), case.y_shape)

    def loss():
        return np.vdot(dy, conv2d_forward(x, w, b, *case.geometry, algorithm="rowshift"))

    np.testing.assert_allclose(conv2d_backward_input(dy, w, x.shape, *case.geometry, algorithm="rowshift"),
                               numgrad(loss, x, h=1e-3), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(conv2d_backward_weight(dy, x, w.shape, *case.geometry, algorithm="rowshift"),
                               numgrad(loss, w, h=1e-3), rtol=1e-7, atol=1e-9)


def test_rowshift_refuses_strides_and_auto_follows_its_rule():
    x, w = _data(0, (2, 4, 6, 6), (4, 4, 3, 3))
    with pytest.raises(ValueError, match="'rowshift' needs stride 1, got stride \\(2, 2\\)"):
        conv2d_forward(x, w, None, (2, 2), ((1, 1), (1, 1)), algorithm="rowshift")
    same = ((1, 1), (1, 1))
    # wide GEMMs, few padding columns: rowshift; 5x5 'same' on 10x10 (1.4x the work on the padding), 1x1,
    # stride 2, a single input channel: im2col; grad-weight: always im2col
    def rule(x_shape, w_shape, stride, padding, pass_="forward", groups=1):
        return choose(ConvGeometry.of(x_shape, w_shape, stride, padding, groups=groups), pass_)

    assert rule((8, 32, 14, 14), (32, 32, 3, 3), (1, 1), same) == "rowshift"
    assert rule((8, 32, 14, 14), (32, 32, 3, 3), (1, 1), same, pass_="weight") == "im2col"
    assert rule((8, 16, 10, 10), (32, 16, 5, 5), (1, 1), ((2, 2), (2, 2))) == "im2col"
    assert rule((8, 16, 10, 10), (32, 16, 5, 5), (1, 1), ((2, 2), (2, 2)), pass_="input") == "rowshift"
    assert rule((8, 64, 14, 14), (64, 64, 1, 1), (1, 1), ((0, 0), (0, 0))) == "im2col"
    assert rule((8, 64, 14, 14), (64, 64, 1, 1), (1, 1), ((0, 0), (0, 0)), pass_="input") == "grid"
    assert rule((8, 32, 14, 14), (32, 32, 3, 3), (2, 2), same) == "im2col"
    assert rule((8, 32, 14, 14), (32, 32, 3, 3), (2, 2), same, pass_="input") == "col2im"
    assert rule((8, 1, 28, 28), (16, 1, 5, 5), (1, 1), ((2, 2), (2, 2))) == "im2col"
    assert rule((8, 8, 14, 14), (8, 1, 3, 3), (1, 1), same, pass_="input", groups=8) == "grid"  # depthwise
    # "auto" computes what its choice computes, bit for bit (the compiled backend's choice: direct)
    x, w = _data(1, (3, 32, 14, 14), (32, 32, 3, 3), dtype=np.float32)
    for backend, choice in (("numpy", "rowshift"), ("numba", "direct")):
        with runtime.scoped(backend=backend):
            np.testing.assert_array_equal(conv2d_forward(x, w, None, (1, 1), same, algorithm="auto"),
                                          conv2d_forward(x, w, None, (1, 1), same, algorithm=choice))


def test_one_output_position_takes_one_gemm_for_grad_input():
    """lenet5's C5 (5x5 kernel on 5x5 maps, one output position): with the compiled backend grad-input runs
    "gemm", equal to the seven loops; the NumPy kernels keep rowshift (their bits are pinned by the golden test)."""
    from numcnn.kernels.conv import dispatch

    geo = ConvGeometry.of((3, 4, 5, 5), (6, 4, 5, 5), (1, 1), ((0, 0), (0, 0)))
    taller = ConvGeometry.of((3, 4, 6, 5), (6, 4, 5, 5), (1, 1), ((0, 0), (0, 0)))
    with runtime.scoped(backend="numba"):
        assert dispatch.plan(geo).input == "gemm"
        assert dispatch.plan(taller).input != "gemm"
    with runtime.scoped(backend="numpy"):
        assert dispatch.plan(geo).input == "rowshift"
    rng = np.random.default_rng(3)
    dy, w = rng.standard_normal((3, 6, 1, 1)), rng.standard_normal((6, 4, 5, 5))
    with runtime.scoped(backend="numba"):
        np.testing.assert_allclose(dispatch.backward_input(geo, dy, w, "auto"),
                                   dispatch.backward_input(geo, dy, w, "reference"), rtol=1e-12, atol=1e-12)
