"""Losses. Cross-entropy and NLL share one formulation: with a per-sample target distribution q (one-hot times
the class weight, label smoothing mixed in, zero rows for ignored samples),

    loss_i = -sum_c q_ic * logp_ic,      d loss_i / d logits_i = (sum_c q_ic) * softmax_i - q_i,

and 'mean' divides by PyTorch's denominator (the summed weights of the non-ignored targets for class indices,
the number of samples for probability targets)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...autograd.function import Function
from ...autograd.tensor import Tensor
from ...kernels import softmax as KS
from ._checks import check_same_dtype, check_tensor

REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: str, fn: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _reduce_grad(g, reduction, denom, shape):
    if reduction == "none":
        return g
    scale = g / denom if reduction == "mean" else g
    return np.broadcast_to(scale, shape)


class _Indices(NamedTuple):
    """Class-index targets for the compiled loss (instead of a dense q): each sample's class (-1: ignored) and the
    weight of that class (1 without class weights; float64)."""
    target: np.ndarray
    weight: np.ndarray


class _SoftTargetLoss(Function):
    """loss over (M, C) rows with a dense target distribution q (M, C); ``from_logits`` applies log_softmax.
    q may be a Tensor (probability targets): it then gets its gradient, -logp, as in PyTorch.
    With the compiled kernels and at least ``KS._COMPILED_MIN`` logits, q may be ``_Indices`` instead (class
    indices, no label smoothing): no dense q is built, the forward keeps the softmax, and the backward is one pass
    over it (``KS.cross_entropy_index_forward``/``_backward``)."""

    # One node where PyTorch has NllLoss over LogSoftmax; class-index targets come as an array, not a Tensor.
    @staticmethod
    def node_name(rows, q, *options):
        return "SoftTargetLossBackward0" if isinstance(q, Tensor) else "NllLossBackward0"

    @staticmethod
    def forward(ctx, x, q, denom, reduction, from_logits):
        ctx.denom, ctx.reduction, ctx.from_logits = denom, reduction, from_logits
        ctx.indices = q if isinstance(q, _Indices) else None
        if ctx.indices is not None:
            p, per = KS.cross_entropy_index_forward(x, q.target, q.weight)
            ctx.save_for_backward(p)
        else:
            logp = KS.log_softmax(x, 1) if from_logits else x
            per = -(q * logp).sum(axis=1)
            ctx.save_for_backward(logp, q)
        if reduction == "none":
            return per
        total = per.sum(dtype=x.dtype)
        return np.asarray(total / x.dtype.type(denom) if reduction == "mean" else total, dtype=x.dtype)

    @staticmethod
    def backward(ctx, g):
        if ctx.indices is not None:
            (p,) = ctx.saved_tensors
            gm = _reduce_grad(g, ctx.reduction, p.dtype.type(ctx.denom), (p.shape[0],))
            return KS.cross_entropy_index_backward(p, ctx.indices.target, ctx.indices.weight * gm), None
        logp, q = ctx.saved_tensors
        gm = _reduce_grad(g, ctx.reduction, logp.dtype.type(ctx.denom), (logp.shape[0],))[:, None]
        nx, nq = ctx.needs_input_grad[:2]
        grad = gq = None
        if nx:
            if ctx.from_logits:
                grad = (q.sum(axis=1, keepdims=True) * np.exp(logp) - q) * gm
            else:
                grad = -q * gm
            grad = grad.astype(logp.dtype, copy=False)
        if nq:
            gq = (-logp * gm).astype(logp.dtype, copy=False)
        return grad, gq


def _rows(input: Tensor, fn: str):
    """(N, C, d1, ...) -> (N*d1*..., C) as a graph op, plus the function that undoes it for 'none'."""
    if input.ndim == 2:
        return input, lambda t: t
    if input.ndim == 1:
        return input.unsqueeze(0), lambda t: t.squeeze(0)
    C = input.shape[1]
    perm = (0,) + tuple(range(2, input.ndim)) + (1,)
    rest = (input.shape[0],) + tuple(input.shape[2:])
    return input.permute(*perm).reshape(-1, C), lambda t: t.reshape(rest)


def _checked_indices(fn, input, target, ignore_index):
    """Class-index targets as (M,) int64, the mask of the samples not ignored, and the classes with 0 at ignored
    samples; raises for a wrong shape or a class out of range."""
    C = input.shape[1] if input.ndim > 1 else input.shape[0]
    expected = (input.shape[0],) + tuple(input.shape[2:]) if input.ndim > 1 else ()
    if tuple(target.shape) != expected:
        raise ValueError(f"{fn}: expected target of shape {expected} for input of shape {tuple(input.shape)}, "
                         f"got {tuple(target.shape)}")
    t = target.array.reshape(-1).astype(np.int64, copy=False)
    valid = t != ignore_index
    tv = np.where(valid, t, 0)
    if np.any((tv < 0) | (tv >= C)):
        bad = t[valid & ((t < 0) | (t >= C))][0]
        raise ValueError(f"{fn}: target {bad} is out of bounds for {C} classes")
    return t, valid, tv


def _index_targets(fn, input, target, weight, ignore_index, label_smoothing):
    """Dense q for class-index targets and the 'mean' denominator."""
    C = input.shape[1] if input.ndim > 1 else input.shape[0]
    t, valid, tv = _checked_indices(fn, input, target, ignore_index)
    dt = input.dtype
    w = np.ones(C, dtype=dt) if weight is None else weight.array
    M = t.shape[0]
    q = np.zeros((M, C), dtype=dt)
    rows = np.arange(M)
    q[rows, tv] = w[tv] * dt.type(1.0 - label_smoothing)
    if label_smoothing:
        q += w * dt.type(label_smoothing / C)
    q[~valid] = 0
    denom = float(w[tv][valid].sum(dtype=np.float64)) if weight is not None else float(valid.sum())
    return q, denom


def _compiled_indices(fn, input, target, weight, ignore_index):
    """``_Indices`` for the compiled loss and the 'mean' denominator (as ``_index_targets`` computes it)."""
    t, valid, tv = _checked_indices(fn, input, target, ignore_index)
    if weight is None:
        w = valid.astype(np.float64)
        denom = float(valid.sum())
    else:
        w = np.where(valid, weight.array[tv], 0).astype(np.float64)
        denom = float(weight.array[tv][valid].sum(dtype=np.float64))
    return _Indices(np.where(valid, tv, -1), w), denom


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of logits ``input`` (N, C) or (N, C, d1, ...) against class indices (N, d1, ...)
    int64, or class probabilities of the input's shape. Stable for logits of any magnitude."""
    fn = "cross_entropy"
    check_tensor(input, fn, ndims=None)
    _check_reduction(reduction, fn)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{fn}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if not isinstance(target, Tensor):
        raise TypeError(f"{fn}: expected target to be a numcnn Tensor, got {type(target).__name__}")
    if input.ndim == 0:
        raise ValueError(f"{fn}: expected input of shape (N, C) or (N, C, ...), got a scalar")
    C = input.shape[1] if input.ndim > 1 else input.shape[0]
    if weight is not None:
        check_same_dtype(input, weight, fn, "weight")
        if tuple(weight.shape) != (C,):
            raise ValueError(f"{fn}: expected weight of shape ({C},), got {tuple(weight.shape)}")
    rows, unrows = _rows(input, fn)
    if target.dtype.kind == "f":
        check_same_dtype(input, target, fn, "target")
        if tuple(target.shape) != tuple(input.shape):
            raise ValueError(f"{fn}: probability targets must have the input's shape {tuple(input.shape)}, "
                             f"got {tuple(target.shape)}")
        trow, _ = _rows(target, fn)
        # Graph ops on the target (not its raw array): a target that requires grad gets one, as in PyTorch.
        q = trow
        if label_smoothing:
            q = q * float(1 - label_smoothing) + float(label_smoothing / C)
        if weight is not None:
            q = q * weight
        denom = float(rows.shape[0])
    elif target.dtype.kind in "iu":
        if not label_smoothing and KS.cross_entropy_index_supported(rows.array):
            q, denom = _compiled_indices(fn, input, target, weight, ignore_index)
        else:
            q, denom = _index_targets(fn, input, target, weight, ignore_index, label_smoothing)
    else:
        raise TypeError(f"{fn}: expected target of dtype int64 (class indices) or float (probabilities), "
                        f"got {target.dtype}")
    out = _SoftTargetLoss.apply(rows, q, denom, reduction, True)
    return unrows(out) if reduction == "none" else out


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` (N, C) or (N, C, d1, ...) at class indices."""
    fn = "nll_loss"
    check_tensor(input, fn, ndims=None)
    _check_reduction(reduction, fn)
    if not isinstance(target, Tensor) or target.dtype.kind not in "iu":
        got = target.dtype if isinstance(target, Tensor) else type(target).__name__
        raise TypeError(f"{fn}: expected target to be an int64 Tensor of class indices, got {got}")
    if weight is not None:
        check_same_dtype(input, weight, fn, "weight")
    rows, unrows = _rows(input, fn)
    q, denom = _index_targets(fn, input, target, weight, ignore_index, 0.0)
    out = _SoftTargetLoss.apply(rows, q, denom, reduction, False)
    return unrows(out) if reduction == "none" else out


def _pair_loss(fn, input, target, reduction):
    check_tensor(input, fn, ndims=None)
    _check_reduction(reduction, fn)
    if not isinstance(target, Tensor):
        raise TypeError(f"{fn}: expected target to be a numcnn Tensor, got {type(target).__name__}")
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{fn}: expected target of the input's shape {tuple(input.shape)}, got {tuple(target.shape)}")
    check_same_dtype(input, target, fn, "target")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    _pair_loss("mse_loss", input, target, reduction)
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    _pair_loss("l1_loss", input, target, reduction)
    return _reduce((input - target).abs(), reduction)


class _BCEWithLogits(Function):
    """loss = (1 - t) x + l * softplus(-x), l = 1 + (pos_weight - 1) t; d/dx = (1 - t) - l * sigmoid(-x)."""

    node_name = "BinaryCrossEntropyWithLogitsBackward0"

    @staticmethod
    def forward(ctx, x, t, pos_weight):
        l = 1 + (pos_weight - 1) * t if pos_weight is not None else None
        softplus = np.logaddexp(0, -x).astype(x.dtype, copy=False)
        loss = (1 - t) * x + (l * softplus if l is not None else softplus)
        ctx.save_for_backward(x, t, l)
        ctx.pos_weight = pos_weight
        return loss

    @staticmethod
    def backward(ctx, g):
        x, t, l = ctx.saved_tensors
        softplus_neg = np.logaddexp(0, -x).astype(x.dtype, copy=False)
        sig_neg = np.exp(-np.logaddexp(0, x)).astype(x.dtype, copy=False)  # sigmoid(-x) without overflow
        nx, nt = ctx.needs_input_grad[:2]
        gx = g * ((1 - t) - (l * sig_neg if l is not None else sig_neg)) if nx else None
        gt = None
        if nt:
            # d/dt = -x + (pos_weight - 1) * softplus(-x); the second term only with pos_weight.
            dt = -x if l is None else -x + (ctx.pos_weight - 1) * softplus_neg
            gt = g * dt
        return gx, gt


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    fn = "binary_cross_entropy_with_logits"
    _pair_loss(fn, input, target, reduction)
    pw = None
    if pos_weight is not None:
        check_same_dtype(input, pos_weight, fn, "pos_weight")
        pw = pos_weight.array
    loss = _BCEWithLogits.apply(input, target, pw)
    if weight is not None:
        check_same_dtype(input, weight, fn, "weight")
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         reduction: str = "mean") -> Tensor:
    """BCE of probabilities; logs are clamped at -100 as PyTorch does, so p = 0 or 1 gives a finite loss."""
    fn = "binary_cross_entropy"
    _pair_loss(fn, input, target, reduction)
    logp = input.log().clamp(min=-100)
    log1mp = (1 - input).log().clamp(min=-100)
    loss = -(target * logp + (1 - target) * log1mp)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)
