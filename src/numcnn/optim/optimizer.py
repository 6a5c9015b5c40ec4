"""Optimizer base class: parameter groups, per-parameter state, PyTorch-layout state_dict.

A parameter is any object with ``.array`` (an ndarray the optimizer updates in place) and
``.grad`` (None, or an object whose ``.array`` is an ndarray of the same shape and dtype).
Parameters are dictionary keys by identity. This module imports nothing from the rest of
numcnn, so optimizers work on any such object.
"""

from __future__ import annotations

import copy
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

import numpy as np

ParamsT = Iterable[Any] | Iterable[dict[str, Any]]

__all__ = ["Optimizer", "ParamsT"]


def check_hyperparameters(**values: Any) -> None:
    """PyTorch's refusals, in the order given: ``Invalid learning rate: -1`` (``lr``), ``Invalid beta parameter at
    index 1: 1.0`` (``betas``: each in [0, 1)), ``Invalid <name> value: -1`` (any other: >= 0)."""
    for name, value in values.items():
        if name == "betas":
            for i, beta in enumerate(value[:2]):
                if not 0.0 <= beta < 1.0:
                    raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        elif not 0.0 <= value:
            raise ValueError(f"Invalid learning rate: {value}" if name == "lr" else f"Invalid {name} value: {value}")


def _is_parameter(obj: Any) -> bool:
    return hasattr(obj, "array") and hasattr(obj, "grad") and not isinstance(obj, np.ndarray)


def _as_array(obj: Any) -> np.ndarray:
    """The ndarray behind a gradient: a Tensor-like's ``.array``, or the array itself."""
    return obj if isinstance(obj, np.ndarray) else obj.array


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float, scratch: np.ndarray | None = None) -> np.ndarray:
    """``start <- start + weight * (end - start)`` in place, rounded like ``torch.lerp_``.

    torch switches formula at |weight| = 0.5 so that the result is exact at weight 1;
    follow it so moving averages agree to the last bit more often. ``scratch`` (start's shape and dtype)
    holds the temporary when given; the temporary is returned so the caller can reuse its memory.
    """
    w = start.dtype.type(weight)
    diff = np.subtract(end, start, out=scratch)
    if abs(w) < 0.5:
        diff *= w
        start += diff
    else:
        diff *= start.dtype.type(1) - w
        np.subtract(end, diff, out=start)
    return diff


class _RequiredParameter:
    """Singleton marking an option that has no default and must be given per group."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


class Optimizer:
    """Base class of all optimizers (same structure as ``torch.optim.Optimizer``).

    Args:
        params: an iterable of parameters, of ``(name, parameter)`` pairs, or of dicts
            (parameter groups) with a ``'params'`` entry and per-group options.
        defaults: the options used by every group that does not set them itself.

    Attributes:
        param_groups: list of dicts, each with ``'params'`` (list of parameters) and every option.
        state: dict keyed by parameter holding that parameter's optimizer state
            (float arrays with the parameter's dtype, Python numbers).
        defaults: the ``defaults`` given at construction.

    Subclasses implement ``_update(p, grad, group)``, called by :meth:`step` for each parameter
    whose ``grad`` is not None, with ``grad`` the gradient ndarray.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []

        if _is_parameter(params) or isinstance(params, np.ndarray):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of parameters "
                f"or dicts, but got {type(params).__name__}"
            )
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    def __repr__(self) -> str:
        lines = [self.__class__.__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {key}: {group[key]}" for key in sorted(group) if key != "params")
        return "\n".join(lines) + "\n)"

    # ------------------------------------------------------------------ groups

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (missing options take the defaults).

        Raises:
            TypeError: ``param_group`` is not a dict, its params are a set or hold a non-parameter.
            ValueError: a required option is missing, or a parameter is already in another group.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        param_group = dict(param_group)
        params = param_group["params"]
        if _is_parameter(params):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but "
                "the ordering of parameters in sets will change between runs. Please use a list instead."
            )
        params = list(params)

        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        if names:
            if len(names) != len(params):
                raise ValueError(
                    "all optimizer params should be with/without names. Some param names are missing"
                )
            param_group["param_names"] = names
        param_group["params"] = params

        for p in params:
            if not _is_parameter(p):
                raise TypeError(
                    "optimizer can only optimize parameters (objects with .array and .grad, like numcnn.nn.Parameter), "
                    f"but one of the params is {type(p).__name__}"
                )

        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(
                    f"parameter group didn't specify a value of required optimization parameter {name}"
                )
            param_group.setdefault(name, default)

        if len(params) != len({id(p) for p in params}):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; "
                "each step will update them more than once",
                stacklevel=3,
            )

        existing: set[int] = set()
        for group in self.param_groups:
            existing.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError(
                    "all optimizer param groups should be with/without names. "
                    f"cannot add param group {which} to the optimizer"
                )
        if any(id(p) in existing for p in params):
            raise ValueError("some parameters appear in more than one parameter group")

        self.param_groups.append(param_group)

    # -------------------------------------------------------------------- step

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients: set ``p.grad = None`` (default) or fill them with zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    _as_array(p.grad).fill(0)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; parameters with ``grad`` None are skipped.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss;
                it is called before the update.

        Returns:
            The closure's return value, or None.
        """
        loss = None
        if closure is not None:
            loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, self._grad_of(p), group)
        return loss

    def _update(self, p: Any, grad: np.ndarray, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _grad_of(self, p: Any) -> np.ndarray:
        grad = _as_array(p.grad)
        data = p.array
        if grad.shape != data.shape:
            raise ValueError(
                f"{type(self).__name__}.step: gradient of shape {grad.shape} does not match "
                f"its parameter of shape {data.shape}"
            )
        if grad.dtype != data.dtype:
            raise TypeError(
                f"{type(self).__name__}.step: gradient has dtype {grad.dtype}, "
                f"but its parameter has dtype {data.dtype}"
            )
        return grad

    # -------------------------------------------------------------- state dict

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in PyTorch's layout, deep-copied.

        Returns:
            ``{'state': {index: {name: ndarray or number}}, 'param_groups': [{options..., 'params':
            [indices]}]}``, where parameters are numbered in order across the groups.
        """
        index_of: dict[int, int] = {}
        start = 0
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                index_of.setdefault(id(p), i)
            packed["params"] = [index_of[id(p)] for p in group["params"]]
            start += len(packed["params"])
            groups.append(packed)
        state = {
            index_of.get(id(k), k): copy.deepcopy(v) for k, v in self.state.items()
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a dict from :meth:`state_dict` (or a PyTorch one converted to NumPy).

        Group options (lr included) are replaced by the saved ones; state arrays are copied and
        cast to each parameter's dtype; a 0-d ``step`` array becomes a Python float; state keys
        may be ints or their decimal strings.

        Raises:
            ValueError: the number of groups, of parameters per group, a parameter index or a
                state array's shape does not match this optimizer. Nothing is changed then.
        """
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(
                "optimizer state dict must be a dict with keys 'state' and 'param_groups'"
            )
        groups = self.param_groups
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, "
                f"but the optimizer has {len(groups)}"
            )
        for i, (group, saved) in enumerate(zip(groups, saved_groups, strict=True)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(
                    f"loaded state dict contains a parameter group {i} with {len(saved['params'])} "
                    f"parameters, but the optimizer's group {i} has {len(group['params'])}"
                )
        param_of = dict(
            zip(
                chain.from_iterable(g["params"] for g in saved_groups),
                chain.from_iterable(g["params"] for g in groups),
                strict=True,
            )
        )

        state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for index, values in state_dict["state"].items():
            if isinstance(index, str) and index.isdigit():
                index = int(index)  # keys that went through JSON or a flat key=value store
            if index not in param_of:
                raise ValueError(
                    f"loaded state dict has state for parameter {index!r}, which is not in its "
                    "param_groups"
                )
            param = param_of[index]
            state[param] = {
                key: self._load_state_value(param, index, key, value) for key, value in values.items()
            }

        new_groups = []
        for group, saved in zip(groups, saved_groups, strict=True):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
            for name, default in self.defaults.items():
                saved.setdefault(name, default)
            new_groups.append(saved)

        self.state = state
        self.param_groups = new_groups
        self._after_load()

    def _after_load(self) -> None:
        """Hook for subclasses to fix up options after loading (e.g. AdamW forces decoupling)."""

    @staticmethod
    def _load_state_value(param: Any, index: Any, key: str, value: Any) -> Any:
        if hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # a Tensor (e.g. from a .pth checkpoint)
            value = value.numpy()
        data = param.array
        if key == "step":
            return float(np.asarray(value))
        if isinstance(value, np.ndarray):
            if value.shape != data.shape:
                raise ValueError(
                    f"loaded state '{key}' of parameter {index} has shape {value.shape}, "
                    f"but the parameter has shape {data.shape}"
                )
            return np.array(value, dtype=data.dtype, copy=True)
        return copy.deepcopy(value)
