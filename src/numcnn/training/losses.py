"""Losses picked by name in training recipes: cross-entropy on logits, and the textbook L2 loss on one-hot targets."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..autograd.tensor import Tensor
from ..nn import functional as F

__all__ = ["LOSSES", "get_loss", "one_hot_mse_loss"]


def one_hot_mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean squared error between outputs ``input`` (N, C) and the one-hot encoding of class indices
    ``target`` (N,) int: ``mean((input - onehot(target))**2)`` over all N*C entries with ``reduction="mean"``,
    as ``F.mse_loss(input, F.one_hot(target, C).float())`` in PyTorch. The one-hot matrix has the input's dtype."""
    if input.ndim != 2:
        raise ValueError(f"one_hot_mse_loss: expected outputs (N, C), got shape {tuple(input.shape)}")
    labels = target.array if isinstance(target, Tensor) else np.asarray(target)
    if labels.shape != (input.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(f"one_hot_mse_loss: expected integer class indices of shape ({input.shape[0]},), "
                         f"got {labels.dtype} {labels.shape}")
    classes = input.shape[1]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"one_hot_mse_loss: class indices must lie in [0, {classes}), "
                         f"got {labels.min()}..{labels.max()}")
    onehot = np.eye(classes, dtype=input.dtype)[labels]
    return F.mse_loss(input, Tensor(onehot), reduction=reduction)


LOSSES: dict[str, Callable] = {"cross_entropy": F.cross_entropy, "mse": one_hot_mse_loss}


def get_loss(name: str) -> Callable:
    """The loss function of a recipe's ``loss`` entry: "cross_entropy" or "mse" (one-hot L2)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known losses: {', '.join(LOSSES)}")
    return LOSSES[name]
