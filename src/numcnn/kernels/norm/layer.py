"""Layer normalization: each sample normalized over its last ``normalized_ndim`` axes, seen as one row of an (M, K)
matrix (M samples of K values), then scaled and shifted per element by the optional gamma and beta."""

from __future__ import annotations

import numpy as np

__all__ = ["layer_norm_backward", "layer_norm_forward"]


def _rows(x_shape: tuple[int, ...], normalized_ndim: int) -> tuple[int, int]:
    """(M, K): the number of samples and the number of values each is normalized over."""
    if not 1 <= normalized_ndim <= len(x_shape):
        raise ValueError(
            f"layer_norm: normalized_ndim must be in 1..{len(x_shape)} for input shape {tuple(x_shape)}, "
            f"got {normalized_ndim}"
        )
    k = int(np.prod(x_shape[len(x_shape) - normalized_ndim :], dtype=np.int64))
    m = int(np.prod(x_shape[: len(x_shape) - normalized_ndim], dtype=np.int64))
    return m, k


def layer_norm_forward(
    x: np.ndarray,
    normalized_ndim: int,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    eps: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer normalization over the last ``normalized_ndim`` axes (biased variance).

    x: (*batch, *normalized); gamma, beta: normalized shape or None. Returns ``(y, mean, invstd)``: y like x,
    mean and invstd shaped (*batch, 1, ..., 1) (as torch.native_layer_norm), all in x's dtype.
    """
    m, k = _rows(x.shape, normalized_ndim)
    f = x.dtype.type
    stat_shape = x.shape[: x.ndim - normalized_ndim] + (1,) * normalized_ndim
    x2 = x.reshape(m, k)
    mean = x2.sum(axis=1, keepdims=True) / f(k)
    y = x2 - mean
    var = np.vecdot(y, y)[:, None] / f(k)
    invstd = f(1) / np.sqrt(var + f(eps))
    y *= invstd
    if gamma is not None:
        y *= gamma.reshape(k)
    if beta is not None:
        y += beta.reshape(k)
    return y.reshape(x.shape), mean.reshape(stat_shape), invstd.reshape(stat_shape)


def layer_norm_backward(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    gamma: np.ndarray | None,
    normalized_ndim: int,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Gradient of ``layer_norm_forward``.

    Returns ``(dx, dgamma, dbeta)``: dx like x; dgamma, dbeta in the normalized shape (dgamma None when
    gamma is None; dbeta is always returned). With g = dy * gamma and xhat = (x - mean) * invstd:
    dx = invstd * (g - mean(g) - xhat * mean(g * xhat)), means over the normalized axes.
    """
    m, k = _rows(x.shape, normalized_ndim)
    f = x.dtype.type
    norm_shape = x.shape[x.ndim - normalized_ndim :]
    dy2 = dy.reshape(m, k)
    mean2, invstd2 = mean.reshape(m, 1), invstd.reshape(m, 1)
    xhat = x.reshape(m, k) - mean2
    xhat *= invstd2
    dbeta = dy2.sum(axis=0).reshape(norm_shape)
    dgamma = None
    g = dy2
    if gamma is not None:
        dgamma = np.einsum("mk,mk->k", dy2, xhat).reshape(norm_shape)
        g = dy2 * gamma.reshape(k)
    g_mean = g.sum(axis=1, keepdims=True) / f(k)
    gx_mean = np.vecdot(g, xhat)[:, None] / f(k)
    # xhat * mean(g * xhat) + mean(g), then g minus that, all in the xhat buffer.
    xhat *= gx_mean
    xhat += g_mean
    np.subtract(g, xhat, out=xhat)
    xhat *= invstd2
    return xhat.reshape(x.shape), dgamma, dbeta
