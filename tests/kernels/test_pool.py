"""Pooling kernels vs PyTorch (values, indices, autograd gradients), naive loops and finite differences."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from finite_diff import vjp_numgrad
from numcnn.kernels.pool import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    pool_output_size,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional




@st.composite
def pool_config(draw, dilation=True):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    cfg = dict(
        kernel_size=(kh, kw),
        stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        padding=(draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))),
        ceil_mode=draw(st.booleans()),
    )
    if dilation:
        cfg["dilation"] = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    shape = tuple(draw(st.integers(1, hi)) for hi in (2, 3, 7, 7))
    return shape, cfg


def values(rng, shape, kind):
    """Test inputs: 'ties' draws from {-1, 0, 1}, 'zeros' is all zero, 'normal' is continuous."""
    if kind == "ties":
        return rng.integers(-1, 2, size=shape).astype(np.float32)
    if kind == "zeros":
        return np.zeros(shape, dtype=np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def torch_or_none(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except RuntimeError:
        return None


# --------------------------------------------------------------------------------------------------
# output size
# --------------------------------------------------------------------------------------------------


def test_output_size_hand_values():
    assert pool_output_size(28, 2, 2, 0) == 14
    assert pool_output_size(5, 2, 2, 0) == 2
    assert pool_output_size(5, 2, 2, 0, ceil_mode=True) == 3
    # ceil_mode would add a 4th window starting at 6 = size + pad: it must start inside, so it is dropped.
    assert pool_output_size(5, 2, 2, 1, ceil_mode=True) == 3
    assert pool_output_size(7, 3, 1, 1, dilation=2) == 5


@given(
    size=st.integers(1, 12), kernel=st.integers(1, 4), stride=st.integers(1, 4), pad=st.integers(0, 3),
    dilation=st.integers(1, 3), ceil_mode=st.booleans(),
)
def test_output_size_matches_torch_or_raises(size, kernel, stride, pad, dilation, ceil_mode):
    x = torch.zeros(1, 1, 1, size)
    out = torch_or_none(F.max_pool2d, x, (1, kernel), (1, stride), (0, pad), (1, dilation), ceil_mode)
    if out is None:
        with pytest.raises(ValueError):
            pool_output_size(size, kernel, stride, pad, dilation, ceil_mode)
    else:
        assert pool_output_size(size, kernel, stride, pad, dilation, ceil_mode) == out.shape[-1]


def test_padding_over_half_kernel_raises():
    x = np.zeros((1, 1, 6, 6), dtype=np.float32)
    with pytest.raises(ValueError, match="padding"):
        max_pool2d_forward(x, (2, 2), (2, 2), (2, 0))
    with pytest.raises(ValueError, match="padding"):
        avg_pool2d_forward(x, (3, 3), (1, 1), (0, 2))


# --------------------------------------------------------------------------------------------------
# max pooling
# --------------------------------------------------------------------------------------------------


@given(cfg=pool_config(), kind=st.sampled_from(["ties", "zeros", "normal"]), seed=st.integers(0, 2**16))
def test_max_pool_matches_torch(cfg, kind, seed):
    shape, kw = cfg
    rng = np.random.default_rng(seed)
    x = values(rng, shape, kind)
    xt = torch.from_numpy(x).requires_grad_()
    ref = torch_or_none(F.max_pool2d, xt, return_indices=True, **kw)
    assume(ref is not None)
    y, idx = max_pool2d_forward(x, **kw)
    assert y.dtype == np.float32 and idx.dtype == np.int64
    np.testing.assert_array_equal(y, ref[0].detach().numpy())
    np.testing.assert_array_equal(idx, ref[1].numpy())  # tie-breaking identical to PyTorch CPU

    # A dilated window can lie wholly in the padding; PyTorch then reports a position outside the plane.
    assume(idx.max() < shape[2] * shape[3])
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ref[0].backward(torch.from_numpy(dy))
    dx = max_pool2d_backward(dy, idx, x.shape)
    assert dx.dtype == np.float32
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_max_pool_nan_propagates_like_torch(rng):
    x = rng.standard_normal((2, 3, 6, 7)).astype(np.float32)
    x[rng.random(x.shape) < 0.15] = np.nan
    for kw in [dict(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)),
               dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 1), ceil_mode=True),
               dict(kernel_size=(3, 3), stride=(2, 1), padding=(1, 0), dilation=(2, 1))]:
        y, idx = max_pool2d_forward(x, **kw)
        yt, it = F.max_pool2d(torch.from_numpy(x), return_indices=True, **kw)
        assert np.isnan(y).any()
        np.testing.assert_array_equal(y, yt.numpy())  # NaN in the same places
        np.testing.assert_array_equal(idx, it.numpy())  # the last NaN of a window, as PyTorch


def test_max_pool_all_minus_inf_reports_first_valid_position():
    x = np.full((1, 1, 3, 3), -np.inf, dtype=np.float32)
    y, idx = max_pool2d_forward(x, (2, 2), (2, 2), (1, 1))
    np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), -np.inf, dtype=np.float32))
    np.testing.assert_array_equal(idx, [[[[0, 1], [3, 4]]]])  # never a padding position


def test_max_pool_hand_values():
    x = np.array([[[[1, 5, 2, 0], [3, 5, 4, 4], [0, 0, 9, 1], [7, 0, 1, 9]]]], dtype=np.float32)
    y, idx = max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(y, [[[[5, 4], [7, 9]]]])
    np.testing.assert_array_equal(idx, [[[[1, 6], [12, 10]]]])  # ties (5, 5) and (9, 9): the first wins
    dx = max_pool2d_backward(np.ones((1, 1, 2, 2), np.float32), idx, x.shape)
    assert dx.sum() == 4 and dx[0, 0, 0, 1] == 1 and dx[0, 0, 2, 2] == 1


def test_max_pool_backward_accumulates_overlaps():
    # 3x3 stride 1 windows over a plane whose maximum is in the centre: every window picks it.
    x = np.zeros((1, 1, 4, 4), dtype=np.float32)
    x[0, 0, 1, 2] = 1.0
    y, idx = max_pool2d_forward(x, (3, 3), (1, 1), (0, 0))
    dx = max_pool2d_backward(np.full(y.shape, 2.0, np.float32), idx, x.shape)
    assert dx[0, 0, 1, 2] == 8.0 and dx.sum() == 8.0


def test_max_pool_backward_finite_differences(rng):
    # distinct values so that the arg-max is stable under the perturbation
    x = (rng.permutation(2 * 2 * 5 * 6).reshape(2, 2, 5, 6) * 0.1).astype(np.float64)
    kw = dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), dilation=(1, 2), ceil_mode=True)
    y, idx = max_pool2d_forward(x, **kw)
    dy = rng.standard_normal(y.shape)
    dx = max_pool2d_backward(dy, idx, x.shape)
    assert y.dtype == np.float64 and dx.dtype == np.float64
    np.testing.assert_allclose(dx, vjp_numgrad(lambda a: max_pool2d_forward(a, **kw)[0], x, dy), atol=1e-8)


# --------------------------------------------------------------------------------------------------
# average pooling
# --------------------------------------------------------------------------------------------------


@given(
    cfg=pool_config(dilation=False),
    count_include_pad=st.booleans(),
    divisor_override=st.sampled_from([None, 1, 3]),
    seed=st.integers(0, 2**16),
)
def test_avg_pool_matches_torch(cfg, count_include_pad, divisor_override, seed):
    shape, kw = cfg
    kw.update(count_include_pad=count_include_pad, divisor_override=divisor_override)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    yt = torch_or_none(F.avg_pool2d, xt, **kw)
    assume(yt is not None)
    y = avg_pool2d_forward(x, **kw)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.from_numpy(dy))
    dx = avg_pool2d_backward(dy, x.shape, **kw)
    assert dx.dtype == np.float32 and dx.shape == x.shape
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-6)


def naive_avg_pool_backward(dy, x_shape, k, s):
    """Loop reference without padding: every window adds dy / (kh*kw) to its pixels."""
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            dx[:, :, i * s[0] : i * s[0] + k[0], j * s[1] : j * s[1] + k[1]] += (
                dy[:, :, i : i + 1, j : j + 1] / dy.dtype.type(k[0] * k[1])
            )
    return dx


@pytest.mark.parametrize(
    "k, s, hw", [((2, 2), (2, 2), (6, 8)), ((3, 1), (3, 1), (9, 2)), ((2, 3), (1, 2), (5, 7))]
)
def test_avg_pool_tiling_paths_equal_naive_loops(rng, k, s, hw):
    x = rng.standard_normal((2, 3) + hw).astype(np.float32)
    y = avg_pool2d_forward(x, k, s, (0, 0))
    windows = np.lib.stride_tricks.sliding_window_view(x, k, axis=(2, 3))[:, :, :: s[0], :: s[1]]
    np.testing.assert_allclose(y, windows.mean(axis=(-2, -1)), rtol=1e-6, atol=1e-7)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = avg_pool2d_backward(dy, x.shape, k, s, (0, 0))
    expect = naive_avg_pool_backward(dy, x.shape, k, s)
    if k == s:  # non-overlapping: each pixel gets exactly one dy / k, bit for bit
        np.testing.assert_array_equal(dx, expect)
    else:
        np.testing.assert_allclose(dx, expect, rtol=1e-6, atol=1e-7)


def test_avg_pool_divisor_hand_values():
    x = np.ones((1, 1, 3, 3), dtype=np.float32)
    # 2x2 windows, stride 2, padding 1: corners hold 1 real pixel, edges 2, the centre window 4.
    y_incl = avg_pool2d_forward(x, (2, 2), (2, 2), (1, 1))
    np.testing.assert_array_equal(y_incl, [[[[0.25, 0.5], [0.5, 1.0]]]])
    y_excl = avg_pool2d_forward(x, (2, 2), (2, 2), (1, 1), count_include_pad=False)
    np.testing.assert_array_equal(y_excl, np.ones((1, 1, 2, 2), np.float32))
    y_div = avg_pool2d_forward(x, (2, 2), (2, 2), (1, 1), divisor_override=2)
    np.testing.assert_array_equal(y_div, [[[[0.5, 1.0], [1.0, 2.0]]]])


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_backward_finite_differences(rng, count_include_pad):
    x = rng.standard_normal((1, 2, 5, 4))
    kw = dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True)
    kw["count_include_pad"] = count_include_pad
    y = avg_pool2d_forward(x, **kw)
    dy = rng.standard_normal(y.shape)
    dx = avg_pool2d_backward(dy, x.shape, **kw)
    assert y.dtype == np.float64 and dx.dtype == np.float64
    np.testing.assert_allclose(dx, vjp_numgrad(lambda a: avg_pool2d_forward(a, **kw), x, dy), atol=1e-8)


# --------------------------------------------------------------------------------------------------
# adaptive average pooling
# --------------------------------------------------------------------------------------------------


@given(
    n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
    oh=st.integers(1, 6), ow=st.integers(1, 6), seed=st.integers(0, 2**16),
)
def test_adaptive_avg_pool_matches_torch(n, c, h, w, oh, ow, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    yt = F.adaptive_avg_pool2d(xt, (oh, ow))
    y = adaptive_avg_pool2d_forward(x, (oh, ow))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.from_numpy(dy))
    dx = adaptive_avg_pool2d_backward(dy, x.shape)
    assert dx.dtype == np.float32
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_adaptive_avg_pool_global_and_none(rng):
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(
        adaptive_avg_pool2d_forward(x, (1, 1))[:, :, 0, 0], x.mean(axis=(2, 3)), rtol=1e-5, atol=1e-7
    )
    y = adaptive_avg_pool2d_forward(x, (None, 2))
    np.testing.assert_allclose(y, F.adaptive_avg_pool2d(torch.from_numpy(x), (None, 2)).numpy(), rtol=1e-5)


def test_adaptive_avg_pool_bins_hand_values():
    # H=5 into 3 bins: rows [0, 2), [1, 4), [3, 5)
    x = np.arange(5, dtype=np.float32).reshape(1, 1, 5, 1)
    y = adaptive_avg_pool2d_forward(x, (3, 1))
    np.testing.assert_allclose(y[0, 0, :, 0], [0.5, 2.0, 3.5])


@pytest.mark.parametrize("out", [(3, 2), (1, 1), (7, 4)])
def test_adaptive_avg_pool_backward_finite_differences(rng, out):
    x = rng.standard_normal((1, 2, 5, 4))
    y = adaptive_avg_pool2d_forward(x, out)
    dy = rng.standard_normal(y.shape)
    dx = adaptive_avg_pool2d_backward(dy, x.shape)
    assert y.dtype == np.float64 and dx.dtype == np.float64
    np.testing.assert_allclose(dx, vjp_numgrad(lambda a: adaptive_avg_pool2d_forward(a, out), x, dy), atol=1e-8)
