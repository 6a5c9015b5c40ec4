"""Activation kernels vs PyTorch (values and autograd gradients), finite differences, erf accuracy."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numcnn.kernels import activation as A

torch = pytest.importorskip("torch")
F = torch.nn.functional


def numgrad(f, x, dy, h=1e-6):
    """Central differences of sum(f(x) * dy) with respect to x (float64, elementwise f)."""
    return (f(x + h) - f(x - h)) / (2 * h) * dy


# name -> (our forward, our backward taking (dy, x, y), torch forward)
CASES = {
    "relu": (A.relu, lambda dy, x, y: A.relu_backward(dy, y), F.relu),
    "leaky_relu": (
        lambda x: A.leaky_relu(x, 0.2),
        lambda dy, x, y: A.leaky_relu_backward(dy, x, 0.2),
        lambda t: F.leaky_relu(t, 0.2),
    ),
    "elu": (lambda x: A.elu(x, 1.5), lambda dy, x, y: A.elu_backward(dy, x, y, 1.5), lambda t: F.elu(t, 1.5)),
    "sigmoid": (A.sigmoid, lambda dy, x, y: A.sigmoid_backward(dy, y), torch.sigmoid),
    "tanh": (A.tanh, lambda dy, x, y: A.tanh_backward(dy, y), torch.tanh),
    "gelu": (A.gelu, lambda dy, x, y: A.gelu_backward(dy, x), F.gelu),
    "gelu_tanh": (
        lambda x: A.gelu(x, "tanh"),
        lambda dy, x, y: A.gelu_backward(dy, x, "tanh"),
        lambda t: F.gelu(t, approximate="tanh"),
    ),
}

finite_f32 = st.floats(-30, 30, width=32, allow_subnormal=False)
arrays_f32 = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5), elements=finite_f32)


@pytest.mark.parametrize("name", sorted(CASES))
@given(x=arrays_f32, seed=st.integers(0, 2**16))
def test_matches_torch_forward_and_grad(name, x, seed):
    fwd, bwd, tfwd = CASES[name]
    # away from the kinks of relu / leaky_relu / elu, where one-sided derivatives differ by convention
    x = np.where(np.abs(x) < 1e-3, np.float32(0.5), x)
    dy = np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    yt = tfwd(xt)
    yt.backward(torch.from_numpy(dy))
    y = fwd(x)
    dx = bwd(dy, x, y)
    assert y.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-6)
    # atol: where the true derivative is ~1e-7 (gelu tails), float32 tanh/erf rounding dominates both sides
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_backward_finite_differences(name, rng):
    fwd, bwd, _ = CASES[name]
    x = rng.uniform(-4, 4, size=(3, 7))
    x[np.abs(x) < 1e-2] = 0.5
    dy = rng.standard_normal(x.shape)
    y = fwd(x)
    dx = bwd(dy, x, y)
    assert y.dtype == np.float64 and dx.dtype == np.float64
    np.testing.assert_allclose(dx, numgrad(fwd, x, dy), rtol=1e-6, atol=1e-8)


def test_relu_family_hand_values():
    x = np.array([-2.0, -0.0, 0.0, 3.0, np.nan], dtype=np.float32)
    np.testing.assert_array_equal(A.relu(x), [0, 0, 0, 3, np.nan])
    np.testing.assert_array_equal(A.relu_backward(np.ones(5, np.float32), A.relu(x))[:4], [0, 0, 0, 1])
    # as torch's threshold_backward: a NaN gradient is zeroed at a dead unit, passed at a NaN output
    dy = np.array([np.nan, np.nan, 2.0], dtype=np.float32)
    y = np.array([0.0, np.nan, 1.0], dtype=np.float32)
    np.testing.assert_array_equal(A.relu_backward(dy, y), [0.0, np.nan, 2.0])
    np.testing.assert_array_equal(A.leaky_relu(np.array([-2.0, 3.0]), 2.5), [-5.0, 3.0])  # slope > 1
    np.testing.assert_allclose(A.leaky_relu(x[:4], 0.1), [-0.2, 0, 0, 3])
    np.testing.assert_allclose(A.elu(np.array([-1.0, 2.0]), 2.0), [2.0 * (math.exp(-1) - 1), 2.0])


def test_no_overflow_warnings_for_huge_inputs():
    x = np.array([-1e4, -100.0, -1e-8, 0.0, 1e-8, 100.0, 1e4, 3e38, -3e38], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = A.sigmoid(x)
        e = A.elu(x)
        g = A.gelu(x)
        gt = A.gelu(x, "tanh")
        dg = A.gelu_backward(np.ones_like(x), x)
        dgt = A.gelu_backward(np.ones_like(x), x, "tanh")
    np.testing.assert_array_equal(s[[0, 6, 7, 8]], [0.0, 1.0, 1.0, 0.0])
    # atol: sigmoid(-100) = 3.7e-44 is a float32 subnormal, which torch flushes to 0
    np.testing.assert_allclose(s, torch.sigmoid(torch.from_numpy(x)).numpy(), rtol=1e-6, atol=1e-40)
    np.testing.assert_array_equal(e[[6, 7]], x[[6, 7]])
    assert e[0] == -1.0
    for ours, approx in ((g, "none"), (gt, "tanh")):
        np.testing.assert_array_equal(ours[[0, 6, 7, 8]], [0.0, x[6], x[7], 0.0])
        # torch overflows to inf at 3e38 (it forms 2 * x); the true value 3e38 is checked above
        keep = [0, 1, 2, 3, 4, 5, 6, 8]
        expect = F.gelu(torch.from_numpy(x[keep]), approximate=approx).numpy()
        np.testing.assert_allclose(ours[keep], expect, rtol=1e-6)
    for ours in (dg, dgt):
        np.testing.assert_array_equal(ours[[0, 6, 7, 8]], [0.0, 1.0, 1.0, 0.0])


def test_sigmoid_accuracy_in_the_tails():
    x = np.array([-80.0, -30.0, -5.0, 5.0, 30.0])
    expect = [1 / (1 + math.exp(-v)) for v in x]
    np.testing.assert_allclose(A.sigmoid(x), expect, rtol=1e-15)  # no 1 - (1 - tiny) cancellation


# --------------------------------------------------------------------------------------------------
# erf
# --------------------------------------------------------------------------------------------------


def erf_grid():
    """Dense grid over the whole range plus a log-spaced sweep down to tiny magnitudes (both signs)."""
    tiny = np.geomspace(1e-30, 6.5, 6000)
    return np.concatenate([np.linspace(-6.5, 6.5, 40001), tiny, -tiny])


def test_erf_float64_against_math_erf():
    x = erf_grid()
    ref = np.array([math.erf(v) for v in x])
    y = A.erf(x)
    assert y.dtype == np.float64
    assert y[ref == 0].tolist() == [0.0]
    rel = np.abs(y - ref)[ref != 0] / np.abs(ref[ref != 0])
    assert rel.max() < 1e-15  # aim was ~1e-12; fdlibm's approximations are good to about 1 ulp


def test_erf_float32_within_one_ulp_of_math_erf_and_two_of_torch():
    x = erf_grid().astype(np.float32)
    ref = np.array([math.erf(float(v)) for v in x])  # exact to float64, i.e. far below a float32 ulp
    ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    y = A.erf(x)
    assert y.dtype == np.float32
    assert (np.abs(y - ref) / ulp).max() <= 1.0
    torch_y = torch.erf(torch.from_numpy(x)).numpy()
    assert (np.abs(y.astype(np.float64) - torch_y) / ulp).max() <= 2.0


def test_erf_special_values():
    for dtype in (np.float32, np.float64):
        x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, 30.0, -30.0], dtype=dtype)
        y = A.erf(x)
        assert y.dtype == dtype
        assert np.isnan(y[0])
        np.testing.assert_array_equal(y[[1, 2, 6, 7]], [1, -1, 1, -1])
        assert y[3] == 0 and not np.signbit(y[3]) and y[4] == 0 and np.signbit(y[4])
    assert A.erf(np.array(0.5, dtype=np.float16)).dtype == np.float16
    with pytest.raises(TypeError):
        A.erf(np.arange(3))


def test_erf_keeps_shape():
    x = np.linspace(-2, 2, 24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_allclose(A.erf(x), torch.erf(torch.from_numpy(x)).numpy(), rtol=2e-7, atol=1e-7)


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        A.gelu(np.zeros(2, np.float32), "erf")
