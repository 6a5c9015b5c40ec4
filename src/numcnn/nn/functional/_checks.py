"""Validation at the boundary: a bad argument is refused here, with the function's name, what it expected and
what it got, never as a NumPy error from deep inside a kernel."""

from __future__ import annotations

import numpy as np

from ...autograd.tensor import Tensor, check_floating


def as_tuple(value, n: int, fn: str, name: str, minimum: int | None = None) -> tuple[int, ...]:
    if type(value) is int:  # the common cases first: this runs several times per layer call
        out = (value,) * n
    elif type(value) is tuple and len(value) == n and all(type(v) is int for v in value):
        out = value
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        out = (int(value),) * n
    elif isinstance(value, (tuple, list)) and len(value) == n and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        out = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{fn}: expected {name} to be an int or a tuple of {n} ints, got {value!r}")
    if minimum is not None and min(out, default=minimum) < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value!r}")
    return out


def plain(value, strings: bool = False) -> bool:
    """Whether an argument is of the plain types an argument cache may key on: an int, a tuple of ints (or, with
    ``strings``, a str). Bools, NumPy ints and lists compare equal to ints but are checked differently."""
    t = type(value)
    return t is int or (strings and t is str) or (t is tuple and all(type(v) is int for v in value))


class ArgCache(dict):
    """Checked arguments by their plain key (at most ``size``; emptied when full): a hit skips checks that passed
    for the same arguments before, with the same result."""

    def __init__(self, size: int = 512):
        super().__init__()
        self.size = size

    def put(self, key, value):
        if len(self) >= self.size:
            self.clear()
        self[key] = value
        return value


def check_tensor(x, fn: str, name: str = "input", ndims: tuple[int, ...] | None = None, floating: bool = True):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: expected {name} to be a numcnn Tensor, got {type(x).__name__}")
    if floating:
        check_floating(x, fn, name)
    if ndims is not None and x.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{fn}: expected {name} to be {want}, got shape {tuple(x.shape)}")
    return x


def _cast_call(dtype) -> str:
    return {"float32": ".float()", "float64": ".double()"}.get(np.dtype(dtype).name, f".to({dtype})")


def check_same_dtype(x: Tensor, w: Tensor | None, fn: str, wname: str = "weight") -> None:
    if w is not None and x.array.dtype != w.array.dtype:
        if wname in ("target", "pos_weight"):
            # Data that goes with the input: it is the one to convert.
            fix = f"call {_cast_call(x.dtype)} on the {wname}"
        else:
            fix = f"call {_cast_call(w.dtype)} on the input (or .to({x.dtype}) on the module)"
        raise TypeError(
            f"{fn}: input dtype {x.dtype} does not match {wname} dtype {w.dtype}; numcnn never upcasts silently: "
            f"{fix}"
        )
