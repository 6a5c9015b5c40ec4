"""How a Tensor moves between dtypes and (CPU-only) devices, and names them as PyTorch does: ``to``, ``cpu``,
``cuda`` (a clear error), ``device``, ``type()``, and ``Size``, the printable shape. A mixin of
:class:`numcnn.Tensor`, which registers its class with ``function.py`` (no import back, so no cycle)."""

from __future__ import annotations

import numpy as np

from . import function, ops
from .device import CPU, check_cpu, device, is_device_spec
from .grad_mode import _GradMode

#: PyTorch's legacy type names (``x.type()``), by dtype.
_TYPE_NAMES = {np.dtype(np.float32): "FloatTensor", np.dtype(np.float64): "DoubleTensor",
               np.dtype(np.float16): "HalfTensor", np.dtype(np.int64): "LongTensor", np.dtype(np.int32): "IntTensor",
               np.dtype(np.int16): "ShortTensor", np.dtype(np.int8): "CharTensor", np.dtype(np.uint8): "ByteTensor",
               np.dtype(np.bool_): "BoolTensor"}


class Size(tuple):
    """A tensor's shape: a tuple of ints that prints as ``numcnn.Size([2, 3])``, as ``torch.Size`` does."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"numcnn.Size({list(self)})"

    def numel(self) -> int:
        return int(np.prod(self, dtype=np.int64))


def to_args(fn: str, args: tuple, kwargs: dict):
    """``(device or None, dtype or None, copy)`` from the arguments of ``Tensor.to`` / ``Module.to``."""
    kwargs = dict(kwargs)
    target, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    copy = bool(kwargs.pop("copy", False))
    kwargs.pop("non_blocking", None), kwargs.pop("memory_format", None)
    if kwargs:
        raise TypeError(f"{fn}() got an unexpected keyword argument {next(iter(kwargs))!r}")
    for a in args:
        if isinstance(a, function.Tensor):
            target, dtype = a.device, a.dtype
        elif is_device_spec(a) or isinstance(a, int) and not isinstance(a, bool):
            target = a
        elif isinstance(a, bool):
            continue  # to(dtype, non_blocking, copy) given by position
        else:
            try:
                dtype = np.dtype(a)
            except TypeError:
                raise TypeError(f"{fn}(): expected a device, a dtype or a Tensor, got {a!r}") from None
    return target, dtype, copy



class ConversionMethods:
    __slots__ = ()

    def to(self, *args, **kwargs) -> function.Tensor:
        """``to(dtype)``, ``to(device, dtype=None)``, ``to(other)`` (its device and dtype), as in PyTorch; returns
        ``self`` when nothing changes (unless ``copy=True``). The device must be the CPU (see autograd/device.py);
        ``non_blocking`` and ``memory_format`` are accepted and change nothing on a CPU."""
        target, dtype, copy = to_args("Tensor.to", args, kwargs)
        if target is not None:
            check_cpu(target)
        if dtype is None or np.dtype(dtype) == self.array.dtype:
            return self.clone() if copy else self
        dtype = np.dtype(dtype)
        if self.requires_grad and _GradMode.enabled and dtype.kind == "f":
            return ops.Cast.apply(self, dtype)
        return self._make(self.array.astype(dtype), False)

    @property
    def device(self) -> device:
        return CPU

    @property
    def is_cuda(self) -> bool:
        return False

    def cpu(self) -> function.Tensor:
        return self

    def cuda(self, device=None, non_blocking: bool = False) -> function.Tensor:  # noqa: ARG002 - torch's signature
        check_cpu("cuda" if device is None else device if not isinstance(device, int) else f"cuda:{device}")

    def type(self, dtype=None, non_blocking: bool = False):  # noqa: A003 - torch's name
        """Without ``dtype``: the PyTorch type name ("numcnn.FloatTensor"); with one (a dtype or such a name): the
        tensor cast to it."""
        if dtype is None:
            return f"numcnn.{_TYPE_NAMES.get(self.array.dtype, self.array.dtype.name)}"
        if isinstance(dtype, str) and dtype.split(".")[-1] in _TYPE_NAMES.values():
            name = dtype.split(".")[-1]
            dtype = next(d for d, n in _TYPE_NAMES.items() if n == name)
        return self.to(dtype)

    def float(self) -> function.Tensor:
        return self.to(np.float32)

    def double(self) -> function.Tensor:
        return self.to(np.float64)

    def long(self) -> function.Tensor:
        return self.to(np.int64)

    def int(self) -> function.Tensor:
        return self.to(np.int32)

    def bool(self) -> function.Tensor:
        return self.to(np.bool_)
