"""Adamax, as ``torch.optim.Adamax`` (single-tensor path, dense gradients).

Adamax (Kingma & Ba, 2015, section 7) is Adam with the second moment replaced by an exponentially
weighted infinity norm: ``u <- max(beta2 * u, |g| + eps)``. The step is
``p <- p - lr / (1 - beta1^t) * m / u``; no square root and no bias correction of ``u`` are needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .optimizer import Optimizer, ParamsT, _lerp_, check_hyperparameters

__all__ = ["Adamax", "adamax_update"]


def adamax_update(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_inf: np.ndarray,
    step: float,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One Adamax step on one parameter, in place (torch's ``_single_tensor_adamax``).

    Args:
        param: parameter array, any shape, float32 or float64; updated in place.
        grad: its gradient, same shape and dtype; not modified.
        exp_avg: first moment estimate, same shape and dtype; updated.
        exp_inf: exponentially weighted infinity norm, same shape and dtype; updated.
        step: the step number of this update, counting from 1.
        lr, beta1, beta2, eps, weight_decay: Python floats (applied in the parameter's dtype).
        maximize: flag (ascend instead of descend).
    """
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param

    tmp = _lerp_(exp_avg, grad, 1 - beta1)
    exp_inf *= beta2
    norm = np.abs(grad)
    norm += eps
    np.maximum(exp_inf, norm, out=exp_inf)

    # The scalar in double precision, as torch computes it from a Python step count.
    clr = lr / (1 - beta1**step)
    # addcdiv_(exp_avg, exp_inf, value=-clr) evaluates (value * exp_avg) / exp_inf
    update = np.multiply(exp_avg, -clr, out=tmp)
    update /= exp_inf
    param += update


class Adamax(Optimizer):
    """Adamax with PyTorch's update rule, defaults and state layout.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate (default 2e-3).
        betas: decay of the first moment and of the infinity norm, each in [0, 1) (default (0.9, 0.999)).
        eps: added to ``|g|`` before the maximum, for numerical stability (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0).
        foreach, differentiable, capturable: accepted and kept in the param groups as PyTorch does;
            numcnn always runs the single-tensor update on the CPU outside autograd, so they change
            nothing (PyTorch itself refuses ``capturable=True`` for CPU tensors when it steps).
        maximize: maximize the objective instead of minimizing it.

    State per parameter: ``step`` (Python float), ``exp_avg`` and ``exp_inf`` (arrays with the
    parameter's shape and dtype).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
    ) -> None:
        check_hyperparameters(lr=lr, epsilon=eps, betas=betas, weight_decay=weight_decay)
        defaults = {
            "lr": lr,
            "betas": (float(betas[0]), float(betas[1])),
            "eps": eps,
            "weight_decay": weight_decay,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "capturable": capturable,
        }
        super().__init__(params, defaults)

    def _update(self, p: Any, grad: np.ndarray, group: dict[str, Any]) -> None:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0.0
            state["exp_avg"] = np.zeros_like(p.array)
            state["exp_inf"] = np.zeros_like(p.array)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        adamax_update(
            p.array,
            grad,
            state["exp_avg"],
            state["exp_inf"],
            state["step"],
            lr=float(group["lr"]),
            beta1=float(beta1),
            beta2=float(beta2),
            eps=float(group["eps"]),
            weight_decay=float(group["weight_decay"]),
            maximize=bool(group["maximize"]),
        )
