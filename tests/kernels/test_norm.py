"""Batch-norm and layer-norm kernels vs PyTorch (values, running stats, autograd) and finite differences."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from finite_diff import numgrad
from numcnn.kernels.norm import (
    batch_norm_backward,
    batch_norm_eval_backward,
    batch_norm_eval_forward,
    batch_norm_train_forward,
    batch_norm_update_running,
    layer_norm_backward,
    layer_norm_forward,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional

LAYOUTS = {"NC": (0,), "NCL": (0, 2), "NCHW": (0, 2, 3)}




def grad_atol(dy, invstd, gamma):
    """Absolute tolerance for a float32 normalisation gradient.

    dx is a difference of terms of size |gamma * invstd * dy|; when a channel's values nearly coincide,
    invstd is large, the terms cancel, and float32 keeps about 1e-6 of their size (torch's float32 too).
    """
    scale = np.abs(invstd).max() * (1.0 if gamma is None else np.abs(gamma).max())
    return 1e-5 * max(scale, 1.0) * np.abs(dy).max()


@st.composite
def bn_case(draw):
    layout = draw(st.sampled_from(sorted(LAYOUTS)))
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    spatial = tuple(draw(st.integers(1, 4)) for _ in range(len(LAYOUTS[layout]) - 1))
    shape = (n, c) + spatial
    if n * int(np.prod(spatial, dtype=int)) < 2:
        shape = (n + 1, c) + spatial
    return shape, LAYOUTS[layout], draw(st.booleans()), draw(st.integers(0, 2**16))


def params(rng, c, affine):
    if not affine:
        return None, None
    return rng.uniform(0.5, 1.5, c).astype(np.float32), rng.standard_normal(c).astype(np.float32)


def t(a, grad=False):
    """float64 torch copy of a float32 array: the oracle then carries no float32 rounding of its own,
    which matters where the gradient is ill-conditioned (e.g. two nearly equal values normalised)."""
    return None if a is None else torch.from_numpy(a.astype(np.float64)).requires_grad_(grad)


@given(case=bn_case())
def test_batch_norm_train_matches_torch(case):
    shape, axes, affine, seed = case
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
    gamma, beta = params(rng, shape[1], affine)
    dy = rng.standard_normal(shape).astype(np.float32)
    xt, gt, bt = t(x, True), t(gamma, True), t(beta, True)
    yt = F.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
    yt.backward(t(dy))

    y, mean, invstd = batch_norm_train_forward(x, gamma, beta, 1e-5, axes)
    assert y.dtype == mean.dtype == invstd.dtype == np.float32 and mean.shape == invstd.shape == (shape[1],)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mean, x.mean(axis=axes, dtype=np.float64), rtol=1e-5)
    dx, dgamma, dbeta = batch_norm_backward(dy, x, mean, invstd, gamma, axes)
    assert dx.dtype == dbeta.dtype == np.float32
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=grad_atol(dy, invstd, gamma))
    if affine:
        np.testing.assert_allclose(dgamma, gt.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(dbeta, bt.grad.numpy(), rtol=1e-4, atol=1e-4)
    else:
        assert dgamma is None


@pytest.mark.parametrize("momentum", [0.1, None])
def test_running_stats_follow_torch(rng, momentum):
    bn = torch.nn.BatchNorm2d(3, momentum=momentum)
    running_mean = np.zeros(3, np.float32)
    running_var = np.ones(3, np.float32)
    for step in range(1, 4):
        x = (rng.standard_normal((4, 3, 2, 5)) * step + step).astype(np.float32)
        bn(torch.from_numpy(x))
        _, mean, _, var = batch_norm_train_forward(x, None, None, 1e-5, (0, 2, 3), return_var=True)
        np.testing.assert_allclose(var, x.var(axis=(0, 2, 3), dtype=np.float64), rtol=1e-5)
        m = 1.0 / step if momentum is None else momentum  # cumulative average: 1 / num_batches_tracked
        batch_norm_update_running(running_mean, running_var, mean, var, 4 * 2 * 5, m)
        assert running_mean.dtype == running_var.dtype == np.float32
        np.testing.assert_allclose(running_mean, bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(running_var, bn.running_var.numpy(), rtol=1e-5)


def test_running_update_hand_values():
    rm, rv = np.array([1.0, 2.0]), np.array([1.0, 1.0])
    batch_norm_update_running(rm, rv, np.array([3.0, 0.0]), np.array([2.0, 4.0]), n=5, momentum=0.5)
    np.testing.assert_allclose(rm, [2.0, 1.0])
    np.testing.assert_allclose(rv, [0.5 + 0.5 * 2.5, 0.5 + 0.5 * 5.0])  # var * n / (n - 1)


@given(case=bn_case())
def test_batch_norm_eval_matches_torch(case):
    shape, axes, affine, seed = case
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
    gamma, beta = params(rng, c, affine)
    rm = rng.standard_normal(c).astype(np.float32)
    rv = rng.uniform(0.5, 2.0, c).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    xt, gt, bt = t(x, True), t(gamma, True), t(beta, True)
    yt = F.batch_norm(xt, t(rm), t(rv), gt, bt, training=False, eps=1e-3)
    yt.backward(t(dy))
    y = batch_norm_eval_forward(x, rm, rv, gamma, beta, 1e-3, axes)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    dx, dgamma, dbeta = batch_norm_eval_backward(dy, x, rm, rv, gamma, 1e-3, axes)
    assert dx.dtype == np.float32
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    if affine:
        np.testing.assert_allclose(dgamma, gt.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(dbeta, bt.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_backward_finite_differences(rng, layout, affine):
    axes = LAYOUTS[layout]
    shape = {"NC": (5, 3), "NCL": (3, 2, 4), "NCHW": (2, 3, 2, 3)}[layout]
    x = rng.standard_normal(shape) * 2 + 1
    gamma = rng.uniform(0.5, 1.5, shape[1]) if affine else None
    beta = rng.standard_normal(shape[1]) if affine else None
    dy = rng.standard_normal(shape)

    def loss():
        return np.sum(batch_norm_train_forward(x, gamma, beta, 1e-5, axes)[0] * dy)

    _, mean, invstd = batch_norm_train_forward(x, gamma, beta, 1e-5, axes)
    dx, dgamma, dbeta = batch_norm_backward(dy, x, mean, invstd, gamma, axes)
    assert dx.dtype == np.float64
    np.testing.assert_allclose(dx, numgrad(loss, x), rtol=1e-5, atol=1e-7)
    if affine:
        np.testing.assert_allclose(dgamma, numgrad(loss, gamma), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(dbeta, numgrad(loss, beta), rtol=1e-5, atol=1e-7)

    rm, rv = rng.standard_normal(shape[1]), rng.uniform(0.5, 2, shape[1])

    def eval_loss():
        return np.sum(batch_norm_eval_forward(x, rm, rv, gamma, beta, 1e-5, axes) * dy)

    dx, dgamma, dbeta = batch_norm_eval_backward(dy, x, rm, rv, gamma, 1e-5, axes)
    np.testing.assert_allclose(dx, numgrad(eval_loss, x), rtol=1e-5, atol=1e-7)
    if affine:
        np.testing.assert_allclose(dgamma, numgrad(eval_loss, gamma), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(dbeta, numgrad(eval_loss, beta), rtol=1e-5, atol=1e-7)


def test_batch_norm_hand_values_and_errors():
    x = np.array([[1.0], [3.0]], dtype=np.float32)  # mean 2, biased var 1
    gamma, beta = np.array([2.0], np.float32), np.array([0.5], np.float32)
    y, mean, invstd = batch_norm_train_forward(x, gamma, beta, 0.0, (0,))
    np.testing.assert_array_equal(y[:, 0], [-1.5, 2.5])
    assert mean[0] == 2.0 and invstd[0] == 1.0
    with pytest.raises(ValueError, match="more than 1 value"):
        batch_norm_train_forward(np.zeros((1, 3, 1, 1), np.float32), None, None, 1e-5, (0, 2, 3))
    with pytest.raises(ValueError, match="axes"):
        batch_norm_train_forward(np.zeros((2, 3, 4), np.float32), None, None, 1e-5, (0,))


# --------------------------------------------------------------------------------------------------
# layer norm
# --------------------------------------------------------------------------------------------------


@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple),
    data=st.data(),
)
def test_layer_norm_matches_torch(shape, data):
    k = data.draw(st.integers(1, len(shape)))
    affine = data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    norm_shape = shape[len(shape) - k :]
    x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, norm_shape).astype(np.float32) if affine else None
    beta = rng.standard_normal(norm_shape).astype(np.float32) if affine else None
    dy = rng.standard_normal(shape).astype(np.float32)
    xt, gt, bt = t(x, True), t(gamma, True), t(beta, True)
    yt = F.layer_norm(xt, norm_shape, gt, bt, 1e-5)
    yt.backward(t(dy))
    y, mean, invstd = layer_norm_forward(x, k, gamma, beta, 1e-5)
    assert y.dtype == mean.dtype == invstd.dtype == np.float32
    assert mean.shape == invstd.shape == shape[: len(shape) - k] + (1,) * k
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    dx, dgamma, dbeta = layer_norm_backward(dy, x, mean, invstd, gamma, k)
    assert dx.dtype == np.float32
    atol = grad_atol(dy, invstd, gamma)
    degenerate = int(np.prod(norm_shape)) == 1
    if degenerate:
        # y = beta whatever x is: the exact dx and dgamma are 0
        np.testing.assert_array_equal(dx, 0.0)
    else:
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=atol)
    if affine:
        assert dgamma.shape == dbeta.shape == norm_shape
        if degenerate:
            np.testing.assert_array_equal(dgamma, 0.0)
        else:
            np.testing.assert_allclose(dgamma, gt.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(dbeta, bt.grad.numpy(), rtol=1e-4, atol=1e-4)
    else:
        assert dgamma is None


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_backward_finite_differences(rng, k, affine):
    x = rng.standard_normal((2, 3, 2, 2)) * 2 + 1
    norm_shape = x.shape[4 - k :]
    gamma = rng.uniform(0.5, 1.5, norm_shape) if affine else None
    beta = rng.standard_normal(norm_shape) if affine else None
    dy = rng.standard_normal(x.shape)

    def loss():
        return np.sum(layer_norm_forward(x, k, gamma, beta, 1e-5)[0] * dy)

    _, mean, invstd = layer_norm_forward(x, k, gamma, beta, 1e-5)
    dx, dgamma, dbeta = layer_norm_backward(dy, x, mean, invstd, gamma, k)
    assert dx.dtype == np.float64
    np.testing.assert_allclose(dx, numgrad(loss, x), rtol=1e-5, atol=1e-7)
    if affine:
        np.testing.assert_allclose(dgamma, numgrad(loss, gamma), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(dbeta, numgrad(loss, beta), rtol=1e-5, atol=1e-7)


def test_layer_norm_hand_values():
    x = np.array([[1.0, 3.0], [0.0, 4.0]], dtype=np.float32)
    y, mean, invstd = layer_norm_forward(x, 1, None, None, 0.0)
    np.testing.assert_array_equal(y, [[-1.0, 1.0], [-1.0, 1.0]])
    np.testing.assert_array_equal(mean[:, 0], [2.0, 2.0])
    np.testing.assert_array_equal(invstd[:, 0], [1.0, 0.5])
    with pytest.raises(ValueError, match="normalized_ndim"):
        layer_norm_forward(x, 3, None, None, 1e-5)
