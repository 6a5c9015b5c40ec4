"""Softmax and log-softmax along one axis, forward and backward, in the input's dtype.

Both subtract the maximum along the axis first, so logits of any magnitude give finite, exact results.
"""

from __future__ import annotations

import numpy as np


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) along ``axis``; same shape and dtype as x."""
    e = x - x.max(axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def softmax_backward(dy: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Gradient through softmax from its output y: y * (dy - sum(dy * y, axis))."""
    dx = dy * y
    s = dx.sum(axis=axis, keepdims=True)
    np.subtract(dy, s, out=dx)  # the dy * y buffer is free once its sum is taken
    dx *= y
    return dx


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """x - max - log(sum(exp(x - max))) along ``axis``; same shape and dtype as x."""
    shifted = x - x.max(axis=axis, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    shifted -= lse
    return shifted


def log_softmax_backward(dy: np.ndarray, y_log: np.ndarray, axis: int = -1) -> np.ndarray:
    """Gradient through log_softmax from its output: dy - exp(y_log) * sum(dy, axis)."""
    dx = np.exp(y_log)
    dx *= dy.sum(axis=axis, keepdims=True)
    np.subtract(dy, dx, out=dx)
    return dx
