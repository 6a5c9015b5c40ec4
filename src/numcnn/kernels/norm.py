"""Batch normalization and layer normalization kernels, forward and backward, PyTorch conventions.

Statistics are reduced in the input's dtype (float32 stays float32). Variance is computed in two passes
(mean first, then the sum of squared deviations), which avoids the cancellation of E[x^2] - E[x]^2.
Per-channel work is broadcast, never looped over.
"""

from __future__ import annotations

import numpy as np

from . import parallel


def _as_acb(x_shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, int, int]:
    """Fold a batch-norm input shape into (A, C, B): A = reduced axes before the channel axis, B = after.

    Exactly one axis may be kept (the channel axis); ``axes`` lists all the others.
    """
    ndim = len(x_shape)
    reduced = sorted({a % ndim for a in axes})
    kept = [a for a in range(ndim) if a not in reduced]
    if len(kept) != 1 or len(reduced) != len(axes):
        raise ValueError(
            f"batch_norm: axes must name every axis but one (the channel axis) once, got axes={tuple(axes)} "
            f"for an input of shape {tuple(x_shape)}"
        )
    c_axis = kept[0]
    a = int(np.prod(x_shape[:c_axis], dtype=np.int64))
    b = int(np.prod(x_shape[c_axis + 1 :], dtype=np.int64))
    return a, x_shape[c_axis], b


def _views(x_shape: tuple[int, ...], axes: tuple[int, ...], *arrays: np.ndarray):
    """The arrays as (A, C, B) and the function that turns an (A, C, B) result back into x_shape.

    When the first array's memory is channel-major (a conv output: a (C, N, H, W) buffer seen as NCHW), all
    are viewed as (1, C, N*H*W) instead: per-channel reductions then run along contiguous rows, about 15%
    faster, and results keep that memory order. Arrays in another layout are copied to match.
    """
    shape3 = _as_acb(x_shape, axes)
    reduced = {a % len(x_shape) for a in axes}
    c_axis = next(i for i in range(len(x_shape)) if i not in reduced)
    moved = np.moveaxis(arrays[0], c_axis, 0)
    if shape3[0] > 1 and shape3[1] > 1 and moved.flags.c_contiguous:
        rows_shape = moved.shape
        views = [np.moveaxis(a, c_axis, 0).reshape(1, shape3[1], -1) for a in arrays]
        return views, lambda r: np.moveaxis(r.reshape(rows_shape), 0, c_axis)
    return [a.reshape(shape3) for a in arrays], lambda r: r.reshape(x_shape)


def _channel_blocks(x3: np.ndarray) -> list[tuple[int, int]]:
    """Channel ranges of an (A, C, B) view of about ``parallel.CACHE_BLOCK_BYTES`` each (at least one channel).

    A block stays in a core's L2 cache through the four to seven passes a batch-norm kernel makes over it,
    instead of each pass streaming from memory (forward over (100, 16, 28, 28) float32: 1.50 -> 0.99 ms on one
    thread). The ranges depend on the shape only: the same bits whatever the thread count.
    """
    a, c, b = x3.shape
    return parallel.cache_blocks(c, a * b * x3.itemsize)


def _channel_sum(v3: np.ndarray) -> np.ndarray:
    """Sum of an (A, C, B) array over A and B -> (C,)."""
    return v3.sum(axis=(0, 2))


def _channel_dot(u3: np.ndarray, v3: np.ndarray) -> np.ndarray:
    """sum(u * v) over A and B of two (A, C, B) arrays -> (C,), without a full-size product temporary."""
    return np.einsum("acb,acb->c", u3, v3)


def batch_norm_train_forward(
    x: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    eps: float,
    axes: tuple[int, ...],
    *,
    return_var: bool = False,
) -> tuple[np.ndarray, ...]:
    """Training-mode batch normalization with the biased batch variance.

    x: e.g. (N, C, H, W) with axes=(0, 2, 3), (N, C) with axes=(0,), (N, C, L) with axes=(0, 2).
    gamma, beta: (C,) or None. Returns ``(y, mean, invstd)``: y like x, and (C,) vectors in x's dtype: the
    batch mean and 1/sqrt(var + eps). With ``return_var=True`` returns ``(y, mean, invstd, var)``, adding the
    biased variance that ``batch_norm_update_running`` needs, so the caller need not reduce x again
    (recovering var from invstd would lose digits when var << eps).
    Raises ValueError when a channel has a single value (PyTorch refuses that in training too).
    """
    a, c, b = _as_acb(x.shape, axes)
    n = a * b
    if n <= 1:
        raise ValueError(
            f"batch_norm: expected more than 1 value per channel when training, got input shape {x.shape}"
        )
    f = x.dtype.type
    (x3,), back = _views(x.shape, axes, x)
    y = np.empty(x3.shape, dtype=x.dtype)
    mean, var, invstd = (np.empty(c, dtype=x.dtype) for _ in range(3))
    g = None if gamma is None else gamma.reshape(c)
    bt = None if beta is None else beta.reshape(c)

    def block(bounds):
        c0, c1 = bounds
        xs, ys = x3[:, c0:c1], y[:, c0:c1]
        m = _channel_sum(xs) / f(n)
        np.subtract(xs, m[:, None], out=ys)  # centred input, later scaled in place into the output
        v = _channel_dot(ys, ys) / f(n)
        inv = f(1) / np.sqrt(v + f(eps))
        ys *= (inv if g is None else inv * g[c0:c1])[:, None]
        if bt is not None:
            ys += bt[c0:c1, None]
        mean[c0:c1], var[c0:c1], invstd[c0:c1] = m, v, inv

    parallel.run(block, _channel_blocks(x3), blas=False)
    if return_var:
        return back(y), mean, invstd, var
    return back(y), mean, invstd


def batch_norm_update_running(
    running_mean: np.ndarray,
    running_var: np.ndarray,
    mean: np.ndarray,
    var_biased: np.ndarray,
    n: int,
    momentum: float,
) -> None:
    """Update running statistics in place, PyTorch's way.

    running = (1 - momentum) * running + momentum * batch, where the batch variance is made unbiased,
    var * n / (n - 1), with n the number of values per channel. For ``momentum=None`` in the layer
    (cumulative average) the caller passes momentum = 1 / num_batches_tracked.
    """
    f = running_mean.dtype.type
    keep, take = f(1 - momentum), f(momentum)
    running_mean *= keep
    running_mean += take * mean
    running_var *= keep
    running_var += (take * f(n / (n - 1))) * var_biased


def batch_norm_eval_forward(
    x: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    eps: float,
    axes: tuple[int, ...],
) -> np.ndarray:
    """Inference-mode batch normalization with fixed statistics: y = x * a + b, per channel.

    a = gamma / sqrt(running_var + eps), b = beta - running_mean * a, as PyTorch's CPU kernel does.
    running_mean, running_var, gamma, beta: (C,). Returns y like x.
    """
    (x3,), back = _views(x.shape, axes, x)
    f = x.dtype.type
    scale = f(1) / np.sqrt(running_var + f(eps))
    if gamma is not None:
        scale *= gamma.reshape(-1)
    shift = -running_mean * scale
    if beta is not None:
        shift += beta.reshape(-1)
    y = np.empty(x3.shape, dtype=x.dtype)

    def block(bounds):
        c0, c1 = bounds
        ys = y[:, c0:c1]
        np.multiply(x3[:, c0:c1], scale[c0:c1, None], out=ys)
        ys += shift[c0:c1, None]  # in L2: the block was just written

    parallel.run(block, _channel_blocks(x3), blas=False)
    return back(y)


def batch_norm_backward(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    gamma: np.ndarray | None,
    axes: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Training-mode gradient (the batch statistics depend on x).

    dy, x: like the forward input; mean, invstd: (C,) from ``batch_norm_train_forward``; gamma: (C,) or None.
    Returns ``(dx, dgamma, dbeta)``; dgamma is None when gamma is None; dbeta is always returned.
    dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = (x - mean) * invstd.
    """
    a, c, b = _as_acb(x.shape, axes)
    f = x.dtype.type
    n = f(a * b)
    (x3, dy3), back = _views(x.shape, axes, x, dy)
    dx = np.empty(x3.shape, dtype=x.dtype)
    dbeta, dot = np.empty(c, dtype=x.dtype), np.empty(c, dtype=x.dtype)
    k_all = invstd if gamma is None else invstd * gamma.reshape(c)

    def block(bounds):
        c0, c1 = bounds
        xc, ds = dx[:, c0:c1], dy3[:, c0:c1]
        inv, mu, k = invstd[c0:c1], mean[c0:c1], k_all[c0:c1]
        db = _channel_sum(ds)
        np.subtract(x3[:, c0:c1], mu[:, None], out=xc)
        d = _channel_dot(ds, xc)  # sum(dy * (x - mean))
        # dx = k * (dy - dbeta / n - xc * invstd^2 * dot / n), built in place in the xc buffer.
        xc *= (-inv * inv * d / n)[:, None]
        xc -= (db / n)[:, None]
        xc += ds
        xc *= k[:, None]
        dbeta[c0:c1], dot[c0:c1] = db, d

    parallel.run(block, _channel_blocks(x3), blas=False)
    dgamma = None if gamma is None else dot * invstd
    return back(dx), dgamma, dbeta


def batch_norm_eval_backward(
    dy: np.ndarray,
    x: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    gamma: np.ndarray | None,
    eps: float,
    axes: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Eval-mode gradient: the statistics are constants, so dx = dy * gamma / sqrt(running_var + eps).

    Returns ``(dx, dgamma, dbeta)`` like ``batch_norm_backward`` (dgamma None when gamma is None).
    """
    f = x.dtype.type
    invstd = f(1) / np.sqrt(running_var + f(eps))
    (x3, dy3), back = _views(x.shape, axes, x, dy)
    dbeta = _channel_sum(dy3)
    if gamma is None:
        return back(dy3 * invstd[:, None]), None, dbeta
    xc = x3 - running_mean[:, None]
    dgamma = _channel_dot(dy3, xc) * invstd
    dx = dy3 * (invstd * gamma.reshape(-1))[:, None]
    return back(dx), dgamma, dbeta


def _rows(x_shape: tuple[int, ...], normalized_ndim: int) -> tuple[int, int]:
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
