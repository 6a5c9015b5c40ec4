"""Batch-norm kernels on inputs laid out like a conv output (a (C, N, H, W) buffer seen as NCHW), which take a
row-wise fast path: the same numbers as on plain NCHW input and as PyTorch, whatever the gradient's layout."""

from __future__ import annotations

import numpy as np
import pytest

from numcnn.kernels import norm as K


def _channel_major(a: np.ndarray) -> np.ndarray:
    """The same values in memory ordered channel first."""
    return np.moveaxis(np.ascontiguousarray(np.moveaxis(a, 1, 0)), 0, 1)


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (5, 4), (3, 2, 7)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channel_major_input_gives_the_plain_results(shape, dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    gamma, beta = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), rng.random(c).astype(dtype) + 0.5
    axes = (0,) + tuple(range(2, len(shape)))
    xk = _channel_major(x)
    assert not xk.flags.c_contiguous and np.array_equal(xk, x)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)

    y, mean, invstd, var = K.batch_norm_train_forward(x, gamma, beta, 1e-5, axes, return_var=True)
    yk, meank, invstdk, vark = K.batch_norm_train_forward(xk, gamma, beta, 1e-5, axes, return_var=True)
    assert yk.shape == x.shape and yk.dtype == dtype
    for got, want in ((yk, y), (meank, mean), (invstdk, invstd), (vark, var)):
        np.testing.assert_allclose(got, want, **tol)
    ref = K.batch_norm_backward(dy, x, mean, invstd, gamma, axes)
    for d in (dy, _channel_major(dy)):  # the gradient may arrive in either layout
        for got, want in zip(K.batch_norm_backward(d, xk, meank, invstdk, gamma, axes), ref, strict=True):
            np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_allclose(K.batch_norm_eval_forward(xk, rm, rv, gamma, beta, 1e-5, axes),
                               K.batch_norm_eval_forward(x, rm, rv, gamma, beta, 1e-5, axes), **tol)
    for g in (gamma, None):
        ref = K.batch_norm_eval_backward(dy, x, rm, rv, g, 1e-5, axes)
        got = K.batch_norm_eval_backward(_channel_major(dy), xk, rm, rv, g, 1e-5, axes)
        for a, b in zip(got, ref, strict=True):
            if b is None:
                assert a is None
            else:
                np.testing.assert_allclose(a, b, **tol)


def test_channel_major_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = _channel_major(rng.standard_normal((6, 4, 5, 5)).astype(np.float32))
    dy = _channel_major(rng.standard_normal(x.shape).astype(np.float32))
    gamma, beta = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    tx = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_()
    tg, tb = torch.from_numpy(gamma).requires_grad_(), torch.from_numpy(beta).requires_grad_()
    ty = torch.nn.functional.batch_norm(tx, None, None, tg, tb, training=True, eps=1e-5)
    ty.backward(torch.from_numpy(np.ascontiguousarray(dy)))
    y, mean, invstd = K.batch_norm_train_forward(x, gamma, beta, 1e-5, (0, 2, 3))
    dx, dgamma, dbeta = K.batch_norm_backward(dy, x, mean, invstd, gamma, (0, 2, 3))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dgamma, tg.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dbeta, tb.grad.numpy(), rtol=1e-4, atol=1e-4)
