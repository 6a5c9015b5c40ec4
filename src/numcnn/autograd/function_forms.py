"""``numcnn.f(x, ...)`` for every Tensor method ``x.f(...)`` that PyTorch also offers as ``torch.f``.

Scripts write both ``torch.max(outputs, 1)`` and ``outputs.max(1)``, ``torch.flatten(x, 1)`` and ``x.flatten(1)``:
each function here is the method, called on its first argument (a Tensor, or anything ``numcnn.tensor`` takes).
``max``/``min`` with a Tensor as second argument are the element-wise maximum/minimum, as in PyTorch.
"""

from __future__ import annotations

import numpy as np

from .tensor import Tensor, tensor, where

#: The Tensor methods PyTorch also has as functions of the same name and arguments.
METHOD_FORMS = (
    "abs", "add", "argmax", "argmin", "clamp", "clone", "detach", "div", "eq", "exp", "flatten", "ge", "gt", "le",
    "log", "log_softmax", "lt", "matmul", "mean", "mul", "ne", "neg", "numel", "permute", "pow", "relu", "reshape",
    "sigmoid", "softmax", "sqrt", "squeeze", "std", "sub", "sum", "tanh", "transpose", "unsqueeze", "var",
    # autograd/tensor_methods.py
    "all", "any", "argsort", "bmm", "ceil", "chunk", "cumsum", "flip", "floor", "index_select", "isfinite", "isinf",
    "isnan", "masked_fill", "mm", "narrow", "nonzero", "outer", "prod", "reciprocal", "round", "sign", "sort", "split",
    "square", "t", "topk", "unbind",
)


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else tensor(x)


def _method_form(name: str):
    def form(input, *args, **kwargs):  # noqa: A002 - PyTorch's parameter name
        return getattr(_as_tensor(input), name)(*args, **kwargs)

    form.__name__ = form.__qualname__ = name
    form.__doc__ = f"``numcnn.{name}(input, ...)`` is ``input.{name}(...)`` (see ``numcnn.Tensor.{name}``)."
    return form


def _extreme(name: str, pick_first):
    def form(input, dim=None, keepdim: bool = False, *, other=None):  # noqa: A002
        input = _as_tensor(input)
        if isinstance(dim, Tensor) or other is not None:  # torch.max(a, b): element-wise
            other = dim if other is None else other
            return where(pick_first(input, other), input, other)
        return getattr(input, name)(dim, keepdim)

    form.__name__ = form.__qualname__ = name
    form.__doc__ = (f"``numcnn.{name}(x)``: the {name} element; ``numcnn.{name}(x, dim)``: ``(values, indices)``; "
                    f"``numcnn.{name}(a, b)``: the element-wise {name}imum.")
    return form


FORMS = {name: _method_form(name) for name in METHOD_FORMS}
FORMS["max"] = _extreme("max", lambda a, b: a >= b)
FORMS["min"] = _extreme("min", lambda a, b: a <= b)
FORMS["maximum"] = lambda input, other: FORMS["max"](input, other)  # noqa: A002
FORMS["minimum"] = lambda input, other: FORMS["min"](input, other)  # noqa: A002
FORMS["clip"] = FORMS["clamp"]
FORMS["numel"] = lambda input: _as_tensor(input).numel()  # noqa: A002
FORMS["is_tensor"] = lambda obj: isinstance(obj, Tensor)
FORMS["is_floating_point"] = lambda input: _as_tensor(input).dtype.kind == "f"  # noqa: A002


def allclose(input, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:  # noqa: A002
    return bool(np.allclose(_as_tensor(input).array, _as_tensor(other).array, rtol, atol, equal_nan))


def equal(input, other) -> bool:  # noqa: A002
    """Same shape and the same values (PyTorch's ``torch.equal``)."""
    a, b = _as_tensor(input).array, _as_tensor(other).array
    return a.shape == b.shape and bool(np.array_equal(a, b))


FORMS["allclose"], FORMS["equal"] = allclose, equal
globals().update(FORMS)
__all__ = sorted(FORMS)
