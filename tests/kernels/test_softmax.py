"""softmax / log_softmax kernels vs PyTorch, finite differences and hand-computed extreme logits."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from finite_diff import vjp_numgrad
from numcnn.kernels.softmax import log_softmax, log_softmax_backward, softmax, softmax_backward

torch = pytest.importorskip("torch")

arrays_f32 = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=1, max_dims=4, max_side=5),
    elements=st.floats(-50, 50, width=32, allow_subnormal=False),
)




@pytest.mark.parametrize(
    "ours, ours_back, theirs",
    [(softmax, softmax_backward, torch.softmax), (log_softmax, log_softmax_backward, torch.log_softmax)],
    ids=["softmax", "log_softmax"],
)
@given(x=arrays_f32, data=st.data())
def test_matches_torch(ours, ours_back, theirs, x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    dy = np.random.default_rng(data.draw(st.integers(0, 2**16))).standard_normal(x.shape).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    yt = theirs(xt, axis)
    yt.backward(torch.from_numpy(dy))
    y = ours(x, axis)
    dx = ours_back(dy, y, axis)
    assert y.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize(
    "ours, ours_back", [(softmax, softmax_backward), (log_softmax, log_softmax_backward)], ids=["sm", "lsm"]
)
def test_backward_finite_differences(rng, ours, ours_back, axis):
    x = rng.standard_normal((3, 4, 5)) * 3
    dy = rng.standard_normal(x.shape)
    y = ours(x, axis)
    dx = ours_back(dy, y, axis)
    assert dx.dtype == np.float64
    np.testing.assert_allclose(dx, vjp_numgrad(lambda a: ours(a, axis), x, dy), rtol=1e-6, atol=1e-8)


def test_extreme_logits_are_finite_and_exact():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = softmax(x, axis=1)
        lp = log_softmax(x, axis=1)
    np.testing.assert_array_equal(p[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(p[1], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_array_equal(lp[0], [0.0, -2e4, -1e4])
    np.testing.assert_allclose(lp[1], [-np.log(3.0)] * 3, rtol=1e-6)
    assert p.dtype == np.float32 and lp.dtype == np.float32


def test_hand_values():
    x = np.array([0.0, np.log(3.0)])
    np.testing.assert_allclose(softmax(x), [0.25, 0.75], rtol=1e-15)
    np.testing.assert_allclose(log_softmax(x), np.log([0.25, 0.75]), rtol=1e-15)
    # softmax rows sum to one; the softmax gradient of a constant upstream is zero
    y = softmax(np.array([[1.0, 2.0, 3.0]]), axis=1)
    np.testing.assert_allclose(softmax_backward(np.ones_like(y), y, axis=1), 0.0, atol=1e-16)
