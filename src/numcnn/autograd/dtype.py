"""Data types that print as PyTorch's (``numcnn.float32``) and work wherever NumPy takes a dtype.

A ``numcnn.dtype`` holds a NumPy dtype in its ``dtype`` attribute, which is the protocol NumPy reads:
``np.zeros(3, dtype=numcnn.float32)`` and ``arr.astype(numcnn.int64)`` work as with NumPy's own. It compares equal to
the NumPy dtype and to anything NumPy turns into one (``x.dtype == np.float32``, ``x.dtype == "float32"``), hashes
like it, and answers NumPy's attributes (``kind``, ``itemsize``, ``name``) and PyTorch's (``is_floating_point``,
``is_signed``).
"""

from __future__ import annotations

import numpy as np

#: PyTorch's names of the dtypes numcnn uses (``torch.bool`` is NumPy's ``bool``).
_NAMES = {"float16": "float16", "float32": "float32", "float64": "float64", "int8": "int8", "int16": "int16",
          "int32": "int32", "int64": "int64", "uint8": "uint8", "bool": "bool"}


class dtype:  # noqa: N801 - torch.dtype
    __slots__ = ("dtype",)

    def __init__(self, np_dtype):
        object.__setattr__(self, "dtype", np.dtype(np_dtype))

    def __setattr__(self, name, value):
        raise AttributeError("dtype is immutable")

    def __repr__(self) -> str:
        return f"numcnn.{_NAMES.get(self.dtype.name, self.dtype.name)}"

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        try:
            return self.dtype == np.dtype(other)
        except TypeError:
            return NotImplemented

    def __hash__(self) -> int:
        return hash(self.dtype)

    def __getattr__(self, name):  # kind, itemsize, name, char, type, ...: NumPy's answers
        return getattr(object.__getattribute__(self, "dtype"), name)

    def __reduce__(self):
        return as_dtype, (self.dtype.str,)

    @property
    def is_floating_point(self) -> bool:
        return self.dtype.kind == "f"

    @property
    def is_signed(self) -> bool:
        return self.dtype.kind in "fi"


_CACHE: dict = {}


def as_dtype(d) -> dtype:
    """The numcnn dtype for anything NumPy takes as a dtype (one object per dtype)."""
    key = d.dtype if isinstance(d, dtype) else np.dtype(d)
    found = _CACHE.get(key)
    if found is None:
        found = _CACHE[key] = dtype(key)
    return found
