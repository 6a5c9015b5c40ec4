"""Batch normalization, training and inference, forward and backward, PyTorch conventions.

Training normalizes each channel with the mean and biased variance of the batch and returns them
(``batch_norm_train_forward``); the caller folds them into running statistics (``batch_norm_update_running``), and
the backward differentiates through them (``batch_norm_backward``). Inference uses the running statistics as
constants: the forward is one multiply-add per element (``batch_norm_eval_forward``) and the input gradient one
multiply (``batch_norm_eval_backward``).

Statistics are reduced in the input's dtype (float32 stays float32). Variance is computed in two passes
(mean first, then the sum of squared deviations), which avoids the cancellation of E[x^2] - E[x]^2.
Per-channel work is broadcast, never looped over; the kernels that pass over x several times do so in
cache-sized channel blocks over threads (``channels.py``).
"""

from __future__ import annotations

import numpy as np

from .. import activation, jit, parallel
from ..jit import kernel
from ..layout import is_channel_major
from . import batch_compiled
from .channels import as_acb, channel_blocks, channel_dot, channel_sum, channel_views

__all__ = [
    "batch_norm_backward", "batch_norm_eval_backward", "batch_norm_eval_forward", "batch_norm_train_forward",
    "batch_norm_update_running",
]


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
    a, c, b = as_acb(x.shape, axes)
    n = a * b
    if n <= 1:
        raise ValueError(
            f"batch_norm: expected more than 1 value per channel when training, got input shape {x.shape}"
        )
    f = x.dtype.type
    (x3,), back = channel_views(x.shape, axes, x)
    if jit.use_compiled():
        y, mean, invstd, var = batch_compiled.train_forward(x3, gamma, beta, eps)
        return (back(y), mean, invstd, var) if return_var else (back(y), mean, invstd)
    y = np.empty(x3.shape, dtype=x.dtype)
    mean, var, invstd = (np.empty(c, dtype=x.dtype) for _ in range(3))
    g = None if gamma is None else gamma.reshape(c)
    bt = None if beta is None else beta.reshape(c)

    def block(bounds):
        c0, c1 = bounds
        xs, ys = x3[:, c0:c1], y[:, c0:c1]
        m = channel_sum(xs) / f(n)
        np.subtract(xs, m[:, None], out=ys)  # centred input, later scaled in place into the output
        v = channel_dot(ys, ys) / f(n)
        inv = f(1) / np.sqrt(v + f(eps))
        ys *= (inv if g is None else inv * g[c0:c1])[:, None]
        if bt is not None:
            ys += bt[c0:c1, None]
        mean[c0:c1], var[c0:c1], invstd[c0:c1] = m, v, inv

    parallel.run(block, channel_blocks(x3), blas=False)
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


@kernel
def _eval_forward(x3, scale, shift, y3, c0, c1):
    """y = x * scale + shift for channels [c0, c1) of (A, C, B) views: a multiply rounded to x's dtype, then an add
    rounded again (no FMA: NumPy's two passes to the bit), in one pass over memory."""
    na, _, nb = x3.shape
    for a in range(na):
        for c in range(c0, c1):
            k, t = scale[c], shift[c]
            xr, yr = x3[a, c], y3[a, c]
            for b in range(nb):
                yr[b] = xr[b] * k + t


@kernel
def _eval_forward_relu(x3, scale, shift, y3, c0, c1):
    """``_eval_forward`` followed by ReLU in the same pass: max(v, 0) as kernels/activation.py's (NaN stays NaN,
    -0.0 becomes 0)."""
    na, _, nb = x3.shape
    for a in range(na):
        for c in range(c0, c1):
            k, t = scale[c], shift[c]
            xr, yr = x3[a, c], y3[a, c]
            for b in range(nb):
                v = xr[b] * k + t
                yr[b] = v if (v > 0) | (v != v) else 0


def _eval_views(x: np.ndarray, axes: tuple[int, ...]):
    """``channel_views(x.shape, axes, x)`` for the common case, an (N, C, H, W) input in either layout, without its
    general axis bookkeeping (microseconds that count at batch 1); other inputs go to ``channel_views``."""
    if x.ndim == 4 and axes == (0, 2, 3):
        n, c, h, w = x.shape
        if not is_channel_major(x):
            return [x.reshape(n, c, h * w)], lambda r: r.reshape(n, c, h, w)
    return channel_views(x.shape, axes, x)


def batch_norm_eval_forward(
    x: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    eps: float,
    axes: tuple[int, ...],
    relu: bool = False,
) -> np.ndarray:
    """Inference-mode batch normalization with fixed statistics: y = x * a + b, per channel (``relu``: then
    max(y, 0) in the same pass, the bits of ``activation.relu(y)``).

    a = gamma / sqrt(running_var + eps), b = beta - running_mean * a, as PyTorch's CPU kernel does.
    running_mean, running_var, gamma, beta: (C,). Returns y like x.

    The per-channel a and b are computed once per call; the elementwise part is one compiled pass (multiply, round,
    add, round: the same bits as NumPy's multiply then add) when the compiled kernels run and a and b have x's
    dtype, else NumPy's two passes per cache-sized channel block.
    """
    (x3,), back = _eval_views(x, axes)
    f = x.dtype.type
    scale = f(1) / np.sqrt(running_var + f(eps))
    if gamma is not None:
        scale *= gamma.reshape(-1)
    shift = -running_mean * scale
    if beta is not None:
        shift += beta.reshape(-1)
    y = np.empty(x3.shape, dtype=x.dtype)
    blocks = channel_blocks(x3)
    if scale.dtype == x.dtype and shift.dtype == x.dtype and jit.use_compiled():
        fn = _eval_forward_relu if relu else _eval_forward
        if len(blocks) == 1:
            fn(x3, scale, shift, y, 0, x3.shape[1])
        else:
            parallel.run(lambda b: fn(x3, scale, shift, y, b[0], b[1]), blocks, blas=False)
        return back(y)

    def block(bounds):
        c0, c1 = bounds
        ys = y[:, c0:c1]
        np.multiply(x3[:, c0:c1], scale[c0:c1, None], out=ys)
        ys += shift[c0:c1, None]  # in L2: the block was just written
        if relu:
            np.maximum(ys, f(0), out=ys)

    parallel.run(block, blocks, blas=False)
    return back(y)


def batch_norm_backward(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    gamma: np.ndarray | None,
    axes: tuple[int, ...],
    relu_out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Training-mode gradient (the batch statistics depend on x).

    dy, x: like the forward input; mean, invstd: (C,) from ``batch_norm_train_forward``; gamma: (C,) or None.
    Returns ``(dx, dgamma, dbeta)``; dgamma is None when gamma is None; dbeta is always returned.
    dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = (x - mean) * invstd.

    ``relu_out``: the output of a ReLU applied to this batch norm's output; dy is then that ReLU output's gradient,
    and the result is the same bits as ``batch_norm_backward(activation.relu_backward(dy, relu_out), ...)``: the
    compiled kernels read the selected gradient in their passes, no array of it is made.
    """
    a, c, b = as_acb(x.shape, axes)
    f = x.dtype.type
    n = f(a * b)
    if relu_out is not None and jit.use_compiled():
        (x3, dy3, r3), back = channel_views(x.shape, axes, x, dy, relu_out)
        dx, dbeta, dot = batch_compiled.backward(x3, dy3, mean, invstd, gamma, r3)
        return back(dx), (None if gamma is None else dot * invstd), dbeta
    if relu_out is not None:
        dy = activation.relu_backward(dy, relu_out)
    (x3, dy3), back = channel_views(x.shape, axes, x, dy)
    if jit.use_compiled():
        dx, dbeta, dot = batch_compiled.backward(x3, dy3, mean, invstd, gamma)
        return back(dx), (None if gamma is None else dot * invstd), dbeta
    dx = np.empty(x3.shape, dtype=x.dtype)
    dbeta, dot = np.empty(c, dtype=x.dtype), np.empty(c, dtype=x.dtype)
    k_all = invstd if gamma is None else invstd * gamma.reshape(c)

    def block(bounds):
        c0, c1 = bounds
        xc, ds = dx[:, c0:c1], dy3[:, c0:c1]
        inv, mu, k = invstd[c0:c1], mean[c0:c1], k_all[c0:c1]
        db = channel_sum(ds)
        np.subtract(x3[:, c0:c1], mu[:, None], out=xc)
        d = channel_dot(ds, xc)  # sum(dy * (x - mean))
        # dx = k * (dy - dbeta / n - xc * invstd^2 * dot / n), built in place in the xc buffer.
        xc *= (-inv * inv * d / n)[:, None]
        xc -= (db / n)[:, None]
        xc += ds
        xc *= k[:, None]
        dbeta[c0:c1], dot[c0:c1] = db, d

    parallel.run(block, channel_blocks(x3), blas=False)
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
    (x3, dy3), back = channel_views(x.shape, axes, x, dy)
    dbeta = channel_sum(dy3)
    if gamma is None:
        return back(dy3 * invstd[:, None]), None, dbeta
    xc = x3 - running_mean[:, None]
    dgamma = channel_dot(dy3, xc) * invstd
    dx = dy3 * (invstd * gamma.reshape(-1))[:, None]
    return back(dx), dgamma, dbeta
