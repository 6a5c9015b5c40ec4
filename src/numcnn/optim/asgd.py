"""ASGD (averaged SGD), as ``torch.optim.ASGD`` (single-tensor path, dense gradients).

Averaged SGD (Polyak & Juditsky, 1992; the schedule of Bottou, 2012) runs SGD with a decaying step
size ``eta_t`` and a decay term, and keeps ``ax``, an average of the iterates:

    p <- p * (1 - lambd * eta) - eta * g,
    ax <- p                      while mu == 1 (the first t0 steps),
    ax <- ax + mu * (p - ax)     afterwards, a running mean of the iterates since step t0,
    eta <- lr / (1 + lambd * lr * t)^alpha,     mu <- 1 / max(1, t - t0).

The parameters keep the SGD iterate; ``state['ax']`` holds the average, which is what one evaluates
with at the end of training (copy it into the parameters).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .optimizer import Optimizer, ParamsT

__all__ = ["ASGD", "asgd_update"]

# The keys torch keeps as 0-d tensors of its scalar dtype (float32 unless torch's default dtype is float64).
_SCALAR_KEYS = ("eta", "mu")


def _float32(value: Any) -> float:
    """A number (Python, 0-d array) rounded to float32, as a Python float."""
    return float(np.asarray(value, dtype=np.float32))


def asgd_update(
    param: np.ndarray,
    grad: np.ndarray,
    ax: np.ndarray,
    eta: float,
    mu: float,
    step: float,
    *,
    lr: float,
    lambd: float,
    alpha: float,
    t0: float,
    weight_decay: float,
    maximize: bool,
) -> tuple[float, float]:
    """One ASGD step on one parameter, in place (torch's ``_single_tensor_asgd``).

    Args:
        param: parameter array, any shape, float32 or float64; updated in place.
        grad: its gradient, same shape and dtype; not modified.
        ax: the averaged iterate, same shape and dtype; updated.
        eta, mu: this step's step size and averaging coefficient (from the previous step).
        step: the step number of this update, counting from 1.
        lr, lambd, alpha, t0, weight_decay: Python floats.
        maximize: flag (ascend instead of descend).

    Returns:
        ``(eta, mu)`` for the next step, each a Python float holding a float32 value, because
        torch keeps them in float32 0-d tensors.
    """
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param

    param *= 1 - lambd * eta
    # add_(grad, alpha=-eta) evaluates p + (-eta) * grad
    param += grad * -eta

    if mu != 1:
        diff = param - ax
        diff *= mu
        ax += diff
    else:
        ax[...] = param

    new_eta = _float32(lr / ((1 + lambd * lr * step) ** alpha))
    new_mu = _float32(1 / max(1, step - t0))
    return new_eta, new_mu


class ASGD(Optimizer):
    """Averaged SGD with PyTorch's update rule, defaults and state layout.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, the initial step size (default 1e-2).
        lambd: decay term (default 1e-4).
        alpha: power of the step-size decay (default 0.75).
        t0: the step after which averaging starts (default 1e6).
        weight_decay: L2 penalty added to the gradient (default 0).
        foreach, differentiable, capturable: accepted and kept in the param groups as PyTorch does;
            numcnn always runs the single-tensor update on the CPU outside autograd, so they change
            nothing (PyTorch itself refuses ``capturable=True`` for CPU tensors when it steps).
        maximize: maximize the objective instead of minimizing it.

    State per parameter, in torch's order: ``step`` (Python float), ``eta`` and ``mu`` (Python floats
    holding float32 values; 0-d float32 tensors in torch), ``ax`` (array like the parameter).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        lambd: float = 1e-4,
        alpha: float = 0.75,
        t0: float = 1e6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {
            "lr": lr,
            "lambd": lambd,
            "alpha": alpha,
            "t0": t0,
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
            state["eta"] = _float32(group["lr"])
            state["mu"] = 1.0
            state["ax"] = np.zeros_like(p.array)
        state["step"] += 1
        state["eta"], state["mu"] = asgd_update(
            p.array,
            grad,
            state["ax"],
            state["eta"],
            state["mu"],
            state["step"],
            lr=float(group["lr"]),
            lambd=float(group["lambd"]),
            alpha=float(group["alpha"]),
            t0=float(group["t0"]),
            weight_decay=float(group["weight_decay"]),
            maximize=bool(group["maximize"]),
        )

    @staticmethod
    def _load_state_value(param: Any, index: Any, key: str, value: Any) -> Any:
        # torch saves eta and mu as 0-d float32 tensors; numcnn keeps them as Python floats.
        if key in _SCALAR_KEYS:
            return _float32(value)
        return Optimizer._load_state_value(param, index, key, value)
