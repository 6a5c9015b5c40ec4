"""NAdam, as ``torch.optim.NAdam`` (single-tensor path, dense gradients).

NAdam (Dozat, 2016) is Adam with Nesterov momentum: the step looks ahead by using the *next*
momentum coefficient on the running average. The momentum coefficient warms up with the step count,

    mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay)),

and ``mu_product`` = mu_1 * ... * mu_t plays the role of Adam's ``beta1^t`` in the bias correction:

    p <- p - lr * (1 - mu_t) / (1 - mu_product_t) * g / denom
           - lr * mu_{t+1} / (1 - mu_product_t * mu_{t+1}) * m / denom,
    denom = sqrt(v / (1 - beta2^t)) + eps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .optimizer import Optimizer, ParamsT, _lerp_, check_hyperparameters

__all__ = ["NAdam", "nadam_update"]


def _momentum(beta1: float, momentum_decay: float, step: float) -> float:
    """The momentum coefficient mu_t of step ``step`` (a Python float, as torch computes it)."""
    return beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))


def nadam_update(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    mu_product: float,
    step: float,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    momentum_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
) -> float:
    """One NAdam step on one parameter, in place (torch's ``_single_tensor_nadam``).

    Args:
        param: parameter array, any shape, float32 or float64; updated in place.
        grad: its gradient, same shape and dtype; not modified.
        exp_avg, exp_avg_sq: first and second moment estimates, same shape and dtype; updated.
        mu_product: product of the momentum coefficients of the previous steps (1.0 before the first).
        step: the step number of this update, counting from 1.
        lr, beta1, beta2, eps, weight_decay, momentum_decay: Python floats.
        decoupled_weight_decay: decay the parameter itself (``p <- p * (1 - lr * wd)``, as AdamW)
            instead of adding ``wd * p`` to the gradient.
        maximize: flag (ascend instead of descend).

    Returns:
        The new ``mu_product``: a Python float holding a float32 value, because torch keeps it in a
        float32 0-d tensor and multiplies in float32 (``mu_product *= mu``).
    """
    if maximize:
        grad = -grad
    bias_correction2 = 1 - beta2**step
    if weight_decay != 0:
        if decoupled_weight_decay:
            param *= 1 - lr * weight_decay
        else:
            grad = grad + weight_decay * param

    mu = _momentum(beta1, momentum_decay, step)
    mu_next = _momentum(beta1, momentum_decay, step + 1)
    # float32 whatever the parameter's dtype: torch's scalar dtype (its default dtype), scalar cast first.
    mu_product = float(np.float32(mu_product) * np.float32(mu))

    tmp = _lerp_(exp_avg, grad, 1 - beta1)
    exp_avg_sq *= beta2
    # addcmul_(grad, grad, value=c) evaluates (c * grad) * grad
    denom = grad * (1 - beta2)
    denom *= grad
    exp_avg_sq += denom
    np.divide(exp_avg_sq, bias_correction2, out=denom)
    np.sqrt(denom, out=denom)
    denom += eps

    # addcdiv_(t, denom, value=c) evaluates (c * t) / denom; the gradient term first, then the momentum term.
    mu_product_next = mu_product * mu_next
    update = np.multiply(grad, -lr * (1.0 - mu) / (1.0 - mu_product), out=tmp)
    update /= denom
    param += update
    np.multiply(exp_avg, (-lr * mu_next) / (1.0 - mu_product_next), out=update)
    update /= denom
    param += update
    return mu_product


def _as_float32_scalar(value: Any) -> float:
    """A saved 0-d scalar (Python number, 0-d array) as a Python float holding a float32 value."""
    return float(np.asarray(value, dtype=np.float32))


class NAdam(Optimizer):
    """NAdam with PyTorch's update rule, defaults and state layout.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate (default 2e-3).
        betas: decay of the first and second moment estimates, each in [0, 1) (default (0.9, 0.999)).
        eps: added to the denominator, for numerical stability (default 1e-8).
        weight_decay: weight decay coefficient (default 0).
        momentum_decay: how fast the momentum coefficient warms up towards ``beta1`` (default 4e-3).
        decoupled_weight_decay: decoupled weight decay as in AdamW (NAdamW) instead of an L2 term.
        foreach, capturable, differentiable: accepted and kept in the param groups as PyTorch does;
            numcnn always runs the single-tensor update on the CPU outside autograd, so they change
            nothing (PyTorch itself refuses ``capturable=True`` for CPU tensors when it steps).
        maximize: maximize the objective instead of minimizing it.

    State per parameter, in torch's order: ``step`` (Python float), ``mu_product`` (Python float with a
    float32 value; a 0-d float32 tensor in torch), ``exp_avg`` and ``exp_avg_sq`` (arrays like the parameter).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_hyperparameters(lr=lr, epsilon=eps, betas=betas, weight_decay=weight_decay, momentum_decay=momentum_decay)
        defaults = {
            "lr": lr,
            "betas": (float(betas[0]), float(betas[1])),
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum_decay": momentum_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def _update(self, p: Any, grad: np.ndarray, group: dict[str, Any]) -> None:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0.0
            state["mu_product"] = 1.0
            state["exp_avg"] = np.zeros_like(p.array)
            state["exp_avg_sq"] = np.zeros_like(p.array)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        state["mu_product"] = nadam_update(
            p.array,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            state["mu_product"],
            state["step"],
            lr=float(group["lr"]),
            beta1=float(beta1),
            beta2=float(beta2),
            eps=float(group["eps"]),
            weight_decay=float(group["weight_decay"]),
            momentum_decay=float(group["momentum_decay"]),
            decoupled_weight_decay=bool(group["decoupled_weight_decay"]),
            maximize=bool(group["maximize"]),
        )

    @staticmethod
    def _load_state_value(param: Any, index: Any, key: str, value: Any) -> Any:
        # torch saves mu_product as a 0-d float32 tensor; numcnn keeps it as a Python float.
        if key == "mu_product":
            return _as_float32_scalar(value)
        return Optimizer._load_state_value(param, index, key, value)
