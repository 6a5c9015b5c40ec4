"""Adadelta, as ``torch.optim.Adadelta`` (single-tensor path, dense gradients).

Adadelta (Zeiler, 2012) keeps two running averages per parameter: ``square_avg`` of the squared
gradients and ``acc_delta`` of the squared updates. Each step moves the parameter by

    delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g,      p <- p - lr * delta

so the step size has the units of the parameter, and ``lr`` (default 1.0) only rescales it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .optimizer import Optimizer, ParamsT

__all__ = ["Adadelta", "adadelta_update"]


def adadelta_update(
    param: np.ndarray,
    grad: np.ndarray,
    square_avg: np.ndarray,
    acc_delta: np.ndarray,
    *,
    lr: float,
    rho: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One Adadelta step on one parameter, in place (torch's ``_single_tensor_adadelta``).

    Args:
        param: parameter array, any shape, float32 or float64; updated in place.
        grad: its gradient, same shape and dtype; not modified.
        square_avg: running average of the squared gradient, same shape and dtype; updated.
        acc_delta: running average of the squared update, same shape and dtype; updated.
        lr, rho, eps, weight_decay: Python floats (applied in the parameter's dtype).
        maximize: flag (ascend instead of descend).
    """
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param

    # addcmul_(grad, grad, value=c) evaluates (c * grad) * grad
    square_avg *= rho
    sq = grad * (1 - rho)
    sq *= grad
    square_avg += sq

    std = square_avg + eps
    np.sqrt(std, out=std)
    delta = acc_delta + eps
    np.sqrt(delta, out=delta)
    delta /= std
    delta *= grad

    acc_delta *= rho
    np.multiply(delta, 1 - rho, out=sq)
    sq *= delta
    acc_delta += sq

    # add_(delta, alpha=-lr) evaluates p + (-lr) * delta
    delta *= -lr
    param += delta


class Adadelta(Optimizer):
    """Adadelta with PyTorch's update rule, defaults and state layout.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: coefficient that scales delta before it is applied (default 1.0).
        rho: decay of the running averages, in [0, 1] (default 0.9).
        eps: added inside both square roots, for numerical stability (default 1e-6).
        weight_decay: L2 penalty added to the gradient (default 0).
        foreach, capturable, differentiable: accepted and kept in the param groups as PyTorch does;
            numcnn always runs the single-tensor update on the CPU outside autograd, so they change
            nothing (PyTorch itself refuses ``capturable=True`` for CPU tensors when it steps).
        maximize: maximize the objective instead of minimizing it.

    State per parameter: ``step`` (Python float), ``square_avg`` and ``acc_delta`` (arrays with the
    parameter's shape and dtype).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "capturable": capturable,
            "foreach": foreach,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def _update(self, p: Any, grad: np.ndarray, group: dict[str, Any]) -> None:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0.0
            state["square_avg"] = np.zeros_like(p.array)
            state["acc_delta"] = np.zeros_like(p.array)
        state["step"] += 1
        adadelta_update(
            p.array,
            grad,
            state["square_avg"],
            state["acc_delta"],
            lr=float(group["lr"]),
            rho=float(group["rho"]),
            eps=float(group["eps"]),
            weight_decay=float(group["weight_decay"]),
            maximize=bool(group["maximize"]),
        )
