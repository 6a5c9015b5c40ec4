"""How a Tensor prints: PyTorch's format, so that a script's output reads the same on numcnn.

The rules are PyTorch's (torch/_tensor_str.py): one format for all elements of a float tensor -- ``1.`` when every
finite value is a whole number, ``1.5000`` (4 decimals) otherwise, ``1.0000e-05`` when the values span more than
1000x or reach 1e8 (or, for non-whole values, go below 1e-4) -- padded to one width; at most 1000 elements, else
the first and last 3 of each dimension with ``...``; lines of 80 characters; then the dtype when it is not the
default (float32, int64, bool), and ``grad_fn=<MulBackward0>`` or ``requires_grad=True``.
"""

from __future__ import annotations

import numpy as np

THRESHOLD, EDGEITEMS, LINEWIDTH, PRECISION = 1000, 3, 80, 4
_DEFAULT_DTYPES = (np.dtype(np.float32), np.dtype(np.int64), np.dtype(np.bool_))


def float_format(values: np.ndarray):
    """The one function that formats every element of float array ``values`` (PyTorch's choice of mode)."""
    finite = np.abs(values[np.isfinite(values)].astype(np.float64))
    nonzero = finite[finite != 0]
    whole = nonzero.size == 0 or bool(np.all(nonzero == np.ceil(nonzero)))
    sci = False
    if nonzero.size:
        lo, hi = nonzero.min(), nonzero.max()
        sci = hi / lo > 1000.0 or hi > 1.0e8 or (not whole and lo < 1.0e-4)
    if sci:
        return lambda v: f"{v:.{PRECISION}e}" if np.isfinite(v) else str(v)
    if whole:
        return lambda v: f"{v:.0f}." if np.isfinite(v) else str(v)
    return lambda v: f"{v:.{PRECISION}f}" if np.isfinite(v) else str(v)


def _shown(values: np.ndarray) -> np.ndarray:
    """The elements that will be printed (all, or the edges of a summarised tensor), for choosing the format."""
    if values.size <= THRESHOLD or values.ndim == 0:
        return values
    for axis in range(values.ndim):
        if values.shape[axis] > 2 * EDGEITEMS:
            keep = np.r_[0:EDGEITEMS, values.shape[axis] - EDGEITEMS : values.shape[axis]]
            values = np.take(values, keep, axis=axis)
    return values


def array_body(values: np.ndarray, prefix: str = "tensor(") -> str:
    """The bracketed values as PyTorch prints them after ``prefix``."""
    kind = values.dtype.kind
    if kind == "f":
        fmt = float_format(_shown(values))
    elif kind == "b":
        fmt = str
    else:
        fmt = lambda v: str(int(v))  # noqa: E731
    width = max((len(fmt(v)) for v in _shown(values).flat), default=0)
    formatter = {"all": lambda v: fmt(v).rjust(width)}
    if values.size == 0:
        return "[]"
    body = np.array2string(values, separator=", ", prefix=prefix, formatter=formatter, threshold=THRESHOLD,
                           edgeitems=EDGEITEMS, max_line_width=LINEWIDTH)
    return body.replace(", ..., ", ",  ..., ")  # PyTorch's gap is " ..."


def tensor_repr(t) -> str:
    """``tensor([1.5000, 2.0000], dtype=numcnn.float64, requires_grad=True)`` for Tensor ``t``."""
    extra = []
    if t.array.size == 0 and t.array.shape != (0,):
        extra.append(f"size={tuple(t.array.shape)}")
    if t.array.dtype not in _DEFAULT_DTYPES:
        extra.append(f"dtype=numcnn.{t.array.dtype.name}")
    if t.grad_fn is not None:
        extra.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        extra.append("requires_grad=True")
    body = array_body(t.array)
    return "tensor(" + ", ".join([body, *extra]) + ")"
