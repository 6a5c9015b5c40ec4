"""The index-free max-pooling pair (maxima only forward, arg-max recomputed in backward) against the indexed
kernels (themselves tested against PyTorch) and against PyTorch's gradients, ties, NaN and -inf included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from numcnn.kernels.pool import (
    max_pool2d_backward,
    max_pool2d_backward_from_values,
    max_pool2d_forward,
    max_pool2d_values,
)


@st.composite
def configs(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kw_args = dict(
        kernel_size=(kh, kw),
        stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        padding=(draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))),
        dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        ceil_mode=draw(st.booleans()),
    )
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    return shape, kw_args


def _inputs(rng, shape, kind):
    if kind == "ties":  # many equal maxima, as after a ReLU
        return rng.integers(-1, 2, size=shape).astype(np.float32)
    x = rng.standard_normal(shape).astype(np.float32)
    if kind == "nan":
        x[rng.random(shape) < 0.2] = np.nan
    if kind == "-inf":
        x[rng.random(shape) < 0.5] = -np.inf
    return x


@given(cfg=configs(), kind=st.sampled_from(["normal", "ties", "nan", "-inf"]), channel_major=st.booleans(),
       seed=st.integers(0, 2**16))
def test_values_and_recomputed_backward_equal_the_indexed_kernels(cfg, kind, channel_major, seed):
    shape, opts = cfg
    rng = np.random.default_rng(seed)
    x = _inputs(rng, shape, kind)
    if channel_major:  # laid out like a conv output: a (C, N, H, W) buffer seen as NCHW
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    try:
        y_ref, idx = max_pool2d_forward(x, **opts)
    except ValueError:
        with pytest.raises(ValueError):
            max_pool2d_values(x, **opts)
        return
    y = max_pool2d_values(x, **opts)
    np.testing.assert_array_equal(y, y_ref)
    assert y.dtype == x.dtype
    assume(idx.max() < shape[2] * shape[3])  # a window wholly in the padding has no input position
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = max_pool2d_backward_from_values(dy, x, y, **opts)
    assert dx.dtype == np.float32 and dx.shape == x.shape
    ref = max_pool2d_backward(dy, idx, x.shape)
    (kh, kw), (sh, sw), (dh, dw) = opts["kernel_size"], opts["stride"], opts["dilation"]
    if sh >= dh * (kh - 1) + 1 and sw >= dw * (kw - 1) + 1:
        np.testing.assert_array_equal(dx, ref)  # each input element gets at most one gradient
    else:
        # overlapping windows: the same terms summed in another order
        np.testing.assert_allclose(dx, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(4, 3, 8, 8), (2, 5, 7, 9), (3, 2, 6, 6)])
def test_2x2_tiles_match_torch_gradient_with_relu_ties(shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal(shape).astype(np.float32), 0)  # ReLU output: windows of equal zeros
    xt = torch.from_numpy(x).requires_grad_()
    yt = torch.nn.functional.max_pool2d(xt, 2)
    dy = rng.standard_normal(yt.shape).astype(np.float32)
    yt.backward(torch.from_numpy(dy))
    y = max_pool2d_values(x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(max_pool2d_backward_from_values(dy, x, y, (2, 2), (2, 2), (0, 0)), xt.grad.numpy())


def test_float64_hand_values():
    x = np.array([[[[1, 5, 2, 0], [3, 5, 4, 4], [0, 0, 9, 1], [7, 0, 1, 9]]]], dtype=np.float64)
    y = max_pool2d_values(x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(y, [[[[5, 4], [7, 9]]]])
    dx = max_pool2d_backward_from_values(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), x, y, (2, 2), (2, 2), (0, 0))
    # ties (5, 5) and (9, 9): the first in raster order takes the gradient
    expected = np.zeros((1, 1, 4, 4))
    expected[0, 0, 0, 1], expected[0, 0, 1, 2], expected[0, 0, 3, 0], expected[0, 0, 2, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(dx, expected)
    assert dx.dtype == np.float64
