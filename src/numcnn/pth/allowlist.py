"""The globals a torch.save file may name: each resolves to a function that checks its arguments and returns an
inert placeholder (no behaviour, no state a pickle can set), never to the real object."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from ..autograd.conversion import Size
from .formats import DTYPES, MAX_DEPTH, MAX_DIMS, MAX_REPEATED, STORAGES, PthError, _np_dtype

# ------------------------------------------------------------------------------------------------ placeholders


class _Inert:
    """What the unpickler hands back for torch objects: no behaviour, and no state a pickle can BUILD into it."""

    __slots__ = ()

    def __setstate__(self, state):
        raise PthError(f"the pickle sets the state of a {type(self).__name__.lstrip('_')}, which torch.save never does")


class _StorageType(_Inert):
    __slots__ = ("name", "code")

    def __init__(self, name: str, code: str | None):
        self.name, self.code = name, code


class _TorchDtype(_Inert):
    __slots__ = ("name", "code")

    def __init__(self, name: str, code: str | None):
        self.name, self.code = name, code


class _Storage(_Inert):
    """One ``data/<key>`` record: ``numel`` elements of ``code`` (bytes when untyped), checked against the zip."""

    __slots__ = ("key", "kind", "numel")

    def __init__(self, key: str, kind: _StorageType, numel: int):
        self.key, self.kind, self.numel = key, kind, numel

    @property
    def untyped(self) -> bool:
        return self.kind.name == "UntypedStorage"


class _View(_Inert):
    """A tensor still to be made: a checked view (offset, size, stride, in elements) of a storage."""

    __slots__ = ("storage", "dtype", "offset", "size", "stride", "requires_grad", "negate", "conjugate")

    def __init__(self, storage, dtype, offset, size, stride, requires_grad, metadata):
        self.storage, self.dtype, self.offset, self.size, self.stride = storage, dtype, offset, size, stride
        self.requires_grad = requires_grad
        self.negate, self.conjugate = bool(metadata.get("neg")), bool(metadata.get("conj"))


# ------------------------------------------------------------------------------------------------ the allow-list


def _ints(value, what: str, limit: int = MAX_DIMS) -> tuple[int, ...]:
    if not isinstance(value, tuple) or len(value) > limit or not all(type(v) is int and v >= 0 for v in value):
        raise PthError(f"a tensor's {what} must be a tuple of at most {limit} non-negative ints, got {value!r:.80}")
    return value


def _check_view(storage: _Storage, dtype: np.dtype, offset, size, stride) -> None:
    """Refuse a view that reaches outside its storage, or a shape NumPy cannot represent, before anything is made."""
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if len(size) != len(stride) or type(offset) is not int or offset < 0:
        raise PthError(f"a tensor's geometry is inconsistent: size {size}, stride {stride}, offset {offset!r}")
    elements = storage.numel if not storage.untyped else storage.numel // dtype.itemsize
    if storage.untyped and storage.numel % dtype.itemsize:
        raise PthError(f"storage '{storage.key}' holds {storage.numel} bytes, not a whole number of {dtype}")
    if math.prod(max(s, 1) for s in size) * dtype.itemsize >= 2**62:
        raise PthError(f"a tensor declares size {size}: {math.prod(size)} elements, more than any file holds")
    if math.prod(size) > max(elements, MAX_REPEATED // dtype.itemsize):  # only views repeating elements get here
        raise PthError(f"a tensor of size {size}, stride {stride} repeats the {elements} elements of storage "
                       f"'{storage.key}' {math.prod(size)} times over; numcnn refuses such views beyond 1 GiB")
    if math.prod(size) and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= elements:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        raise PthError(f"a tensor of size {size}, stride {stride}, offset {offset} reads element {last} of storage "
                       f"'{storage.key}', which holds {elements}")


def _view(storage, offset, size, stride, requires_grad, hooks, dtype, metadata) -> _View:
    if type(requires_grad) is not bool or not isinstance(hooks, (dict, type(None))) or hooks:
        raise PthError("a tensor carries requires_grad that is not a bool, or backward hooks (code)")
    if not isinstance(metadata, (dict, type(None))) or set(metadata or {}) - {"neg", "conj"}:
        raise PthError(f"a tensor carries metadata {metadata!r:.80}; numcnn knows only 'neg' and 'conj'")
    _check_view(storage, dtype, offset, size, stride)
    if requires_grad and dtype.kind not in "fc":
        raise PthError(f"a tensor of dtype {dtype} requires grad; only floating point tensors can")
    return _View(storage, dtype, offset, size, stride, requires_grad, metadata or {})


def _storage_of(storage) -> _Storage:
    if not isinstance(storage, _Storage):
        raise PthError(f"a tensor is rebuilt from a {type(storage).__name__}, not from a storage record")
    return storage


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, metadata=None) -> _View:
    storage = _storage_of(storage)
    if storage.untyped:
        raise PthError(f"_rebuild_tensor_v2 names the untyped storage '{storage.key}' without a dtype")
    dtype = _np_dtype(storage.kind.code, f"storage '{storage.key}' (torch.{storage.kind.name})")
    return _view(storage, offset, size, stride, requires_grad, hooks, dtype, metadata)


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None) -> _View:
    storage = _storage_of(storage)
    if not isinstance(dtype, _TorchDtype):
        raise PthError(f"_rebuild_tensor_v3's dtype is a {type(dtype).__name__}, not a torch dtype")
    dtype = _np_dtype(dtype.code, f"a tensor of torch.{dtype.name}")
    return _view(storage, offset, size, stride, requires_grad, hooks, dtype, metadata)


def _rebuild_parameter(data, requires_grad, hooks, state=None) -> _View:
    if not isinstance(data, _View) or type(requires_grad) is not bool or hooks or state not in (None, {}, (None, {})):
        raise PthError("a Parameter is rebuilt from something other than a tensor, or with hooks or attributes")
    if requires_grad and data.dtype.kind not in "fc":
        raise PthError(f"a Parameter of dtype {data.dtype} requires grad; only floating point tensors can")
    data.requires_grad = requires_grad
    return data


def _checked(kind: type, make: Callable, what: str) -> Callable:
    def build(*args):
        if len(args) > 1 or (args and not isinstance(args[0], kind)):
            raise PthError(f"{what} is called with {tuple(type(a).__name__ for a in args)}")
        return make(*args)
    return build


def _encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise PthError(f"_codecs.encode is called with {type(text).__name__}, {encoding!r:.20}, not str, 'latin1'")
    return text.encode("latin1")


def _complex(real=0.0, imag=0.0):
    if not all(type(v) in (int, float) for v in (real, imag)):
        raise PthError("complex() is called with something other than two numbers")
    return complex(real, imag)


def _device(kind, index=None):
    if not isinstance(kind, str) or not isinstance(index, (int, type(None))):
        raise PthError("torch.device is called with something other than a name and an index")
    return kind if index is None else f"{kind}:{index}"


_HASHABLE = (str, int, float, bool, bytes, type(None), tuple)
_GLOBALS: dict[tuple[str, str], object] = {
    ("collections", "OrderedDict"): _checked((list, tuple, dict), OrderedDict, "collections.OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): lambda dims=(): Size(_ints(dims, "torch.Size", limit=MAX_DIMS)),
    ("torch", "device"): _device,
    ("_codecs", "encode"): _encode,
    ("torch.storage", "UntypedStorage"): _StorageType("UntypedStorage", "u1"),
    ("torch", "UntypedStorage"): _StorageType("UntypedStorage", "u1"),
    **{("torch", name): _StorageType(name, code) for name, code in STORAGES.items()},
    **{("torch", name): _TorchDtype(name, code) for name, code in DTYPES.items()},
}
for _module in ("builtins", "__builtin__"):  # protocol 2 names Python 3's builtins by their Python 2 module
    _GLOBALS[_module, "set"] = _checked((list, tuple), lambda items=(): set(_hashable(items)), "set")
    _GLOBALS[_module, "frozenset"] = _checked((list, tuple), lambda items=(): frozenset(_hashable(items)), "frozenset")
    _GLOBALS[_module, "bytearray"] = _checked((bytes,), bytearray, "bytearray")
    _GLOBALS[_module, "complex"] = _complex


def _plain(v, depth: int = 0) -> bool:
    """Whether ``v`` may be a dict key or a set element: a number, string, bytes, None, or a tuple of those."""
    if not isinstance(v, tuple):
        return isinstance(v, _HASHABLE)
    return depth < MAX_DEPTH and all(_plain(i, depth + 1) for i in v)


def _hashable(items):
    if not all(_plain(v) for v in items):
        raise PthError("a set holds something other than numbers, strings, bytes and tuples of them")
    return items


