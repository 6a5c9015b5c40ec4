"""RAdam, as ``torch.optim.RAdam`` (single-tensor path, dense gradients).

RAdam (Liu et al., 2020) rectifies Adam's adaptive learning rate, whose variance is too large in the
first steps. From the length of the approximated simple moving average,

    rho_inf = 2 / (1 - beta2) - 1,    rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t),

it takes an SGD-with-momentum step ``p <- p - lr * m_hat`` while ``rho_t <= 5``, and afterwards the
Adam step scaled by the rectification term
``r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .optimizer import Optimizer, ParamsT, _lerp_, check_hyperparameters

__all__ = ["RAdam", "radam_update"]


def _rectification(rho_t: float, rho_inf: float) -> float:
    """The variance rectification term r_t (a Python float)."""
    return ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5


def radam_update(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    step: float,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> None:
    """One RAdam step on one parameter, in place (torch's ``_single_tensor_radam``).

    Args:
        param: parameter array, any shape, float32 or float64; updated in place.
        grad: its gradient, same shape and dtype; not modified.
        exp_avg, exp_avg_sq: first and second moment estimates, same shape and dtype; updated.
        step: the step number of this update, counting from 1.
        lr, beta1, beta2, eps, weight_decay: Python floats (applied in the parameter's dtype).
        decoupled_weight_decay: decay the parameter itself (``p <- p * (1 - lr * wd)``, as AdamW)
            instead of adding ``wd * p`` to the gradient.
        maximize: flag (ascend instead of descend).
    """
    if maximize:
        grad = -grad
    if weight_decay != 0:
        if decoupled_weight_decay:
            param *= 1 - lr * weight_decay
        else:
            grad = grad + weight_decay * param

    _lerp_(exp_avg, grad, 1 - beta1)
    exp_avg_sq *= beta2
    # addcmul_(grad, grad, value=c) evaluates (c * grad) * grad
    sq = grad * (1 - beta2)
    sq *= grad
    exp_avg_sq += sq

    # Scalars in double precision, as torch computes them from a Python step count.
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2

    # torch: (exp_avg / bc1) * lr [* (sqrt(bc2) / (sqrt(v) + eps)) * r_t], the products left to right;
    # a Python number divided by a tensor is the tensor's reciprocal times the number.
    update = exp_avg / bias_correction1
    update *= lr
    if rho_t > 5.0:
        adaptive = np.sqrt(exp_avg_sq, out=sq)
        adaptive += eps
        np.reciprocal(adaptive, out=adaptive)
        adaptive *= bias_correction2**0.5
        update *= adaptive
        update *= _rectification(rho_t, rho_inf)
    param -= update


class RAdam(Optimizer):
    """RAdam with PyTorch's update rule, defaults and state layout.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate (default 1e-3).
        betas: decay of the first and second moment estimates, each in [0, 1) (default (0.9, 0.999)).
        eps: added to the denominator, for numerical stability (default 1e-8).
        weight_decay: weight decay coefficient (default 0).
        decoupled_weight_decay: decoupled weight decay as in AdamW (RAdamW) instead of an L2 term.
        foreach, capturable, differentiable: accepted and kept in the param groups as PyTorch does;
            numcnn always runs the single-tensor update on the CPU outside autograd, so they change
            nothing (PyTorch itself refuses ``capturable=True`` for CPU tensors when it steps).
        maximize: maximize the objective instead of minimizing it.

    State per parameter: ``step`` (Python float), ``exp_avg`` and ``exp_avg_sq`` (arrays with the
    parameter's shape and dtype).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_hyperparameters(lr=lr, epsilon=eps, betas=betas, weight_decay=weight_decay)
        defaults = {
            "lr": lr,
            "betas": (float(betas[0]), float(betas[1])),
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "decoupled_weight_decay": decoupled_weight_decay,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def _update(self, p: Any, grad: np.ndarray, group: dict[str, Any]) -> None:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0.0
            state["exp_avg"] = np.zeros_like(p.array)
            state["exp_avg_sq"] = np.zeros_like(p.array)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        radam_update(
            p.array,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            state["step"],
            lr=float(group["lr"]),
            beta1=float(beta1),
            beta2=float(beta2),
            eps=float(group["eps"]),
            weight_decay=float(group["weight_decay"]),
            decoupled_weight_decay=bool(group["decoupled_weight_decay"]),
            maximize=bool(group["maximize"]),
        )
