"""More of PyTorch's Tensor methods that training scripts use, gathered as a mixin of :class:`numcnn.Tensor`.

- **In place** (``add_``, ``sub_``, ``mul_``, ``div_``, ``clamp_``, ``masked_fill_``, ``normal_``, ``uniform_`` and
  ``+=``, ``-=``, ``*=``, ``/=``): they change the tensor's own array, so the hand-written SGD step of the tutorials
  (``with torch.no_grad(): w -= lr * w.grad``) updates the parameter. On a leaf that requires grad they are refused
  while grad is enabled, as in PyTorch; ``out += identity`` on a result inside the graph gives a new tensor with the
  values and gradients of PyTorch's in-place op (numcnn records no in-place ops).
- **Built from differentiable ops** (gradients flow): ``t``, ``mm``/``bmm``, ``expand_as``, ``type_as``, ``half``,
  ``square``, ``reciprocal``, ``masked_fill``, ``chunk``, ``split``, ``unbind``, ``narrow``, ``index_select``,
  ``flip``.
- **Results without gradient** (indices, tests, roundings; PyTorch gives none either, or numcnn does not yet):
  ``topk``, ``sort``, ``argsort``, ``any``, ``all``, ``isnan``, ``isinf``, ``isfinite``, ``round``, ``floor``,
  ``ceil``, ``sign``, ``nonzero``, ``cumsum``, ``prod``, ``new_zeros``/``new_ones``/``new_full``/``new_empty``/
  ``new_tensor``, ``element_size``, ``nelement``, ``is_contiguous``, ``stride``.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .._config import get_generator
from . import function, ops
from .grad_mode import _GradMode

TopK = namedtuple("TopK", ["values", "indices"])


def _wrap(arr) -> object:
    return function.Tensor._make(np.asarray(arr), False)  # the Tensor class, registered by tensor.py


def _value(x):
    return x.array if isinstance(x, function.Tensor) else x


class TensorMethods:
    __slots__ = ()

    # ------------------------------------------------------------ in place
    def _inplace(self, name: str, result) -> object:
        self._check_inplace(f"{name}()")
        self.array[...] = result
        return self

    def add_(self, other, *, alpha=1):
        return self._inplace("add_", self.array + alpha * _value(other))

    def sub_(self, other, *, alpha=1):
        return self._inplace("sub_", self.array - alpha * _value(other))

    def mul_(self, other):
        return self._inplace("mul_", self.array * _value(other))

    def div_(self, other):
        return self._inplace("div_", self.array / _value(other))

    def clamp_(self, min=None, max=None):  # noqa: A002 - torch's names
        return self._inplace("clamp_", np.clip(self.array, _value(min), _value(max)))

    def masked_fill_(self, mask, value):
        return self._inplace("masked_fill_", np.where(_value(mask), _value(value), self.array))

    def normal_(self, mean: float = 0.0, std: float = 1.0, *, generator=None):
        rng = get_generator(generator)
        return self._inplace("normal_", mean + std * rng.standard_normal(self.array.shape))

    def uniform_(self, a: float = 0.0, b: float = 1.0, *, generator=None):
        return self._inplace("uniform_", get_generator(generator).uniform(a, b, self.array.shape))

    def _augmented(self, name: str, op, inplace):
        """``x += y``: in place when nothing records ``x``; on a result inside the graph (ResNet's ``out +=
        identity``) a new tensor computed by the recorded op, the same values and gradients as PyTorch's in-place
        op; on a leaf that requires grad, refused as PyTorch refuses it."""
        if self.requires_grad and _GradMode.enabled:
            if self.is_leaf:
                raise RuntimeError(f"{name}: a leaf tensor that requires grad cannot be modified in place while grad "
                                   "is enabled (wrap the update in numcnn.no_grad())")
            return op()
        return inplace()

    def __iadd__(self, other):
        return self._augmented("+=", lambda: self + other, lambda: self.add_(other))

    def __isub__(self, other):
        return self._augmented("-=", lambda: self - other, lambda: self.sub_(other))

    def __imul__(self, other):
        return self._augmented("*=", lambda: self * other, lambda: self.mul_(other))

    def __itruediv__(self, other):
        return self._augmented("/=", lambda: self / other, lambda: self.div_(other))

    # ------------------------------------------------------------ from differentiable ops
    def t(self):
        if self.ndim > 2:
            raise ValueError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        return self if self.ndim < 2 else self.transpose(0, 1)

    def mm(self, other):
        return self.matmul(other)

    def outer(self, vec2):
        """The outer product of two 1-D tensors: ``out[i, j] = self[i] * vec2[j]``."""
        vec2 = vec2 if isinstance(vec2, function.Tensor) else function.Tensor(vec2)
        if self.ndim != 1 or vec2.ndim != 1:
            raise RuntimeError(f"outer: expected two 1-D tensors, got {self.ndim}-D and {vec2.ndim}-D")
        return self.unsqueeze(1) * vec2.unsqueeze(0)

    ger = outer

    bmm = mm

    def expand_as(self, other):
        return self.expand(*other.shape)

    def type_as(self, other):
        return self.to(other.dtype)

    def half(self):
        return self.to(np.float16)

    def square(self):
        return self * self

    def reciprocal(self):
        return 1.0 / self

    def masked_fill(self, mask, value):
        a, b = self._operands(value, "masked_fill")
        return ops.Where.apply(np.asarray(_value(mask), dtype=bool), b, a)

    def narrow(self, dim: int, start: int, length: int):
        index = [slice(None)] * self.ndim
        index[dim] = slice(start, start + length)
        return self[tuple(index)]

    def split(self, split_size_or_sections, dim: int = 0) -> tuple:
        n = self.shape[dim]
        if isinstance(split_size_or_sections, int):
            sizes = [min(split_size_or_sections, n - s) for s in range(0, n, split_size_or_sections)]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != n:
                raise ValueError(f"split(): sizes {sizes} do not add up to {n}, the size of dim {dim}")
        starts = np.cumsum([0, *sizes[:-1]])
        return tuple(self.narrow(dim, int(s), int(k)) for s, k in zip(starts, sizes))

    def chunk(self, chunks: int, dim: int = 0) -> tuple:
        return self.split(-(-self.shape[dim] // chunks), dim)

    def unbind(self, dim: int = 0) -> tuple:
        index = [slice(None)] * self.ndim
        out = []
        for i in range(self.shape[dim]):
            index[dim] = i
            out.append(self[tuple(index)])
        return tuple(out)

    def index_select(self, dim: int, index):
        full = [slice(None)] * self.ndim
        full[dim] = np.asarray(_value(index), dtype=np.int64)
        return self[tuple(full)]

    def flip(self, *dims):
        dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        index = [slice(None)] * self.ndim
        for d in dims:
            index[d] = slice(None, None, -1)
        return self[tuple(index)]

    # ------------------------------------------------------------ results without gradient
    def __format__(self, format_spec: str) -> str:
        """``f"{loss:.4f}"`` formats a one-element 0-d tensor's value, as PyTorch does; others as ``str``."""
        if self.ndim == 0:
            return self.item().__format__(format_spec)
        return object.__format__(self, format_spec)

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002, ARG002
        order = np.argsort(-self.array if largest else self.array, axis=dim, kind="stable")
        indices = np.take(order, np.arange(k), axis=dim)
        return TopK(_wrap(np.take_along_axis(self.array, indices, axis=dim)), _wrap(indices.astype(np.int64)))

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):  # noqa: ARG002
        order = self.argsort(dim, descending)
        return TopK(_wrap(np.take_along_axis(self.array, order.array, axis=dim)), order)

    def argsort(self, dim: int = -1, descending: bool = False):
        order = np.argsort(-self.array if descending else self.array, axis=dim, kind="stable")
        return _wrap(order.astype(np.int64))

    def any(self, dim=None, keepdim: bool = False):
        return _wrap(np.any(self.array, axis=dim, keepdims=keepdim))

    def all(self, dim=None, keepdim: bool = False):
        return _wrap(np.all(self.array, axis=dim, keepdims=keepdim))

    def isnan(self):
        return _wrap(np.isnan(self.array))

    def isinf(self):
        return _wrap(np.isinf(self.array))

    def isfinite(self):
        return _wrap(np.isfinite(self.array))

    def round(self, decimals: int = 0):
        return _wrap(np.round(self.array, decimals))

    def floor(self):
        return _wrap(np.floor(self.array))

    def ceil(self):
        return _wrap(np.ceil(self.array))

    def sign(self):
        return _wrap(np.sign(self.array))

    def nonzero(self, *, as_tuple: bool = False):
        found = np.nonzero(self.array)
        if as_tuple:
            return tuple(_wrap(i.astype(np.int64)) for i in found)
        return _wrap(np.stack(found, axis=1).astype(np.int64))

    def cumsum(self, dim: int):
        return _wrap(np.cumsum(self.array, axis=dim, dtype=self.array.dtype))

    def prod(self, dim=None, keepdim: bool = False):
        return _wrap(np.prod(self.array, axis=dim, keepdims=keepdim, dtype=self.array.dtype))

    def new_tensor(self, data):
        return _wrap(np.array(_value(data), dtype=self.array.dtype))

    def new_zeros(self, *size):
        return _wrap(np.zeros(_size(size), dtype=self.array.dtype))

    def new_ones(self, *size):
        return _wrap(np.ones(_size(size), dtype=self.array.dtype))

    def new_empty(self, *size):
        return _wrap(np.empty(_size(size), dtype=self.array.dtype))

    def new_full(self, size, fill_value):
        return _wrap(np.full(tuple(size), fill_value, dtype=self.array.dtype))

    def element_size(self) -> int:
        return self.array.itemsize

    def nelement(self) -> int:
        return self.array.size

    def is_contiguous(self) -> bool:
        return bool(self.array.flags.c_contiguous)

    def stride(self, dim: int | None = None):
        strides = tuple(s // self.array.itemsize for s in self.array.strides)
        return strides if dim is None else strides[dim]


def _size(size: tuple) -> tuple:
    return tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
